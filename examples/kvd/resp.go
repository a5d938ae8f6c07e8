package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/handoff-go/handoff/internal/sysx"
)

// respHandler runs one command and writes its reply; it returns true when
// the connection should close after the reply (QUIT).
type respHandler func(ctx context.Context, args [][]byte, w respWriter) (quit bool)

// respTimeouts bound what a client can hold: an idle connection, a command
// that is slow to arrive, a reply that is slow to leave. quiet is how long
// a connection must have gone without a reply before drain stops waiting
// for it (see drain).
type respTimeouts struct{ idle, command, write, quiet time.Duration }

var defaultRESPTimeouts = respTimeouts{idle: 10 * time.Minute, command: 30 * time.Second, write: 30 * time.Second, quiet: 100 * time.Millisecond}

// respServer serves the RESP listener. Its drain works like the HTTP one:
// drain closes this process's listener (a duplicate keeps the socket) and
// moves clients off politely, seal closes every connection between
// commands and answers nothing more, resume accepts again on the kept
// socket.
type respServer struct {
	handle respHandler
	log    *slog.Logger
	to     respTimeouts
	ctx    context.Context // cancelled by close
	cancel context.CancelFunc

	mu         sync.Mutex
	kept       *keptListener
	ln         net.Listener  // nil while not accepting
	acceptDone chan struct{} // closed when the current accept loop exits
	conns      map[*respConn]struct{}
	draining   bool
	sealed     bool
	closed     bool
	changed    chan struct{} // closed and replaced on every change of conns
	wg         sync.WaitGroup
}

func newRESPServer(h respHandler, log *slog.Logger, to respTimeouts) *respServer {
	ctx, cancel := context.WithCancel(context.Background())
	return &respServer{
		handle: h, log: log, to: to, ctx: ctx, cancel: cancel,
		conns: make(map[*respConn]struct{}), changed: make(chan struct{}),
	}
}

// serve starts accepting on ln, keeping a duplicate of its socket.
func (s *respServer) serve(ln net.Listener) error {
	kept, err := keep(ln)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.kept = kept
	s.startLocked(ln)
	return nil
}

func (s *respServer) startLocked(ln net.Listener) {
	done := make(chan struct{})
	s.ln, s.acceptDone = ln, done
	s.wg.Add(1)
	go s.acceptLoop(ln, done)
}

// acceptLoop accepts until ln is closed; other accept errors (EMFILE, …)
// back off as net/http does.
func (s *respServer) acceptLoop(ln net.Listener, done chan struct{}) {
	defer s.wg.Done()
	defer close(done)
	var delay time.Duration
	for {
		nc, err := ln.Accept()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			s.log.Warn("kvd: resp accept", "err", err, "retry_in", delay)
			time.Sleep(delay)
			continue
		}
		delay = 0
		s.add(nc)
	}
}

// add starts serving a new connection.
func (s *respServer) add(nc net.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.sealed {
		nc.Close()
		return
	}
	c := &respConn{Conn: nc, srv: s, w: bufio.NewWriterSize(nc, 16<<10)}
	c.r = bufio.NewReaderSize(flushingReader{c}, respMaxInline)
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	go c.serve()
}

// remove forgets a connection whose goroutine is done.
func (s *respServer) remove(c *respConn) {
	c.Conn.Close()
	s.mu.Lock()
	delete(s.conns, c)
	s.notifyLocked()
	s.mu.Unlock()
	s.wg.Done()
}

func (s *respServer) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// openConns counts client connections.
func (s *respServer) openConns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// stopAccept closes the listener and waits until the accept loop exited,
// so no connection is accepted after it returns. Open connections go on.
func (s *respServer) stopAccept(ctx context.Context) error {
	s.mu.Lock()
	ln, done := s.ln, s.acceptDone
	s.ln = nil
	s.mu.Unlock()
	if ln == nil {
		return nil
	}
	if err := ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("kvd: resp: close listener: %w", err)
	}
	select {
	case <-done: // closing a listener stops its Accept at once; prefer that
		return nil
	default:
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("kvd: resp: stop accepting: %w", ctx.Err())
	}
}

// drain stops accepting and makes every connection close right after its
// next reply (when no further command is buffered or waiting in the
// socket). RESP has no "Connection: close", but a FIN sent together with
// a reply reaches the client before it sends its next command, so a client
// that checks its connection before reusing it (as Redis clients do)
// reconnects, into the listen backlog, without losing a command.
//
// It then waits, up to the idle-quiet time after the last reply, for the
// connections that are in use to get that reply: a client between two
// commands when drain starts is about to send the next one, and left to
// seal its connection would close under that command. Connections quiet
// for longer are left to seal. The wait is politeness, not correctness: when
// ctx ends first, drain returns without an error.
func (s *respServer) drain(ctx context.Context) error {
	s.mu.Lock()
	s.draining = true
	s.mu.Unlock()
	if err := s.stopAccept(ctx); err != nil {
		return err
	}
	s.waitCold(ctx)
	return nil
}

// waitCold waits until no open connection answered a command within the
// idle-quiet time, or ctx ends.
func (s *respServer) waitCold(ctx context.Context) {
	for {
		s.mu.Lock()
		wait, ch := s.warmWaitLocked(), s.changed
		s.mu.Unlock()
		if wait <= 0 {
			return
		}
		t := time.NewTimer(wait)
		select {
		case <-ch:
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
		if ctx.Err() != nil {
			return
		}
	}
}

// warmWaitLocked returns how long until the most recently answered open
// connection has been quiet for the idle-quiet time (0: none is warm).
func (s *respServer) warmWaitLocked() time.Duration {
	var wait time.Duration
	now := time.Now()
	for c := range s.conns {
		if at := c.repliedAt.Load(); at != 0 {
			wait = max(wait, time.Unix(0, at).Add(s.to.quiet).Sub(now))
		}
	}
	return wait
}

func (s *respServer) isDraining() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.draining
}

// seal stops accepting and closes every connection between commands: an
// idle one at once (unless a command already waits in its socket: that one
// is answered first), a busy one after the reply to its command and to the
// commands already pipelined behind it. It returns when every connection
// is gone; from then on no command is answered until resume.
//
// What a client can see: RESP has no way to warn a client that its
// connection is about to close, so a client that sends a command on an
// idle connection at the very instant Seal closes it (its bytes still on
// the wire) gets EOF or a reset and no reply. That command was not
// executed, so it is safe to send again on a new connection, which waits
// in the listen backlog for the successor. A command whose bytes have
// reached the socket when Seal runs is executed and answered first.
func (s *respServer) seal(ctx context.Context) error {
	if err := s.stopAccept(ctx); err != nil {
		return err
	}
	s.mu.Lock()
	s.draining, s.sealed = true, true
	for c := range s.conns {
		c.sealLocked()
	}
	s.mu.Unlock()
	for {
		s.mu.Lock()
		n, ch := len(s.conns), s.changed
		s.mu.Unlock()
		if n == 0 {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("kvd: resp: seal: %d connections busy: %w", n, ctx.Err())
		}
	}
}

// resume accepts again on the kept socket and answers commands again. It
// is idempotent.
func (s *respServer) resume() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.draining, s.sealed = false, false
	if s.ln != nil || s.closed || s.kept == nil {
		return nil
	}
	ln, err := s.kept.listen()
	if err != nil {
		return err
	}
	s.startLocked(ln)
	return nil
}

// close stops everything at once and waits for every goroutine.
func (s *respServer) close() {
	s.mu.Lock()
	s.closed = true
	ln, kept := s.ln, s.kept
	s.ln = nil
	for c := range s.conns {
		c.Conn.Close()
	}
	s.mu.Unlock()
	s.cancel()
	if ln != nil {
		ln.Close()
	}
	s.wg.Wait()
	if kept != nil {
		kept.close()
	}
}

// respConn is one client connection. The flags are guarded by srv.mu.
type respConn struct {
	net.Conn
	srv *respServer
	r   *bufio.Reader
	w   *bufio.Writer

	waiting  bool // blocked for the first byte of a command, nothing buffered
	closing  bool // seal ran: close at the next command boundary
	admitted bool // seal found a command waiting in the socket: answer it

	repliedAt atomic.Int64 // unix nanoseconds of the last reply (0: none yet)
}

// serve reads and answers commands until the client leaves, a protocol
// error, QUIT, or a seal.
func (c *respConn) serve() {
	defer c.srv.remove(c)
	for c.awaitCommand() {
		_ = c.SetReadDeadline(time.Now().Add(c.srv.to.command))
		args, err := readCommand(c.r)
		if err != nil {
			c.fail(err)
			return
		}
		quit := len(args) > 0 && c.srv.handle(c.srv.ctx, args, respWriter{c.w})
		c.repliedAt.Store(time.Now().UnixNano())
		if quit || c.leaveAfterReply() {
			_ = c.flush()
			return
		}
	}
}

// leaveAfterReply reports whether a draining server should close the
// connection after the reply just written: when no further command is
// buffered or waiting in the socket (one that is, from a client that sent
// before it could see the close, is answered first). Leaving, it sends
// the replies with the FIN in the same segment (finishWithFIN), so that a
// client never reads its reply without also seeing the close: its check
// of the connection before the next command finds it closed, and it sends
// nothing on it. Only a client that pipelines a command behind an
// unanswered one can still meet the close.
func (c *respConn) leaveAfterReply() bool {
	if c.r.Buffered() > 0 || !c.srv.isDraining() || sysx.RecvQueued(c.Conn) {
		return false
	}
	c.finishWithFIN()
	return true
}

// finishWithFIN sends the pending replies and the end of the stream
// together: with TCP_CORK set the reply is held back until the shutdown,
// which sets FIN on the last data segment and pushes it. The connection
// is closed by the caller.
func (c *respConn) finishWithFIN() {
	if sc, ok := c.Conn.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			_ = rc.Control(func(fd uintptr) { _ = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_CORK, 1) })
		}
	}
	_ = c.flush()
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
}

// flushingReader sends the replies written so far before it waits for
// more input, so pipelined replies go out in one write and no reply waits
// behind a command that is slow to arrive.
type flushingReader struct{ c *respConn }

// Read flushes pending replies, then reads from the connection.
func (f flushingReader) Read(p []byte) (int, error) {
	if err := f.c.flush(); err != nil {
		return 0, err
	}
	return f.c.Conn.Read(p)
}

// awaitCommand returns true when a command is there to be read. Commands
// already buffered (pipelined) are always answered; otherwise it waits
// for the next one, and after a seal it returns false (the connection is
// between commands, so it closes).
func (c *respConn) awaitCommand() bool {
	if c.r.Buffered() > 0 {
		return true
	}
	if c.flush() != nil || !c.srv.startWaiting(c) {
		return false
	}
	_ = c.SetReadDeadline(time.Now().Add(c.srv.to.idle))
	_, err := c.r.Peek(1)
	return c.srv.stopWaiting(c) && err == nil
}

func (c *respConn) flush() error {
	_ = c.SetWriteDeadline(time.Now().Add(c.srv.to.write))
	return c.w.Flush()
}

// fail answers a protocol error before the connection closes; any other
// error (EOF, timeout, closed) just ends it.
func (c *respConn) fail(err error) {
	var pe *protocolError
	if errors.As(err, &pe) {
		respWriter{c.w}.errorf("ERR Protocol error: %s", pe.detail)
		_ = c.flush()
	}
}

func (s *respServer) startWaiting(c *respConn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	c.waiting = !c.closing
	return c.waiting
}

func (s *respServer) stopWaiting(c *respConn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	ok := !c.closing || c.admitted
	c.waiting, c.admitted = false, false
	return ok
}

// sealLocked marks c to close at its next command boundary and closes it
// now if it is idle there, unless a command already waits in its socket.
func (c *respConn) sealLocked() {
	c.closing = true
	if !c.waiting {
		return
	}
	if sysx.RecvQueued(c.Conn) {
		c.admitted = true
		return
	}
	c.Conn.Close()
}
