package handoff

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// KindError means a listener was asked for as a kind it is not: Listener on
// a UDP socket, PacketConn on a TCP listener, either on a plain file. The
// entry stays available to the right method, which the message names.
type KindError struct {
	Name string // the listener's name
	Want string // what the method needs, e.g. "listening stream socket"
	Got  string // what the entry is, e.g. "udp socket"
	use  string // the method that takes what the entry is
}

// Unwrap returns [ErrWrongKind].
func (e *KindError) Unwrap() error { return ErrWrongKind }

// Error names the listener, what it is, and the method that takes it.
func (e *KindError) Error() string {
	return fmt.Sprintf("handoff: listener %q is a %s, not a %s; take it with %s", e.Name, e.Got, e.Want, e.use)
}

// kindWant is what a take method accepts.
type kindWant int

const (
	kindAny kindWant = iota
	kindListener
	kindPacket
)

// check returns a *KindError unless e is of kind w.
func (w kindWant) check(e *listenerEntry) error {
	if w == kindAny {
		return nil
	}
	k, err := readSockKind(e.fd)
	if err != nil {
		return fmt.Errorf("handoff: listener %q: %w", e.name, err)
	}
	if k.use() == w {
		return nil
	}
	return &KindError{Name: e.name, Want: w.String(), Got: k.String(), use: k.use().method()}
}

func (w kindWant) String() string {
	switch w {
	case kindListener:
		return "listening stream socket (tcp, unix)"
	case kindPacket:
		return "datagram socket (udp, unixgram)"
	}
	return "file"
}

func (w kindWant) method() string {
	switch w {
	case kindListener:
		return "Listener"
	case kindPacket:
		return "PacketConn"
	}
	return "File"
}

// sockKind is what the kernel says a descriptor is.
type sockKind struct {
	socket    bool // false for a file that is not a socket
	domain    int  // AF_*
	typ       int  // SOCK_*
	listening bool // SO_ACCEPTCONN
}

// readSockKind asks the kernel what fd is (SO_TYPE, SO_DOMAIN,
// SO_ACCEPTCONN); a file that is not a socket is not an error.
func readSockKind(fd int) (sockKind, error) {
	typ, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE)
	if errors.Is(err, unix.ENOTSOCK) {
		return sockKind{}, nil
	}
	if err != nil {
		return sockKind{}, os.NewSyscallError("getsockopt", err)
	}
	domain, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_DOMAIN)
	if err != nil {
		return sockKind{}, os.NewSyscallError("getsockopt", err)
	}
	acc, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ACCEPTCONN)
	if err != nil {
		return sockKind{}, os.NewSyscallError("getsockopt", err)
	}
	return sockKind{socket: true, domain: domain, typ: typ, listening: acc != 0}, nil
}

// use is the take method that serves k.
func (k sockKind) use() kindWant {
	switch {
	case !k.socket || k.network() == "":
		return kindAny
	case k.typ == unix.SOCK_DGRAM:
		return kindPacket
	case k.listening:
		return kindListener
	}
	return kindAny
}

// network names k the way package net does, or "" for a kind net does not
// handle.
func (k sockKind) network() string {
	inet := k.domain == unix.AF_INET || k.domain == unix.AF_INET6
	switch {
	case inet && k.typ == unix.SOCK_STREAM:
		return "tcp"
	case inet && k.typ == unix.SOCK_DGRAM:
		return "udp"
	case k.domain == unix.AF_UNIX && k.typ == unix.SOCK_STREAM:
		return "unix"
	case k.domain == unix.AF_UNIX && k.typ == unix.SOCK_DGRAM:
		return "unixgram"
	case k.domain == unix.AF_UNIX && k.typ == unix.SOCK_SEQPACKET:
		return "unixpacket"
	}
	return ""
}

func (k sockKind) String() string {
	switch {
	case !k.socket:
		return "file that is not a socket"
	case k.network() == "":
		return fmt.Sprintf("socket of domain %d, type %d", k.domain, k.typ)
	case k.listening:
		return k.network() + " listening socket"
	case k.typ == unix.SOCK_DGRAM:
		return k.network() + " socket"
	}
	return k.network() + " socket that is not listening"
}

// isUnixStream reports whether k can carry the supervisor protocol.
func (k sockKind) isUnixStream() bool {
	return k.socket && k.domain == unix.AF_UNIX && k.typ == unix.SOCK_STREAM
}
