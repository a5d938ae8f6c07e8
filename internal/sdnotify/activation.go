package sdnotify

import (
	"fmt"
	"os"

	"github.com/handoff-go/handoff/internal/listenenv"
)

// NamedFile is one descriptor passed by systemd, with its name
// (FileDescriptorName= of the socket unit, the FDNAME= it was stored under,
// or LISTEN_FD_<n> when systemd gave none).
type NamedFile struct {
	Name string
	File *os.File
}

// ActivationFiles returns the descriptors systemd passed this process
// (socket activation, or the file descriptor store after a restart), in fd
// order, and removes LISTEN_* from the environment. It returns none when
// LISTEN_FDS is unset or meant for another process. The caller owns the
// files. Each is close-on-exec.
func ActivationFiles() ([]NamedFile, error) {
	in, err := listenenv.Read()
	if err != nil {
		return nil, fmt.Errorf("handoff: socket activation: %w", err)
	}
	if in.Role != "" {
		for _, fd := range append(in.FDs, in.SockFD) {
			closeFD(fd)
		}
		return nil, fmt.Errorf("handoff: socket activation: %s=%s: the supervisor was started as a successor daemon", listenenv.VarRole, in.Role)
	}
	out := make([]NamedFile, len(in.FDs))
	for i, fd := range in.FDs {
		out[i] = NamedFile{Name: in.Names[i], File: os.NewFile(uintptr(fd), in.Names[i])}
	}
	return out, nil
}

func closeFD(fd int) {
	if fd >= 0 {
		_ = os.NewFile(uintptr(fd), "").Close()
	}
}
