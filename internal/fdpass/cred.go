package fdpass

import (
	"fmt"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// EnablePassCred turns on SO_PASSCRED on c, so that the kernel attaches the
// sender's pid, uid and gid (SCM_CREDENTIALS) to everything c receives. On a
// socketpair this is the only way to learn who is writing: SO_PEERCRED there
// names the process that created the pair.
func EnablePassCred(c syscall.Conn) error {
	return control(c, "setsockopt SO_PASSCRED", func(fd int) error {
		return unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PASSCRED, 1)
	})
}

// control runs fn on c's descriptor inside RawConn.Control and wraps its
// failure as a syscall error named op.
func control(c syscall.Conn, op string, fn func(fd int) error) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return fmt.Errorf("handoff: %s: %w", op, err)
	}
	var opErr error
	if err := rc.Control(func(fd uintptr) { opErr = fn(int(fd)) }); err != nil {
		return fmt.Errorf("handoff: %s: %w", op, err)
	}
	if opErr != nil {
		return fmt.Errorf("handoff: %w", os.NewSyscallError(op, opErr))
	}
	return nil
}
