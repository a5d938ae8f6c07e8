package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"

	"github.com/handoff-go/handoff"
	"github.com/handoff-go/handoff/internal/sysx"
)

// keptListener holds a duplicate of a listening socket so that the daemon
// can stop accepting (close its listener) and accept again later on the
// very same kernel socket, with the connections that queued meanwhile.
type keptListener struct{ dup *os.File }

// keep duplicates ln's socket (F_DUPFD_CLOEXEC through SyscallConn, never
// Fd, which would switch the shared socket to blocking mode) and stops a
// Unix listener from unlinking its path on Close.
func keep(ln net.Listener) (*keptListener, error) {
	sc, ok := ln.(syscall.Conn)
	if !ok {
		return nil, fmt.Errorf("kvd: listener %s (%T) cannot be duplicated", ln.Addr(), ln)
	}
	if ul, ok := ln.(*net.UnixListener); ok {
		ul.SetUnlinkOnClose(false)
	}
	dup, err := sysx.DupFile(sc, ln.Addr().String())
	if err != nil {
		return nil, fmt.Errorf("kvd: keep listener %s: %w", ln.Addr(), err)
	}
	return &keptListener{dup: dup}, nil
}

// listen returns a new listener on the kept socket.
func (k *keptListener) listen() (net.Listener, error) {
	ln, err := net.FileListener(k.dup)
	if err != nil {
		return nil, fmt.Errorf("kvd: listen again on %s: %w", k.dup.Name(), err)
	}
	return ln, nil
}

func (k *keptListener) close() error { return k.dup.Close() }

// takeOrListen takes the inherited listener called name, or, when there is
// none, listens on addr (TCP) if it is set. It returns nil, nil when the
// protocol is not configured at all.
func takeOrListen(ls *handoff.Listeners, name, addr string) (net.Listener, error) {
	ln, err := ls.Listener(name)
	switch {
	case err == nil:
		return ln, nil
	case !errors.Is(err, handoff.ErrNoListener):
		return nil, fmt.Errorf("kvd: inherited listener %q: %w", name, err)
	case addr == "":
		return nil, nil
	}
	ln, err = net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("kvd: --%s %s: %w", name, addr, err)
	}
	return ln, nil
}
