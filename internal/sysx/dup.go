// Package sysx holds the small Linux helpers the rest of the module shares:
// safe fd duplication, pidfds with start-time checks, peer credentials and
// inode identity of paths.
package sysx

import (
	"fmt"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// DupFile duplicates the descriptor behind c with F_DUPFD_CLOEXEC and wraps the
// copy in an *os.File named name. The caller owns (and must close) the result.
//
// It never calls (*os.File).Fd or net's File methods on c: those switch the
// shared open file description to blocking mode, after which another process's
// accept loop on the same socket can no longer be interrupted. Because the
// copy is already non-blocking when it is wrapped, a later Fd on the result
// (for example by exec.Cmd.ExtraFiles) leaves O_NONBLOCK alone too.
func DupFile(c syscall.Conn, name string) (*os.File, error) {
	fd, err := DupConnFD(c)
	if err != nil {
		return nil, fmt.Errorf("handoff: dup %s: %w", name, err)
	}
	return os.NewFile(uintptr(fd), name), nil
}

// DupConnFD is DupFile returning the raw descriptor (close-on-exec), for
// code that keeps descriptors rather than files.
func DupConnFD(c syscall.Conn) (int, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return -1, err
	}
	var (
		dupfd  = -1
		dupErr error
	)
	if err := rc.Control(func(fd uintptr) {
		dupfd, dupErr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil {
		return -1, err
	}
	if dupErr != nil {
		return -1, os.NewSyscallError("fcntl", dupErr)
	}
	return dupfd, nil
}

// DupFD duplicates a raw descriptor with F_DUPFD_CLOEXEC and wraps the copy.
func DupFD(fd int, name string) (*os.File, error) {
	dupfd, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("handoff: dup %s (fd %d): %w", name, fd, os.NewSyscallError("fcntl", err))
	}
	return os.NewFile(uintptr(dupfd), name), nil
}
