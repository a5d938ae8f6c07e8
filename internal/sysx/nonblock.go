package sysx

import (
	"fmt"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// IsNonblock reports whether O_NONBLOCK is set on the open file description
// behind c. The flag belongs to the description, which every dup and every
// process holding the socket shares, so one careless Fd in any of them
// switches all of them to blocking mode; tests use this to catch that.
func IsNonblock(c syscall.Conn) (bool, error) {
	var (
		flags   int
		flagErr error
	)
	if err := control(c, func(fd uintptr) { flags, flagErr = unix.FcntlInt(fd, unix.F_GETFL, 0) }); err != nil {
		return false, fmt.Errorf("handoff: read file status flags: %w", err)
	}
	if flagErr != nil {
		return false, fmt.Errorf("handoff: read file status flags: %w", os.NewSyscallError("fcntl", flagErr))
	}
	return flags&unix.O_NONBLOCK != 0, nil
}
