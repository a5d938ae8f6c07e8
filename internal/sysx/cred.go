package sysx

import (
	"fmt"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// PeerCred returns the kernel's SO_PEERCRED credentials of the peer of a
// connected Unix socket: pid, uid and gid as they were when the peer
// connected (or created a socketpair), which the peer cannot forge. Note that
// on a socketpair they name the process that created the pair, not the one
// holding the other end; check SCM_CREDENTIALS there instead.
func PeerCred(c syscall.Conn) (*unix.Ucred, error) {
	var (
		cred    *unix.Ucred
		credErr error
	)
	if err := control(c, func(fd uintptr) {
		cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return nil, fmt.Errorf("handoff: peer credentials: %w", err)
	}
	if credErr != nil {
		return nil, fmt.Errorf("handoff: peer credentials: %w", os.NewSyscallError("getsockopt", credErr))
	}
	return cred, nil
}

// control runs fn on the descriptor behind c without ever calling Fd, which
// would switch a shared socket to blocking mode.
func control(c syscall.Conn, fn func(fd uintptr)) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	return rc.Control(fn)
}

// TrustedUID reports whether a peer running as uid may drive this process's
// control protocol: root, or the same effective uid as this process.
func TrustedUID(uid uint32) bool { return uid == 0 || int(uid) == os.Geteuid() }
