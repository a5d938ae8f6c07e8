package httpdrain

import (
	"context"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/handoff-go/handoff/internal/sysx"
)

type connKey struct{}

// phase is where a connection is between requests. Guarded by Server.mu.
type phase int

const (
	// idle: no request in progress; Seal may close the connection.
	idle phase = iota
	// busy: the server read a byte of a request whose handler has not
	// returned yet; Drain and Seal wait for it.
	busy
	// finishing: the handler returned and net/http is still writing the
	// response; Seal leaves it alone (net/http closes it, or it turns idle
	// and the ConnState hook closes it).
	finishing
)

// conn watches the bytes the server reads, so that the adapter knows when
// a request is in progress even before its header is complete.
type conn struct {
	net.Conn
	s        *Server
	phase    phase     // guarded by s.mu
	refused  bool      // guarded by s.mu: bytes arrived after Seal
	fresh    bool      // guarded by s.mu: no byte read yet
	accepted time.Time // when the listener returned it
	idleAt   time.Time // guarded by s.mu: when its last handler returned or it last turned idle
}

// trackedListener wraps every accepted connection.
type trackedListener struct {
	net.Listener
	s *Server
}

// Accept returns the next connection, wrapped.
func (l trackedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &conn{Conn: c, s: l.s, fresh: true, accepted: time.Now()}, nil
}

// Read marks the connection busy when the first byte of a request
// arrives. After Seal, a connection that was not busy gets no byte
// through: Read reports EOF from then on, so net/http finishes what it is
// writing and closes the connection, and the request is never processed.
// (Closing here instead could cut off a response still being flushed.)
func (c *conn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if !c.s.admit(c, n) {
		return 0, io.EOF
	}
	return n, err
}

// CloseWrite keeps net/http's graceful close (FIN, then linger) working
// through the wrapper.
func (c *conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// ReadFrom keeps sendfile and splice working through the wrapper.
func (c *conn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{c.Conn}, r)
}

// pending reports whether bytes wait in the socket's receive queue.
func (c *conn) pending() bool { return sysx.RecvQueued(c.Conn) }

// admit decides whether n bytes just read may reach net/http: they may
// unless the server is sealed and c has no admitted request in progress.
// The first byte of a request marks the connection busy.
func (s *Server) admit(c *conn, n int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case c.refused:
		return false
	case n == 0:
		return true
	}
	s.clearFreshLocked(c)
	switch {
	case c.phase == busy:
		return true
	case s.sealed:
		c.refused = true
		return false
	}
	s.setPhaseLocked(c, busy)
	return true
}

// clearFreshLocked marks c as having read its first byte (or gone).
func (s *Server) clearFreshLocked(c *conn) {
	if c.fresh {
		c.fresh = false
		s.notifyLocked()
	}
}

// setPhaseLocked moves c to p, keeping the busy count.
func (s *Server) setPhaseLocked(c *conn, p phase) {
	if c.phase == p {
		return
	}
	if c.phase == busy {
		s.busy--
	}
	if p == busy {
		s.busy++
	}
	c.phase = p
	s.notifyLocked()
}

// connContext lets the handler find its connection.
func (s *Server) connContext(ctx context.Context, c net.Conn) context.Context {
	if s.userCtx != nil {
		ctx = s.userCtx(ctx, c)
	}
	return context.WithValue(ctx, connKey{}, c)
}

// connState tracks connections. A connection that turns idle after Seal
// is closed: it is between requests.
func (s *Server) connState(nc net.Conn, st http.ConnState) {
	if c, ok := nc.(*conn); ok && s.track(c, st) {
		c.Conn.Close()
	}
	if s.userHook != nil {
		s.userHook(nc, st)
	}
}

// track records a state change and reports whether to close the
// connection.
func (s *Server) track(c *conn, st http.ConnState) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	defer s.notifyLocked()
	switch st {
	case http.StateNew:
		s.conns[c] = struct{}{}
	case http.StateActive:
		if c.phase != busy && !s.sealed {
			s.setPhaseLocked(c, busy)
		}
	case http.StateIdle:
		s.setPhaseLocked(c, idle)
		c.idleAt = time.Now()
		return s.sealed
	case http.StateClosed, http.StateHijacked:
		s.setPhaseLocked(c, idle)
		s.clearFreshLocked(c)
		delete(s.conns, c)
	}
	return false
}
