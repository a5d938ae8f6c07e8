package httpdrain

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"os"
	"sync"
	"time"
)

// Server drains an [http.Server] for a handoff. Create it with [New].
type Server struct {
	grace    time.Duration
	quiet    time.Duration
	srv      *http.Server
	inner    http.Handler
	userHook func(net.Conn, http.ConnState)
	userCtx  func(context.Context, net.Conn) context.Context

	mu       sync.Mutex
	conns    map[*conn]struct{}
	busy     int // conns with a request in progress
	inflight int // handlers running
	draining bool
	sealed   bool
	closed   bool
	loops    map[*loop]struct{}
	changed  chan struct{} // closed and replaced whenever the fields above change
	closedCh chan struct{}
}

// loop is one listener passed to Serve.
type loop struct {
	dup      *os.File          // kept for Resume; never Fd()'d
	ln       net.Listener      // the listener being served
	stopping bool              // Drain or Seal closed ln on purpose
	stopped  bool              // the Serve loop saw it and waits for Resume
	resume   chan net.Listener // the rebuilt listener; capacity 1
}

// DefaultNewConnGrace is how long Drain waits, by default, for a
// connection accepted before the drain to send its first request.
const DefaultNewConnGrace = time.Second

// DefaultIdleQuiet is how long, by default, a keep-alive connection must
// have been idle before Drain counts it as quiet.
const DefaultIdleQuiet = 100 * time.Millisecond

// Option configures a [Server].
type Option func(*Server)

// WithNewConnGrace sets how long Drain waits for a connection that was
// accepted but has not sent a byte yet. Its client has just connected and
// is about to send a request (closing such a connection fails the request
// even for clients that retry on reused connections, since it is a fresh
// one), so Drain waits for that request and answers it with "Connection:
// close". A connection still silent after the grace is treated as idle: a
// client that preconnects and stays silent delays a drain by at most this
// much. Default: [DefaultNewConnGrace]; 0 treats new connections as idle
// at once.
func WithNewConnGrace(d time.Duration) Option { return func(s *Server) { s.grace = d } }

// WithIdleQuiet sets how long a keep-alive connection must have been idle
// before Drain stops waiting for it. A client in a closed loop sends its
// next request on the connection right after the previous response; Drain
// waits for that request and answers it with "Connection: close", so the
// client moves to a new connection (which waits in the listen backlog for
// the successor) instead of meeting a close at Seal with its request on
// the way. A connection idle for longer is left to Seal. It delays a drain
// by at most this much. Default: [DefaultIdleQuiet]; 0 does not wait.
func WithIdleQuiet(d time.Duration) Option { return func(s *Server) { s.quiet = d } }

// New wraps srv. It takes over srv.Handler (nil means
// [http.DefaultServeMux]), srv.ConnState and srv.ConnContext, calling the
// previous ones; do not change these fields afterwards, and call the
// Server's methods instead of srv.Serve, srv.Shutdown or srv.Close.
func New(srv *http.Server, opts ...Option) *Server {
	s := &Server{
		grace: DefaultNewConnGrace, quiet: DefaultIdleQuiet,
		srv: srv, inner: srv.Handler, userHook: srv.ConnState, userCtx: srv.ConnContext,
		conns: make(map[*conn]struct{}), loops: make(map[*loop]struct{}),
		changed: make(chan struct{}), closedCh: make(chan struct{}),
	}
	if s.inner == nil {
		s.inner = http.DefaultServeMux
	}
	for _, o := range opts {
		o(s)
	}
	srv.Handler = http.HandlerFunc(s.serveHTTP)
	srv.ConnState = s.connState
	srv.ConnContext = s.connContext
	return s
}

// OpenConns returns the number of client connections currently open.
func (s *Server) OpenConns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// serveHTTP is the gate around the daemon's handler.
func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	c, _ := r.Context().Value(connKey{}).(*conn)
	if !s.enter(c) {
		refuse(w)
		return
	}
	defer s.exit(c)
	dw := &drainWriter{ResponseWriter: w, s: s}
	s.inner.ServeHTTP(dw, r)
	dw.commit() // a handler that wrote nothing gets its header here
}

// enter admits a request to the handler: always before Seal, afterwards
// only the request of a connection that was busy when Seal ran.
func (s *Server) enter(c *conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sealed && (c == nil || c.phase != busy) {
		return false
	}
	s.inflight++
	if c != nil {
		s.setPhaseLocked(c, busy)
	}
	return true
}

// exit ends a request; net/http still writes the rest of its response.
func (s *Server) exit(c *conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inflight--
	if c != nil {
		s.setPhaseLocked(c, finishing)
		c.idleAt = time.Now() // the response is done but for its writing
	}
	s.notifyLocked()
}

// refuse closes the connection of a request that arrived after Seal,
// before anything is written: the client sees the connection close and
// knows the request was not processed.
func refuse(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler) // closes the connection, writes nothing
	}
	conn.Close()
}

// drainWriter adds "Connection: close" to the response header if the
// server is draining when the header is committed.
type drainWriter struct {
	http.ResponseWriter
	s         *Server
	committed bool
}

func (w *drainWriter) commit() {
	if w.committed {
		return
	}
	w.committed = true
	if w.s.isDraining() {
		w.Header().Set("Connection", "close")
	}
}

// WriteHeader commits the header (1xx responses do not).
func (w *drainWriter) WriteHeader(code int) {
	if code >= 200 {
		w.commit()
	}
	w.ResponseWriter.WriteHeader(code)
}

// Write commits the header before the first body byte.
func (w *drainWriter) Write(b []byte) (int, error) {
	w.commit()
	return w.ResponseWriter.Write(b)
}

// Flush commits the header and flushes, for handlers that assert
// [http.Flusher].
func (w *drainWriter) Flush() {
	w.commit()
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

// Hijack hands the connection to the handler, for handlers that assert
// [http.Hijacker].
func (w *drainWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return http.NewResponseController(w.ResponseWriter).Hijack()
}

// Unwrap lets [http.ResponseController] reach the server's writer.
func (w *drainWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (s *Server) isDraining() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.draining
}

// notifyLocked wakes everyone waiting for a change. Called with mu held.
func (s *Server) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// waitFor waits until cond (evaluated with mu held) is true.
func (s *Server) waitFor(ctx context.Context, cond func() bool) error {
	return s.waitUntil(ctx, func() (bool, time.Duration) { return cond(), 0 })
}

// waitUntil waits until cond (evaluated with mu held) is true. cond may
// also ask to be evaluated again after a delay, for conditions that change
// with time alone.
func (s *Server) waitUntil(ctx context.Context, cond func() (bool, time.Duration)) error {
	for {
		s.mu.Lock()
		ok, recheck := cond()
		ch := s.changed
		s.mu.Unlock()
		if ok {
			return nil
		}
		var timer *time.Timer
		var timeout <-chan time.Time
		if recheck > 0 {
			timer = time.NewTimer(recheck)
			timeout = timer.C
		}
		select {
		case <-ch:
		case <-timeout:
		case <-ctx.Done():
		}
		if timer != nil {
			timer.Stop()
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}
