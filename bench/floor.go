package main

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// floorTarget is a binary whose spawn-to-Hello time is measured.
type floorTarget struct {
	Label string
	Bin   string
	Args  []string
	Names []string   // listener names, in fd order
	Files []*os.File // the listeners (the supervisor's copies)
	Frame bool       // read a protocol frame (Hello); else one byte
}

// floorOnce spawns the target the way the supervisor spawns a successor
// (listeners at fd 3…, a socketpair end after them, the same environment
// contract) and times it until its Hello has arrived on the socketpair.
// Nothing else happens: no HelloAck, no protocol. Closing our end then
// makes the child exit (after the timed part).
func floorOnce(t floorTarget, logf *os.File) (time.Duration, error) {
	start := time.Now()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, os.NewSyscallError("socketpair", err)
	}
	mine, theirs := os.NewFile(uintptr(fds[0]), "mine"), os.NewFile(uintptr(fds[1]), "theirs")
	defer mine.Close()
	cmd := exec.Command(t.Bin, t.Args...)
	cmd.ExtraFiles = append(append([]*os.File{}, t.Files...), theirs)
	cmd.Env = append(stripListenEnv(os.Environ()),
		"LISTEN_FDS="+strconv.Itoa(len(t.Files)), "LISTEN_FDNAMES="+strings.Join(t.Names, ":"),
		"HANDOFF_ROLE=successor", "HANDOFF_SOCK_FD="+strconv.Itoa(3+len(t.Files)))
	cmd.Stdout, cmd.Stderr = logf, logf
	err = cmd.Start()
	theirs.Close()
	if err != nil {
		return 0, err
	}
	kill := time.AfterFunc(10*time.Second, func() { _ = cmd.Process.Kill() })
	defer kill.Stop()
	err = readHello(mine, t.Frame)
	took := time.Since(start)
	mine.Close()
	werr := cmd.Wait()
	if err != nil {
		return 0, fmt.Errorf("bench: floor %s: %w (exit: %v)", t.Label, err, werr)
	}
	return took, nil
}

// readHello reads one frame (u32 little-endian length, then that many
// bytes) or, for the bare binary, one byte.
func readHello(r io.Reader, frame bool) error {
	if !frame {
		var b [1]byte
		_, err := io.ReadFull(r, b[:])
		return err
	}
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return err
	}
	n := binary.LittleEndian.Uint32(hdr[:])
	if n > 1<<20 {
		return fmt.Errorf("bench: frame of %d bytes", n)
	}
	_, err := io.ReadFull(r, make([]byte, n))
	return err
}

func stripListenEnv(env []string) []string {
	var out []string
	for _, kv := range env {
		if strings.HasPrefix(kv, "LISTEN_") || strings.HasPrefix(kv, "HANDOFF_") {
			continue
		}
		out = append(out, kv)
	}
	return out
}
