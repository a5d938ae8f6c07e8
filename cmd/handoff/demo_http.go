package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptrace"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// errClosedBeforeSend means a request was not sent because the server had
// already closed its keep-alive connection (between requests).
var errClosedBeforeSend = errors.New("handoff: demo: connection closed by the server before the request was sent")

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
// Idleness is measured by the kernel (TCP_INFO), from the last byte
// received: a slow client that reads a response late must not count the
// time the response waited in the socket as activity.
type guardedConn struct {
	net.Conn
	moved    *atomic.Int64
	boundary atomic.Bool // no request byte written since the last response byte read
	reused   atomic.Bool // a response came on it: the next request reuses it
}

// staleAfter is the client's idle timeout for reusing a connection.
const staleAfter = time.Millisecond

// Read reads response bytes; the next Write starts a new request.
func (c *guardedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
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
	return n, err
}

// idleFor is how long ago the kernel last received data on a TCP
// connection (0 if unknown: the connection is then used).
func idleFor(nc net.Conn) time.Duration {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return 0
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return 0
	}
	var ms uint32
	_ = rc.Control(func(fd uintptr) {
		if info, err := unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO); err == nil {
			ms = info.Last_data_recv
		}
	})
	return time.Duration(ms) * time.Millisecond
}

// demoHTTPClient is one worker's HTTP client: keep-alive on one
// connection at a time, no proxy, no compression, guarded connections.
type demoHTTPClient struct {
	*http.Client
	moved atomic.Int64 // requests moved to a new connection before sending
}

func newDemoClient() *demoHTTPClient {
	hc := &demoHTTPClient{}
	dialer := &net.Dialer{Timeout: demoDialTimeout}
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		nc, err := dialer.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		gc := &guardedConn{Conn: nc, moved: &hc.moved}
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

// do sends req and reads the whole response body (at most 1 MiB).
// replays counts the times the Transport resent the request after it had
// reached the server (a GET whose connection closed under it): each is an
// unanswered request that the Transport hid.
func (hc *demoHTTPClient) do(req *http.Request) (status int, body []byte, replays int64, err error) {
	var attempts atomic.Int64
	movedBefore := hc.moved.Load()
	trace := &httptrace.ClientTrace{GotConn: func(httptrace.GotConnInfo) { attempts.Add(1) }}
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), trace))
	status, body, err = demoDoHTTP(hc.Client, req)
	replays = max(0, attempts.Load()-1-(hc.moved.Load()-movedBefore))
	return status, body, replays, err
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

// closeClient closes a worker's connections and adds up its counts.
func (l *demoLoad) closeClient(c *demoHTTPClient) {
	c.CloseIdleConnections()
	l.moved.Add(c.moved.Load())
}

// httpPut writes one key; 200 is the acknowledgement (kvd answers it
// only after fsync).
func (l *demoLoad) httpPut(c *demoHTTPClient, w demoKV) {
	req, err := http.NewRequestWithContext(l.ctx, http.MethodPut, l.baseURL+"/kv/"+w.key, strings.NewReader(w.value))
	if err != nil {
		l.failed(&l.http, "PUT", err)
		return
	}
	status, _, replays, err := c.do(req)
	l.countReplays("PUT /kv/"+w.key, replays)
	switch {
	case err != nil:
		l.failed(&l.http, "PUT /kv/"+w.key, err)
	case status == http.StatusOK:
		l.acks.add(w)
		l.http.writes.Add(1)
	default:
		l.httpStatus(status, "PUT /kv/"+w.key)
	}
}

// countReplays counts requests the Transport resent after they reached
// the server.
func (l *demoLoad) countReplays(what string, n int64) {
	if n == 0 || l.ctx.Err() != nil {
		return
	}
	l.replayed.Add(n)
	l.problem("%s: resent by the client after the server closed the connection under it", what)
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
	req, err := http.NewRequestWithContext(l.ctx, http.MethodGet, l.baseURL+"/kv/"+w.key, nil)
	if err != nil {
		l.failed(&l.http, "GET", err)
		return
	}
	status, body, replays, err := c.do(req)
	l.countReplays("GET /kv/"+w.key, replays)
	switch {
	case err != nil:
		l.failed(&l.http, "GET /kv/"+w.key, err)
	case status == http.StatusNotFound:
		l.staleRead(fmt.Sprintf("HTTP GET %s: 404 after its write was acknowledged", w.key))
	case status == http.StatusOK && string(body) != w.value:
		l.staleRead(fmt.Sprintf("HTTP GET %s: %q, acknowledged %q", w.key, body, w.value))
	case status == http.StatusOK:
		l.http.reads.Add(1)
	default:
		l.httpStatus(status, "GET /kv/"+w.key)
	}
}
