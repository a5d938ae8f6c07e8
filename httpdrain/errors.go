package httpdrain

import "errors"

// Sentinel errors of the adapter.
var (
	// ErrNotDuplicable means a listener passed to Serve does not implement
	// syscall.Conn, so it cannot be kept for Resume. Pass the *net.TCPListener
	// or *net.UnixListener itself, not a wrapper.
	ErrNotDuplicable = errors.New("handoff: httpdrain: listener cannot be duplicated (not a syscall.Conn)")
)
