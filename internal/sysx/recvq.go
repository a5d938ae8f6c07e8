package sysx

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// RecvQueued reports whether bytes wait in the receive queue of c's socket
// (SIOCINQ): a request or command that arrived but was not read yet. A
// connection without a descriptor reports false.
func RecvQueued(c any) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false
	}
	n := 0
	_ = control(sc, func(fd uintptr) { n, _ = unix.IoctlGetInt(int(fd), unix.SIOCINQ) })
	return n > 0
}
