package httpdrain

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"
)

// Drain stops accepting connections and turns keep-alive off: requests on
// open connections are still answered, each response says "Connection:
// close", and the connection is closed after it. Drain returns when no
// request is in progress and every connection accepted before the drain
// has sent its first request (or stayed silent for the new-connection
// grace, see [WithNewConnGrace]) and every keep-alive connection has been
// idle for the idle-quiet time (see [WithIdleQuiet]), with the number of
// connections still
// open (idle ones, which Seal closes). If ctx ends first it returns ctx's
// error; call [Server.Resume] to undo the drain.
func (s *Server) Drain(ctx context.Context) (open int, err error) {
	s.mu.Lock()
	s.draining = true
	lns := s.stopAcceptingLocked()
	s.notifyLocked()
	s.mu.Unlock()
	err = closeAll(lns)
	if werr := s.waitQuiet(ctx, true); werr != nil {
		err = fmt.Errorf("handoff: httpdrain: drain: %w", werr)
	}
	return s.OpenConns(), err
}

// Seal answers the requests in progress (and those whose bytes already
// wait in a socket when Seal starts), closes every other connection
// between requests, and then answers nothing until [Server.Resume]. It
// implies Drain. If ctx ends before the requests in progress finish, it
// returns ctx's error and the server stays sealed.
func (s *Server) Seal(ctx context.Context) error {
	s.mu.Lock()
	s.draining, s.sealed = true, true
	lns := s.stopAcceptingLocked()
	idle := s.sealConnsLocked()
	s.notifyLocked()
	s.mu.Unlock()
	err := closeAll(lns)
	for _, c := range idle {
		c.Conn.Close()
	}
	if werr := s.waitQuiet(ctx, false); werr != nil {
		err = fmt.Errorf("handoff: httpdrain: seal: %w", werr)
	}
	return err
}

// sealConnsLocked admits connections whose request bytes already arrived
// and returns the idle others, to be closed. Connections still busy or
// finishing a response are left to finish.
func (s *Server) sealConnsLocked() []*conn {
	var toClose []*conn
	for c := range s.conns {
		switch {
		case c.phase != idle:
		case c.pending():
			s.setPhaseLocked(c, busy)
		default:
			toClose = append(toClose, c)
		}
	}
	return toClose
}

// waitQuiet waits until accept stopped and no request is in progress,
// and, with fresh, until no connection younger than the grace is silent.
func (s *Server) waitQuiet(ctx context.Context, fresh bool) error {
	err := s.waitUntil(ctx, func() (bool, time.Duration) {
		if !s.acceptStoppedLocked() || s.busy != 0 || s.inflight != 0 {
			return false, 0
		}
		if !fresh {
			return true, 0
		}
		wait := max(s.freshWaitLocked(), s.warmWaitLocked())
		return wait == 0, wait
	})
	if err != nil {
		s.mu.Lock()
		defer s.mu.Unlock()
		return fmt.Errorf("%d requests in progress: %w", max(s.busy, s.inflight), err)
	}
	return nil
}

// freshWaitLocked returns how long until the youngest silent connection
// leaves its grace (0: none is in it).
func (s *Server) freshWaitLocked() time.Duration {
	var wait time.Duration
	now := time.Now()
	for c := range s.conns {
		if left := c.accepted.Add(s.grace).Sub(now); c.fresh && left > wait {
			wait = left
		}
	}
	return wait
}

// warmWaitLocked returns how long until the most recently active idle
// keep-alive connection has been quiet for the idle-quiet time (0: none is
// warm). A connection still finishing a response counts from its handler's
// return: it turns idle in a moment, its response perhaps written before
// keep-alive was switched off, and its client's next request may be on the
// way. Counting from the handler's return, a slow client reading a long
// response holds the drain for the idle-quiet time at most.
func (s *Server) warmWaitLocked() time.Duration {
	var wait time.Duration
	now := time.Now()
	for c := range s.conns {
		if c.phase == busy || c.fresh || c.idleAt.IsZero() {
			continue
		}
		if left := c.idleAt.Add(s.quiet).Sub(now); left > wait {
			wait = left
		}
	}
	return wait
}

// Resume undoes Drain and Seal: keep-alive is on again, requests are
// answered again, and every listener is rebuilt from the duplicate Serve
// kept, so connections that queued meanwhile are served. It is idempotent.
// ctx bounds the wait for a listener that a drain is still closing.
func (s *Server) Resume(ctx context.Context) error {
	if err := s.waitFor(ctx, s.acceptStoppedLocked); err != nil {
		return fmt.Errorf("handoff: httpdrain: resume: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return http.ErrServerClosed
	}
	s.draining, s.sealed = false, false
	s.notifyLocked()
	return s.restartLocked()
}

// Close closes listeners and connections at once (no draining) and waits
// until every Serve call has returned and released its duplicate. It is
// idempotent.
func (s *Server) Close() error {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		close(s.closedCh)
	}
	lns := s.stopAcceptingLocked()
	s.mu.Unlock()
	err := errors.Join(s.srv.Close(), closeAll(lns))
	_ = s.waitFor(context.Background(), func() bool { return len(s.loops) == 0 })
	return err
}

// closeAll closes listeners; an already closed one is not an error.
func closeAll(lns []net.Listener) error {
	var errs []error
	for _, ln := range lns {
		if err := ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, fmt.Errorf("handoff: httpdrain: close listener %s: %w", ln.Addr(), err))
		}
	}
	return errors.Join(errs...)
}
