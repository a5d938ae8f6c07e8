package httpdrain

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/handoff-go/handoff/internal/testproc"
)

// testCtx bounds a wait; the deadline only turns a hang into a failure.
func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// echo answers a POST with its body.
var echo = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	w.Write(b)
})

// serve starts a Server for h on ln; cleanup closes it and checks that
// Serve returned ErrServerClosed.
func serve(t *testing.T, ln net.Listener, h http.Handler) *Server {
	t.Helper()
	s := New(&http.Server{
		Handler: h, ReadHeaderTimeout: 30 * time.Second,
		ErrorLog: log.New(io.Discard, "", 0),
	})
	errc := make(chan error, 1)
	go func() { errc <- s.Serve(ln) }()
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
	})
	return s
}

func listenTCP(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// postClient sends POSTs whose body cannot be replayed (no GetBody) over
// keep-alive, so net/http's Transport never retries one behind our back:
// every failure is visible.
type postClient struct {
	url    string
	tr     *http.Transport
	reused atomic.Int64
}

func newPostClient(t *testing.T, addr string) *postClient {
	c := &postClient{url: "http://" + addr + "/", tr: &http.Transport{}}
	t.Cleanup(c.tr.CloseIdleConnections)
	return c
}

// post sends body and returns the response body and whether the server
// said "Connection: close".
func (c *postClient) post(ctx context.Context, body string) (string, bool, error) {
	trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) {
		if i.Reused {
			c.reused.Add(1)
		}
	}}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace),
		http.MethodPost, c.url, io.NopCloser(strings.NewReader(body)))
	if err != nil {
		return "", false, err
	}
	req.ContentLength = int64(len(body))
	resp, err := c.tr.RoundTrip(req)
	if err != nil {
		return "", false, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), resp.Close, err
}

// TestDrain_keepAliveClientsGetEveryAnswer: closed-loop POST clients on
// keep-alive connections across a Drain. Every request is answered
// (invariant 4: a request in flight is always answered), and each client's
// connection ends with a response that says "Connection: close", after
// which the client stops.
func TestDrain_keepAliveClientsGetEveryAnswer(t *testing.T) {
	ln := listenTCP(t)
	s := serve(t, ln, echo)
	ctx := testCtx(t)
	const clients = 8
	var warm, done sync.WaitGroup
	warm.Add(clients)
	errs := make(chan error, clients)
	pcs := make([]*postClient, clients)
	for i := range clients {
		pcs[i] = newPostClient(t, ln.Addr().String())
		done.Go(func() { errs <- closedLoop(ctx, pcs[i], i, warm.Done) })
	}
	warm.Wait() // every client is mid-loop on a reused connection
	if _, err := s.Drain(ctx); err != nil {
		t.Fatalf("Drain: %v", err)
	}
	done.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	for i, pc := range pcs {
		if pc.reused.Load() == 0 {
			t.Errorf("client %d never reused its connection: keep-alive was not exercised", i)
		}
	}
}

// closedLoop posts until a response says "Connection: close"; warm is
// called once the connection has been reused.
func closedLoop(ctx context.Context, pc *postClient, id int, warm func()) error {
	warmed := false
	for n := 0; ; n++ {
		body := fmt.Sprintf("client %d request %d", id, n)
		got, closed, err := pc.post(ctx, body)
		if err != nil {
			return fmt.Errorf("client %d request %d: %w", id, n, err)
		}
		if got != body {
			return fmt.Errorf("client %d: answer %q to %q", id, got, body)
		}
		if !warmed && pc.reused.Load() >= 2 {
			warm()
			warmed = true
		}
		if closed {
			if !warmed {
				return fmt.Errorf("client %d: Connection: close before the drain", id)
			}
			return nil
		}
	}
}

// slowHandler blocks /slow until release is closed.
type slowHandler struct {
	entered chan struct{}
	release chan struct{}
	calls   atomic.Int64
}

func newSlowHandler() *slowHandler {
	return &slowHandler{entered: make(chan struct{}, 16), release: make(chan struct{})}
}

func (h *slowHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.calls.Add(1)
	if r.URL.Path == "/flush" { // commit the header before blocking
		w.WriteHeader(http.StatusOK)
		http.NewResponseController(w).Flush()
	}
	if r.URL.Path != "/fast" {
		h.entered <- struct{}{}
		<-h.release
	}
	io.WriteString(w, "done "+r.URL.Path)
}

// TestDrain_waitsForSlowRequest: Drain does not report success while a
// handler runs, and the slow response still arrives, saying
// "Connection: close".
func TestDrain_waitsForSlowRequest(t *testing.T) {
	ln := listenTCP(t)
	h := newSlowHandler()
	s := serve(t, ln, h)
	ctx := testCtx(t)
	type answer struct {
		body   string
		closed bool
		err    error
	}
	got := make(chan answer, 1)
	pc := newPostClient(t, ln.Addr().String())
	pc.url += "slow"
	go func() {
		b, c, err := pc.post(ctx, "x")
		got <- answer{b, c, err}
	}()
	<-h.entered

	expired, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.Drain(expired); !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "1 requests in progress") {
		t.Fatalf("Drain with an in-flight request and an expired ctx: %v", err)
	}
	drained := make(chan error, 1)
	go func() { _, err := s.Drain(ctx); drained <- err }()
	select {
	case err := <-drained:
		t.Fatalf("Drain returned (%v) while the handler was blocked", err)
	default:
	}
	close(h.release)
	if err := <-drained; err != nil {
		t.Fatalf("Drain: %v", err)
	}
	a := <-got
	if a.err != nil || a.body != "done /slow" || !a.closed {
		t.Fatalf("slow request got %q, Connection: close %v, err %v", a.body, a.closed, a.err)
	}
}

// rawConn is a client that speaks HTTP/1.1 by hand, so a test sees exactly
// what the server writes (and nothing retries).
type rawConn struct {
	net.Conn
	r *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(30 * time.Second))
	return &rawConn{Conn: c, r: bufio.NewReader(c)}
}

func rawPost(path, body string) string {
	return fmt.Sprintf("POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s", path, len(body), body)
}

func (c *rawConn) send(t *testing.T, reqs ...string) {
	t.Helper()
	if _, err := io.WriteString(c, strings.Join(reqs, "")); err != nil {
		t.Fatalf("write: %v", err)
	}
}

// response reads one response and returns its body.
func (c *rawConn) response(t *testing.T) (string, *http.Response) {
	t.Helper()
	resp, err := http.ReadResponse(c.r, nil)
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return string(b), resp
}

// wantClosedSilently checks that the server closes c without writing a
// byte.
func (c *rawConn) wantClosedSilently(t *testing.T) {
	t.Helper()
	b, err := io.ReadAll(c.r)
	if len(b) != 0 || (err != nil && !errors.Is(err, net.ErrClosed) && !isReset(err)) {
		t.Fatalf("after Seal the server wrote %q (err %v); want a silent close", b, err)
	}
}

func isReset(err error) bool { return strings.Contains(err.Error(), "connection reset") }

// TestSeal_closesIdleConnsAndAnswersNothing: Seal closes a keep-alive
// connection that is idle, and a request sent on it afterwards is never
// answered (invariant: no request answered after seal).
func TestSeal_closesIdleConnsAndAnswersNothing(t *testing.T) {
	ln := listenTCP(t)
	h := newSlowHandler()
	s := serve(t, ln, h)
	c := dialRaw(t, ln.Addr().String())
	c.send(t, rawPost("/fast", "a"))
	if body, resp := c.response(t); body != "done /fast" || resp.Close {
		t.Fatalf("before Seal: %q, close %v", body, resp.Close)
	}
	if err := s.Seal(testCtx(t)); err != nil {
		t.Fatalf("Seal: %v", err)
	}
	io.WriteString(c, rawPost("/fast", "b")) // may fail: the server closed it
	c.wantClosedSilently(t)
	if n := h.calls.Load(); n != 1 {
		t.Fatalf("handler ran %d times, want 1", n)
	}
}

// TestSeal_answersAdmittedRequestOnly: a request in progress when Seal
// starts is answered; one pipelined behind it reaches nobody.
func TestSeal_answersAdmittedRequestOnly(t *testing.T) {
	ln := listenTCP(t)
	h := newSlowHandler()
	s := serve(t, ln, h)
	ctx := testCtx(t)
	c := dialRaw(t, ln.Addr().String())
	// The header of /flush is sent before the seal, so its connection
	// stays keep-alive and the pipelined request would be read next.
	c.send(t, rawPost("/flush", "a"), rawPost("/second", "b"))
	<-h.entered

	expired, cancel := context.WithCancel(ctx)
	cancel()
	if err := s.Seal(expired); !errors.Is(err, context.Canceled) {
		t.Fatalf("Seal with a request in progress and an expired ctx: %v", err)
	}
	sealed := make(chan error, 1)
	go func() { sealed <- s.Seal(ctx) }()
	close(h.release)
	if err := <-sealed; err != nil {
		t.Fatalf("Seal: %v", err)
	}
	if body, _ := c.response(t); body != "done /flush" {
		t.Fatalf("admitted request got %q", body)
	}
	c.wantClosedSilently(t)
	if n := h.calls.Load(); n != 1 {
		t.Fatalf("handler ran %d times, want 1 (the pipelined request must not run)", n)
	}
}

// TestResume_servesAgainOnSameSocket: while drained (and sealed), a new
// connection is not refused: it waits in the backlog of the socket that
// Serve kept, and Resume serves it, with keep-alive on again.
func TestResume_servesAgainOnSameSocket(t *testing.T) {
	before := testproc.OpenFDs(t)
	ln := listenTCP(t)
	s := serve(t, ln, echo)
	ctx := testCtx(t)
	addr := ln.Addr().String()
	for range 2 { // twice: the kept duplicate serves more than one resume
		if err := s.Seal(ctx); err != nil {
			t.Fatalf("Seal: %v", err)
		}
		waiting := dialRaw(t, addr) // connect succeeds: the socket is open
		waiting.send(t, rawPost("/", "queued"))
		if err := s.Resume(ctx); err != nil {
			t.Fatalf("Resume: %v", err)
		}
		if body, resp := waiting.response(t); body != "queued" || resp.Close {
			t.Fatalf("queued request got %q, close %v; want an answer with keep-alive", body, resp.Close)
		}
		waiting.send(t, rawPost("/", "again"))
		if body, _ := waiting.response(t); body != "again" {
			t.Fatalf("second request on the resumed connection got %q", body)
		}
		waiting.Close()
	}
	if err := s.Resume(ctx); err != nil {
		t.Fatalf("Resume when serving (idempotent): %v", err)
	}
	s.Close()
	// Earlier tests' connections may still be lingering (and go away), so
	// check only that this test left nothing new behind.
	for _, fd := range testproc.OpenFDs(t) {
		if !slices.Contains(before, fd) {
			t.Errorf("descriptor %s left open after Close (before: %v)", fd, before)
		}
	}
}

// TestDrain_unixListenerKeepsItsPath: draining must neither unlink a Unix
// socket's path nor close the socket.
func TestDrain_unixListenerKeepsItsPath(t *testing.T) {
	path := filepath.Join(t.TempDir(), "http.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	s := serve(t, ln, echo)
	ctx := testCtx(t)
	if _, err := s.Drain(ctx); err != nil {
		t.Fatalf("Drain: %v", err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("socket path after Drain: %v", err)
	}
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatalf("dial while drained: %v", err)
	}
	defer c.Close()
	if err := s.Resume(ctx); err != nil {
		t.Fatal(err)
	}
	rc := &rawConn{Conn: c, r: bufio.NewReader(c)}
	rc.send(t, rawPost("/", "unix"))
	if body, _ := rc.response(t); body != "unix" {
		t.Fatalf("got %q", body)
	}
}

func TestServe_rejectsListenerWithoutSyscallConn(t *testing.T) {
	ln := listenTCP(t)
	defer ln.Close()
	s := New(&http.Server{Handler: echo})
	defer s.Close()
	if err := s.Serve(struct{ net.Listener }{ln}); !errors.Is(err, ErrNotDuplicable) {
		t.Fatalf("Serve(wrapped listener) = %v, want ErrNotDuplicable", err)
	}
}

// TestServe_afterDrainWaitsForResume: a Serve that starts while the server
// is drained accepts nothing until Resume.
func TestServe_afterDrainWaitsForResume(t *testing.T) {
	ctx := testCtx(t)
	s := New(&http.Server{Handler: echo, ErrorLog: log.New(io.Discard, "", 0)})
	if _, err := s.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	ln := listenTCP(t)
	errc := make(chan error, 1)
	go func() { errc <- s.Serve(ln) }()
	c := dialRaw(t, ln.Addr().String())
	c.send(t, rawPost("/", "late"))
	if err := s.waitFor(ctx, func() bool { return len(s.loops) == 1 && s.acceptStoppedLocked() }); err != nil {
		t.Fatal(err)
	}
	if err := s.Resume(ctx); err != nil {
		t.Fatal(err)
	}
	if body, _ := c.response(t); body != "late" {
		t.Fatalf("got %q", body)
	}
	s.Close()
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		t.Fatalf("Serve: %v", err)
	}
}

// TestDrain_waitsForFreshConnection: a connection accepted before the
// drain whose client has not sent its request yet is not treated as idle:
// Drain waits for the request (within the grace) and it is answered. A
// fresh connection cannot be retried by clients, so closing it would be a
// visible failure.
func TestDrain_waitsForFreshConnection(t *testing.T) {
	ln := listenTCP(t)
	s := New(&http.Server{Handler: echo, ErrorLog: log.New(io.Discard, "", 0)}, WithNewConnGrace(time.Hour))
	errc := make(chan error, 1)
	go func() { errc <- s.Serve(ln) }()
	defer func() { s.Close(); <-errc }()
	ctx := testCtx(t)
	c := dialRaw(t, ln.Addr().String())
	if err := s.waitFor(ctx, func() bool { return len(s.conns) == 1 }); err != nil {
		t.Fatalf("connection never accepted: %v", err)
	}
	expired, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.Drain(expired); !errors.Is(err, context.Canceled) {
		t.Fatalf("Drain with a silent fresh connection in its grace: %v, want it to wait", err)
	}
	drained := make(chan error, 1)
	go func() { _, err := s.Drain(ctx); drained <- err }()
	c.send(t, rawPost("/", "fresh"))
	if body, resp := c.response(t); body != "fresh" || !resp.Close {
		t.Fatalf("fresh connection got %q, close %v; want an answer with Connection: close", body, resp.Close)
	}
	if err := <-drained; err != nil {
		t.Fatalf("Drain: %v", err)
	}
}

// TestDrain_newConnGraceZero: with no grace, a silent new connection is
// idle at once and Drain does not wait for it.
func TestDrain_newConnGraceZero(t *testing.T) {
	ln := listenTCP(t)
	s := New(&http.Server{Handler: echo, ErrorLog: log.New(io.Discard, "", 0)}, WithNewConnGrace(0))
	errc := make(chan error, 1)
	go func() { errc <- s.Serve(ln) }()
	defer func() { s.Close(); <-errc }()
	ctx := testCtx(t)
	dialRaw(t, ln.Addr().String())
	if err := s.waitFor(ctx, func() bool { return len(s.conns) == 1 }); err != nil {
		t.Fatal(err)
	}
	if open, err := s.Drain(ctx); err != nil || open != 1 {
		t.Fatalf("Drain = %d open, %v; want 1 open and no wait", open, err)
	}
}

// TestDrain_waitsForWarmKeepAlive: a keep-alive connection that answered a
// request a moment ago is about to carry the next one, so Drain waits for
// it to go quiet (or to get its "Connection: close" answer) instead of
// leaving it to Seal with a request on the way; with no idle-quiet time it
// does not wait.
func TestDrain_waitsForWarmKeepAlive(t *testing.T) {
	for _, tc := range []struct {
		name  string
		quiet time.Duration
		waits bool
	}{
		{name: "warm connection holds the drain", quiet: time.Hour, waits: true},
		{name: "no idle-quiet time", quiet: 0, waits: false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln := listenTCP(t)
			s := New(&http.Server{Handler: echo, ErrorLog: log.New(io.Discard, "", 0)}, WithIdleQuiet(tc.quiet))
			errc := make(chan error, 1)
			go func() { errc <- s.Serve(ln) }()
			defer func() { s.Close(); <-errc }()
			tr := &http.Transport{}
			defer tr.CloseIdleConnections()
			resp, err := (&http.Client{Transport: tr}).Get("http://" + ln.Addr().String() + "/")
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			ctx := testCtx(t)
			if err := s.waitFor(ctx, func() bool { return s.busy == 0 && len(s.conns) == 1 }); err != nil {
				t.Fatal(err)
			}
			if !tc.waits { // the generous deadline only turns a hang into a failure
				if _, err := s.Drain(ctx); err != nil {
					t.Fatalf("Drain = %v; want no wait", err)
				}
				return
			}
			short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
			defer cancel()
			if _, err := s.Drain(short); !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("Drain = %v; want it to wait for the warm connection until its deadline", err)
			}
		})
	}
}

// TestWarmWait_finishingCountsFromTheHandlersReturn: a connection whose
// handler returned a moment ago and whose response is still being written
// holds the drain (its client is about to reuse it), but only for the
// idle-quiet time after the handler's return: a slow client reading a long
// response cannot hold the drain until its deadline.
func TestWarmWait_finishingCountsFromTheHandlersReturn(t *testing.T) {
	const quiet = 100 * time.Millisecond
	s := New(&http.Server{}, WithIdleQuiet(quiet))
	c := &conn{phase: finishing}
	s.conns[c] = struct{}{}
	for _, tc := range []struct {
		name     string
		returned time.Duration // how long ago the handler returned
		waits    bool
	}{
		{"handler just returned", 0, true},
		{"handler returned longer ago than the idle-quiet time", 2 * quiet, false},
	} {
		s.mu.Lock()
		c.idleAt = time.Now().Add(-tc.returned)
		wait := s.warmWaitLocked()
		s.mu.Unlock()
		if waits := wait > 0; waits != tc.waits || wait > quiet {
			t.Errorf("%s: Drain would wait %v; want a wait: %v, and never more than %v", tc.name, wait, tc.waits, quiet)
		}
	}
}
