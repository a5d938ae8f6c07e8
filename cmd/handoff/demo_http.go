package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// errClosedBeforeSend means a request was not sent because the server had
// already closed its keep-alive connection (between requests), or, for
// HTTP, because the connection had been idle too long to reuse.
var errClosedBeforeSend = errors.New("handoff: demo: request not sent: the connection was closed by the server or idle too long")

// guardedConn is a client connection that looks before it sends a
// request. It sends nothing, and fails with errClosedBeforeSend, if the
// server closed the connection since the last response (kvd does so at a
// seal, between requests), or if the connection has received nothing for
// staleAfter: a client's idle timeout must be shorter than the server's,
// and a seal closes every connection that stayed idle through the drain.
// Go's Transport resends a request of which it wrote nothing on a new
// connection, by its own rule; a request that reached the server is never
// resent (PUT is not replayable for the Transport).
//
// Idleness is measured by the kernel, from the arrival of the last
// packet received (see idleFor).
type guardedConn struct {
	net.Conn
	moved    *atomic.Int64
	sent     *atomic.Int64
	recv     *atomic.Int64
	boundary atomic.Bool // no request byte written since the last response byte read
	reused   atomic.Bool // a response came on it: the next request reuses it
}

// staleAfter is the client's idle timeout for reusing a connection.
const staleAfter = time.Millisecond

// Read reads response bytes; the next Write starts a new request.
func (c *guardedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.recv.Add(int64(n))
		c.boundary.Store(true)
		c.reused.Store(true)
	}
	return n, err
}

// Write sends p; the first write of a request only if the server has not
// closed the connection.
func (c *guardedConn) Write(p []byte) (int, error) {
	if !c.boundary.Swap(false) {
		return c.Conn.Write(p)
	}
	if c.reused.Load() && idleFor(c.Conn) >= staleAfter {
		c.moved.Add(1)
		return 0, errClosedBeforeSend
	}
	n, err := sendIfOpen(c.Conn, p)
	if errors.Is(err, errClosedBeforeSend) {
		c.moved.Add(1)
	}
	if n > 0 {
		c.sent.Add(1)
	}
	return n, err
}

// idleFor is how long ago the last packet the client read arrived on a
// TCP connection, by the kernel's receive timestamp (SIOCGSTAMPNS, which
// watchTimestamps turned on): a slow client that reads a response late
// must not count the time the response waited in the socket as activity.
// It falls back to TCP_INFO (whose clock ticks in jiffies), and returns 0
// if neither is known (the connection is then used).
func idleFor(nc net.Conn) time.Duration {
	var idle time.Duration
	withFD(nc, func(fd int) {
		var ts unix.Timespec
		_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCGSTAMPNS, uintptr(unsafe.Pointer(&ts)))
		if errno == 0 {
			idle = time.Since(time.Unix(ts.Unix()))
			return
		}
		if info, err := unix.GetsockoptTCPInfo(fd, unix.IPPROTO_TCP, unix.TCP_INFO); err == nil {
			idle = time.Duration(info.Last_data_recv) * time.Millisecond
		}
	})
	return idle
}

// watchTimestamps asks the kernel to timestamp the packets the connection
// receives (the first SIOCGSTAMPNS turns that on and reports none yet).
func watchTimestamps(nc net.Conn) {
	withFD(nc, func(fd int) {
		var ts unix.Timespec
		_, _, _ = unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCGSTAMPNS, uintptr(unsafe.Pointer(&ts)))
	})
}

// withFD runs f with the descriptor of nc, without changing its mode.
func withFD(nc net.Conn, f func(fd int)) {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return
	}
	if rc, err := sc.SyscallConn(); err == nil {
		_ = rc.Control(func(fd uintptr) { f(int(fd)) })
	}
}

// demoHTTPClient is one worker's HTTP client: keep-alive on one
// connection at a time, no proxy, no compression, guarded connections.
type demoHTTPClient struct {
	*http.Client
	moved atomic.Int64 // requests moved to a new connection before sending
	sent  atomic.Int64 // requests whose first bytes reached a connection
	recv  atomic.Int64 // response bytes read
}

func newDemoClient() *demoHTTPClient {
	hc := &demoHTTPClient{}
	dialer := &net.Dialer{Timeout: demoDialTimeout}
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		nc, err := dialer.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		watchTimestamps(nc)
		gc := &guardedConn{Conn: nc, moved: &hc.moved, sent: &hc.sent, recv: &hc.recv}
		gc.boundary.Store(true)
		return gc, nil
	}
	hc.Client = &http.Client{
		Timeout: demoRequestTimeout,
		Transport: &http.Transport{DialContext: dial, MaxIdleConns: 1, MaxIdleConnsPerHost: 1,
			DisableCompression: true},
	}
	return hc
}

// httpResult is one request's outcome as the client saw it.
type httpResult struct {
	status   int
	body     []byte
	err      error
	answered bool  // a byte of a response arrived
	replays  int64 // times the Transport resent it after it reached the server
}

// do sends req and reads the whole response body (at most 1 MiB). A
// replay is a resend by the Transport after an attempt reached the server
// and got no answer (only GETs: the Transport never resends a PUT that
// reached the server); resends of attempts that sent nothing are not.
func (hc *demoHTTPClient) do(req *http.Request) httpResult {
	sent, recv := hc.sent.Load(), hc.recv.Load()
	var r httpResult
	r.status, r.body, r.err = demoDoHTTP(hc.Client, req)
	r.answered = hc.recv.Load() > recv
	r.replays = max(0, hc.sent.Load()-sent-1)
	return r
}

// demoDoHTTP sends req and reads the whole response body (at most 1 MiB).
func demoDoHTTP(c *http.Client, req *http.Request) (int, []byte, error) {
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return 0, nil, err
	}
	return resp.StatusCode, body, nil
}

// httpWriter PUTs unique keys with unique values and records each
// acknowledged write.
func (l *demoLoad) httpWriter(id int) {
	c := newDemoClient()
	defer l.closeClient(c)
	rng := rand.New(rand.NewPCG(uint64(id), uint64(time.Now().UnixNano())))
	for seq := 0; seq < l.cfg.maxOps && !l.stopped(); seq++ {
		w := demoKV{fmt.Sprintf("http-%d-%d", id, seq), fmt.Sprintf("h%d.%d.%016x", id, seq, rng.Uint64())}
		l.httpPut(c, w)
	}
}

// closeClient closes a worker's connections and adds up its moves.
func (l *demoLoad) closeClient(c *demoHTTPClient) {
	c.CloseIdleConnections()
	l.http.moved.Add(c.moved.Load())
}

// httpPut writes one key; 200 is the acknowledgement (kvd answers it
// only after fsync).
func (l *demoLoad) httpPut(c *demoHTTPClient, w demoKV) {
	what := "HTTP PUT /kv/" + w.key
	req, err := http.NewRequestWithContext(l.ctx, http.MethodPut, l.baseURL+"/kv/"+w.key, strings.NewReader(w.value))
	if err != nil {
		l.failed(&l.http, what, err)
		return
	}
	r := c.do(req)
	l.countReplays(what, r.replays)
	switch {
	case r.err != nil:
		l.httpFailed(what, r, &w)
	case r.status == http.StatusOK:
		l.acks.add(w)
		l.http.writes.Add(1)
	default:
		l.httpStatus(r.status, what)
	}
}

// httpFailed counts a request that got no response: unanswered (the
// connection closed before any byte of one) or failed.
func (l *demoLoad) httpFailed(what string, r httpResult, write *demoKV) {
	if isUnanswered(r.err, r.answered) {
		l.unanswered(&l.http, what, r.err, write)
		return
	}
	l.failed(&l.http, what, r.err)
}

// countReplays counts requests the Transport resent after they reached
// the server (GETs; never a PUT): each was unanswered, though the caller
// then got its answer.
func (l *demoLoad) countReplays(what string, n int64) {
	for range n {
		l.unanswered(&l.http, what, errors.New("resent by Go's HTTP client"), nil)
	}
}

// httpStatus counts an unexpected HTTP status.
func (l *demoLoad) httpStatus(status int, what string) {
	class := failOther
	if status >= 500 {
		class = failServerError
	}
	l.http.failed[class].Add(1)
	l.problem("%s: %s: status %d", what, failClassNames[class], status)
}

// httpReader GETs recently acknowledged keys: each must answer the value
// that was acknowledged.
func (l *demoLoad) httpReader(id int) {
	c := newDemoClient()
	defer l.closeClient(c)
	rng := rand.New(rand.NewPCG(uint64(1000+id), uint64(time.Now().UnixNano())))
	for n := 0; n < l.cfg.maxOps && !l.stopped(); {
		w, ok := l.acks.recent(rng)
		if !ok {
			l.idle(time.Millisecond)
			continue
		}
		l.httpGet(c, w)
		n++
	}
}

// httpGet reads one acknowledged key.
func (l *demoLoad) httpGet(c *demoHTTPClient, w demoKV) {
	what := "HTTP GET /kv/" + w.key
	req, err := http.NewRequestWithContext(l.ctx, http.MethodGet, l.baseURL+"/kv/"+w.key, nil)
	if err != nil {
		l.failed(&l.http, what, err)
		return
	}
	r := c.do(req)
	l.countReplays(what, r.replays)
	switch {
	case r.err != nil:
		l.httpFailed(what, r, nil)
	case r.status == http.StatusNotFound:
		l.staleRead(what + ": 404 after its write was acknowledged")
	case r.status == http.StatusOK && string(r.body) != w.value:
		l.staleRead(fmt.Sprintf("%s: %q, acknowledged %q", what, r.body, w.value))
	case r.status == http.StatusOK:
		l.http.reads.Add(1)
	default:
		l.httpStatus(r.status, what)
	}
}
