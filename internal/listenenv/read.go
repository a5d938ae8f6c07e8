package listenenv

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Read is [Parse] of this process's environment, done once at start-up. It
// removes the contract's variables from the environment in every case (so
// a later re-exec or child starts cold), then checks that every inherited
// descriptor is open and marks it close-on-exec (so no later child inherits
// it by accident).
//
// The caller owns the descriptors it returns and should close those it will
// not use. On error nothing is marked or closed: the process cannot tell
// which descriptors are its own and should exit with the message, which
// names the variable to fix.
func Read() (Inherited, error) {
	in, err := Parse(os.Getenv)
	unset()
	if err != nil {
		return Inherited{SockFD: -1}, err
	}
	if err := claim(in); err != nil {
		return Inherited{SockFD: -1}, err
	}
	return in, nil
}

func unset() {
	for _, v := range contractVars {
		// Unsetenv fails only for a name containing '=' or NUL; these are
		// constants without either.
		_ = os.Unsetenv(v)
	}
}

// claim checks that each descriptor of in is open and marks it
// close-on-exec.
func claim(in Inherited) error {
	for i, fd := range in.FDs {
		if err := cloexec(fd); err != nil {
			return fmt.Errorf("%w: listener %q at fd %d (%s=%d): %w: the spawner must pass the listeners at fds %d to %d", ErrBadEnvironment, in.Names[i], fd, VarFDs, len(in.FDs), err, FirstFD, FirstFD+len(in.FDs)-1)
		}
	}
	if in.SockFD < 0 {
		return nil
	}
	if err := cloexec(in.SockFD); err != nil {
		return fmt.Errorf("%w: %s=%d: %w: the supervisor must pass its socketpair end there", ErrBadEnvironment, VarSockFD, in.SockFD, err)
	}
	return nil
}

// cloexec sets FD_CLOEXEC on fd; F_GETFD first proves that fd is open.
func cloexec(fd int) error {
	flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
	if errors.Is(err, unix.EBADF) {
		return fmt.Errorf("not open: %w", os.NewSyscallError("fcntl", err))
	}
	if err != nil {
		return os.NewSyscallError("fcntl", err)
	}
	if flags&unix.FD_CLOEXEC != 0 {
		return nil
	}
	_, err = unix.FcntlInt(uintptr(fd), unix.F_SETFD, flags|unix.FD_CLOEXEC)
	return os.NewSyscallError("fcntl", err)
}
