package handoff

import (
	"fmt"
	"net"
	"os"

	"github.com/handoff-go/handoff/internal/listenenv"
)

// Role is what this process is, as [DetectRole] found it: a [*ColdStart] or
// a [*Successor]. Switch on the concrete type; the method is unexported so
// that no other type can pose as a role.
type Role interface{ isRole() }

// ColdStart is the role of a daemon that has no predecessor to take over
// from: started first by a supervisor (or restarted after a crash), by
// systemd socket activation, or by hand. It opens its state, binds the
// control socket with [BindColdStart] and serves.
type ColdStart struct {
	// Listeners are the inherited listeners, never nil but possibly empty:
	// a daemon started by hand binds its own sockets (see [NewListeners]).
	Listeners *Listeners

	// Note says why inherited variables were ignored (LISTEN_PID named
	// another process), so the daemon can log why it got no listeners; it
	// is empty otherwise.
	Note string
}

func (*ColdStart) isRole() {}

// DetectRole reads the inherited-socket contract (LISTEN_FDS,
// LISTEN_FDNAMES, LISTEN_PID, HANDOFF_ROLE, HANDOFF_SOCK_FD; DESIGN section
// 4), returns a [*ColdStart] or a [*Successor], and removes the variables
// from the environment so that a later re-exec or child of the daemon starts
// cold. Every inherited descriptor is made close-on-exec.
//
// Call it once, early in main. A second call sees no variables and returns
// a cold start without listeners. LISTEN_PID may be unset (a supervisor using
// os/exec cannot set it); if it names another process the variables are
// ignored and [ColdStart.Note] says so.
//
// An error wraps [ErrBadEnvironment] and names the variable to fix. Nothing
// is closed then: the process cannot tell which descriptors are its own, and
// should exit.
func DetectRole() (Role, error) {
	in, err := listenenv.Read()
	if err != nil {
		return nil, fmt.Errorf("handoff: inherited listeners: %w", err)
	}
	ls := inheritedListeners(in)
	if in.Role != listenenv.RoleSuccessor {
		return &ColdStart{Listeners: ls, Note: in.Note}, nil
	}
	conn, err := supervisorConn(in.SockFD)
	if err != nil {
		return nil, err
	}
	return newSuccessor(conn, ls), nil
}

// supervisorConn wraps the inherited socketpair end once the kernel has
// confirmed it is a Unix stream socket; the returned conn has its own
// duplicate and the inherited descriptor is closed. On error nothing is
// closed: the environment is wrong, so fd may belong to someone else.
func supervisorConn(fd int) (*net.UnixConn, error) {
	k, err := readSockKind(fd)
	if err != nil {
		return nil, fmt.Errorf("handoff: %s=%d: %w: %w", listenenv.VarSockFD, fd, err, ErrBadEnvironment)
	}
	if !k.isUnixStream() {
		return nil, fmt.Errorf("handoff: %s=%d is a %s, not a Unix stream socket: the supervisor must pass its socketpair end there: %w", listenenv.VarSockFD, fd, k, ErrBadEnvironment)
	}
	f := os.NewFile(uintptr(fd), "supervisor socketpair")
	defer f.Close()
	c, err := net.FileConn(f)
	if err != nil {
		return nil, fmt.Errorf("handoff: %s=%d: %w: %w", listenenv.VarSockFD, fd, err, ErrBadEnvironment)
	}
	uc, ok := c.(*net.UnixConn)
	if !ok {
		c.Close()
		return nil, fmt.Errorf("handoff: %s=%d is a %T: %w", listenenv.VarSockFD, fd, c, ErrBadEnvironment)
	}
	return uc, nil
}
