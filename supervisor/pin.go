package supervisor

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// pinnedBinary is a binary checked against a SHA-256 pin and kept open, so
// that what is executed is the very file that was hashed: the path may be
// replaced between the check and the exec (a package manager writing the
// next version), the open descriptor may not.
type pinnedBinary struct {
	f *os.File
}

// pinBinary opens bin (already resolved) and checks that its content has
// the SHA-256 want (hex). The descriptor is moved to a number of at least
// minFD (see pinnedFDFloor), so that placing the child's listeners at 3,
// 4, … before the exec cannot overwrite it.
func pinBinary(bin, want string, minFD int) (*pinnedBinary, error) {
	want = strings.ToLower(strings.TrimSpace(want))
	if len(want) != sha256.Size*2 || strings.Trim(want, "0123456789abcdef") != "" {
		return nil, fmt.Errorf("handoff: sha256 pin %q is not %d hex digits: %w", want, sha256.Size*2, ErrBadBinary)
	}
	f, err := os.OpenFile(bin, os.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("handoff: binary %s: %w: %w", bin, ErrBadBinary, err)
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		f.Close()
		return nil, fmt.Errorf("handoff: binary %s: hashing: %w: %w", bin, ErrBadBinary, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		f.Close()
		return nil, fmt.Errorf("handoff: binary %s has SHA-256 %s, the pin asks for %s: %w", bin, got, want, ErrBadBinary)
	}
	fd, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, minFD)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("handoff: binary %s: %w", bin, os.NewSyscallError("fcntl", err))
	}
	return &pinnedBinary{f: os.NewFile(uintptr(fd), bin)}, nil
}

// pinnedFDFloor is the lowest descriptor number the pinned binary may use
// in a spawn with extra files at 3, 4, …: between fork and exec the child
// places them there, first moving each that sits below its target to
// numbers from 3+extra upwards, so anything under twice that can be
// overwritten before the exec reads the pinned descriptor.
func pinnedFDFloor(extra int) int {
	return 2*(3+extra) + 1
}

// path is what to execute: the descriptor through /proc, which the kernel
// opens before the exec closes the (close-on-exec) descriptor itself.
func (p *pinnedBinary) path() string {
	return "/proc/self/fd/" + strconv.Itoa(int(p.f.Fd()))
}

func (p *pinnedBinary) close() {
	if p != nil {
		p.f.Close()
	}
}
