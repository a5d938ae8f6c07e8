package httpdrain

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"syscall"

	"github.com/handoff-go/handoff/internal/sysx"
)

// Serve serves HTTP on ln and blocks for the server's whole life: a Drain
// or Seal pauses it, Resume continues it on a listener rebuilt from a
// duplicate of ln's socket that Serve keeps (so a drain never closes the
// socket in this process either). It returns [http.ErrServerClosed] after
// [Server.Close], and any other error if the listener fails on its own.
//
// ln must implement [syscall.Conn] ([*net.TCPListener],
// [*net.UnixListener]); a Unix listener's socket file is never unlinked by
// this package.
func (s *Server) Serve(ln net.Listener) error {
	l, parked, err := s.addLoop(ln)
	if err != nil {
		return err
	}
	defer s.removeLoop(l)
	if parked { // Serve raced with a drain: wait for Resume
		ln.Close()
		ln, err = s.afterServe(l, nil)
	}
	for ln != nil {
		err = s.srv.Serve(trackedListener{Listener: ln, s: s})
		ln, err = s.afterServe(l, err)
	}
	return err
}

// addLoop keeps a duplicate of ln and registers it. If the server is
// drained it registers the loop as stopping (parked).
func (s *Server) addLoop(ln net.Listener) (*loop, bool, error) {
	sc, ok := ln.(syscall.Conn)
	if !ok {
		return nil, false, fmt.Errorf("%w: %T", ErrNotDuplicable, ln)
	}
	if ul, ok := ln.(*net.UnixListener); ok {
		ul.SetUnlinkOnClose(false) // the supervisor's socket outlives us
	}
	dup, err := sysx.DupFile(sc, "httpdrain "+ln.Addr().String())
	if err != nil {
		return nil, false, fmt.Errorf("handoff: httpdrain: keep listener %s: %w", ln.Addr(), err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		dup.Close()
		return nil, false, http.ErrServerClosed
	}
	l := &loop{dup: dup, ln: ln, stopping: s.draining, resume: make(chan net.Listener, 1)}
	s.loops[l] = struct{}{}
	return l, s.draining, nil
}

// removeLoop forgets l and closes its duplicate.
func (s *Server) removeLoop(l *loop) {
	s.mu.Lock()
	delete(s.loops, l)
	s.notifyLocked()
	s.mu.Unlock()
	l.dup.Close()
}

// afterServe runs when http.Server.Serve returned. If Drain or Seal
// stopped the listener it waits for Resume and returns the new listener;
// otherwise it returns the error that ends Serve.
func (s *Server) afterServe(l *loop, serveErr error) (net.Listener, error) {
	s.mu.Lock()
	switch {
	case s.closed || errors.Is(serveErr, http.ErrServerClosed):
		s.mu.Unlock()
		return nil, http.ErrServerClosed
	case !l.stopping:
		s.mu.Unlock()
		return nil, fmt.Errorf("handoff: httpdrain: serve %s: %w", l.dup.Name(), serveErr)
	}
	l.stopped = true
	s.notifyLocked()
	s.mu.Unlock()
	select {
	case ln := <-l.resume:
		return ln, nil
	case <-s.closedCh:
		return nil, http.ErrServerClosed
	}
}

// stopAcceptingLocked marks every serving loop as stopping and returns the
// listeners to close (outside the lock).
func (s *Server) stopAcceptingLocked() []net.Listener {
	var lns []net.Listener
	for l := range s.loops {
		if !l.stopping {
			l.stopping = true
			lns = append(lns, l.ln)
		}
	}
	return lns
}

// acceptStoppedLocked reports whether every loop stopped accepting.
func (s *Server) acceptStoppedLocked() bool {
	for l := range s.loops {
		if l.stopping && !l.stopped {
			return false
		}
	}
	return true
}

// restartLocked rebuilds the listener of every stopped loop from its
// duplicate and hands it to the loop.
func (s *Server) restartLocked() error {
	var errs []error
	for l := range s.loops {
		if !l.stopped {
			continue
		}
		ln, err := net.FileListener(l.dup) // dups again; l.dup stays for the next time
		if err != nil {
			errs = append(errs, fmt.Errorf("handoff: httpdrain: rebuild listener %s: %w", l.dup.Name(), err))
			continue
		}
		l.ln, l.stopping, l.stopped = ln, false, false
		l.resume <- ln
	}
	return errors.Join(errs...)
}
