package main

import (
	"fmt"
	"net"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// dupFile is the bench module's copy of the repository's internal
// sysx.DupFile (an internal package cannot be imported from another
// module): it duplicates the descriptor behind c with F_DUPFD_CLOEXEC
// inside SyscallConn().Control and wraps the copy with os.NewFile.
//
// It never calls (*os.File).Fd or net's File methods on c: those switch the
// shared open file description to blocking mode. Because the copy is already
// non-blocking when it is wrapped, os.NewFile leaves it alone, and a later Fd
// (exec.Cmd.ExtraFiles) does not touch O_NONBLOCK either.
func dupFile(c syscall.Conn, name string) (*os.File, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("bench: dup %s: %w", name, err)
	}
	dupfd, dupErr := -1, error(nil)
	if err := rc.Control(func(fd uintptr) {
		dupfd, dupErr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil {
		return nil, fmt.Errorf("bench: dup %s: %w", name, err)
	}
	if dupErr != nil {
		return nil, fmt.Errorf("bench: dup %s: %w", name, os.NewSyscallError("fcntl", dupErr))
	}
	return os.NewFile(uintptr(dupfd), name), nil
}

// listenDup binds a TCP listener on loopback (kernel backlog: somaxconn)
// and returns the supervisor's copy of it and its address; the original is
// closed, the socket lives on in the copy.
func listenDup(name string) (*os.File, string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", fmt.Errorf("bench: listen %s: %w", name, err)
	}
	defer ln.Close()
	f, err := dupFile(ln.(*net.TCPListener), name)
	if err != nil {
		return nil, "", err
	}
	return f, ln.Addr().String(), nil
}
