package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// loadConfig sizes the demo's load. It is bounded in count (maxOps per
// worker) and in time (budget), and only ever dials loopback.
type loadConfig struct {
	writers   int           // HTTP writers: PUT of unique keys
	readers   int           // HTTP readers: GET of recently acknowledged keys
	resp      int           // RESP clients: SET and GET, alternating
	maxOps    int           // requests per worker at most
	respThink time.Duration // pause between RESP commands, watching for a close
	budget    time.Duration // the load stops after this at the latest
}

func defaultLoad() loadConfig {
	return loadConfig{writers: 8, readers: 4, resp: 2, maxOps: 100_000, respThink: 25 * time.Millisecond}
}

func shortLoad() loadConfig {
	return loadConfig{writers: 8, readers: 4, resp: 2, maxOps: 20_000, respThink: 25 * time.Millisecond}
}

// Timeouts of the load's requests: long enough to wait in a listen backlog
// through a whole swap, so a timeout means something is wrong.
const (
	demoRequestTimeout = 2 * swapDeadline
	demoDialTimeout    = swapDeadline
)

// failClass is how a request failed, as a client sees it.
type failClass int

const (
	failRefused     failClass = iota // connection refused: a listening socket was closed
	failReset                        // connection reset (or broken pipe)
	failEOF                          // connection closed with no (complete) answer
	failTimeout                      // no answer in time
	failServerError                  // HTTP 5xx, RESP -ERR
	failOther                        // anything else (unexpected status, bad reply)
	numFailClasses
)

var failClassNames = [numFailClasses]string{"refused", "reset", "eof", "timeout", "server_error", "other"}

// protoCounters counts one protocol's outcomes.
type protoCounters struct {
	writes     atomic.Int64 // acknowledged writes
	reads      atomic.Int64 // reads that returned the acknowledged value
	failed     [numFailClasses]atomic.Int64
	unanswered atomic.Int64 // sent, then the connection closed before any byte of an answer
	moved      atomic.Int64 // not sent: the connection was closed (or, HTTP, idle), moved to a new one
}

func (c *protoCounters) failedTotal() int64 {
	var n int64
	for i := range c.failed {
		n += c.failed[i].Load()
	}
	return n
}

// demoKV is one write: a unique key and its unique value.
type demoKV struct{ key, value string }

// ackLog records every acknowledged write, in the order of the acks.
type ackLog struct {
	mu  sync.Mutex
	all []demoKV
}

func (a *ackLog) add(w demoKV) {
	a.mu.Lock()
	a.all = append(a.all, w)
	a.mu.Unlock()
}

// recent picks one of the last 1024 acknowledged writes.
func (a *ackLog) recent(r *rand.Rand) (demoKV, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := len(a.all)
	if n == 0 {
		return demoKV{}, false
	}
	return a.all[n-1-r.IntN(min(n, 1024))], true
}

func (a *ackLog) snapshot() []demoKV {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]demoKV(nil), a.all...)
}

// demoLoad is the running load: HTTP writers and readers and RESP clients.
type demoLoad struct {
	cfg      loadConfig
	baseURL  string
	respAddr string
	ctx      context.Context // ends on interrupt or budget: cancels requests in flight
	cancel   context.CancelFunc
	stopCh   chan struct{} // closed by stop: workers finish their request and leave
	stopOnce sync.Once
	wg       sync.WaitGroup

	acks       ackLog
	http, resp protoCounters
	stale      atomic.Int64

	mu               sync.Mutex
	problems         []string // the first few problems, for the report
	unansweredWrites []demoKV // writes sent that got no answer: must not be applied
}

// maxProblems bounds the problem samples kept for the report.
const maxProblems = 10

// startLoad starts every worker.
func startLoad(ctx context.Context, cfg loadConfig, baseURL, respAddr string) *demoLoad {
	lctx, cancel := context.WithTimeout(ctx, cfg.budget)
	l := &demoLoad{cfg: cfg, baseURL: baseURL, respAddr: respAddr, ctx: lctx, cancel: cancel,
		stopCh: make(chan struct{})}
	for i := range cfg.writers {
		l.wg.Go(func() { l.httpWriter(i) })
	}
	for i := range cfg.readers {
		l.wg.Go(func() { l.httpReader(i) })
	}
	for i := range cfg.resp {
		l.wg.Go(func() { l.respWorker(i) })
	}
	return l
}

// stop lets every worker finish the request it is in and waits for all.
// It is idempotent.
func (l *demoLoad) stop() {
	l.stopOnce.Do(func() { close(l.stopCh) })
	l.wg.Wait()
	l.cancel()
}

// stopped reports whether the workers should leave.
func (l *demoLoad) stopped() bool {
	select {
	case <-l.stopCh:
		return true
	case <-l.ctx.Done():
		return true
	default:
		return false
	}
}

// idle waits d, or less if the load stops.
func (l *demoLoad) idle(d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-l.stopCh:
	case <-l.ctx.Done():
	}
}

// summary is one line of counts so far.
func (l *demoLoad) summary() string {
	return fmt.Sprintf("HTTP %d writes + %d reads ok, %d failed; RESP %d writes + %d reads ok, %d failed; stale reads %d",
		l.http.writes.Load(), l.http.reads.Load(), l.http.failedTotal(),
		l.resp.writes.Load(), l.resp.reads.Load(), l.resp.failedTotal(), l.stale.Load())
}

// problem keeps a sample of what went wrong.
func (l *demoLoad) problem(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.problems) < maxProblems {
		l.problems = append(l.problems, fmt.Sprintf(format, args...))
	}
}

// failed counts a request that failed with err, unless the load was
// interrupted (then the request was cancelled, not failed) or the request
// was never sent because its connection was seen closed (nothing failed:
// the next request goes on a new connection).
func (l *demoLoad) failed(c *protoCounters, what string, err error) {
	if l.ctx.Err() != nil || errors.Is(err, errClosedBeforeSend) {
		return
	}
	class := classifyFailure(err)
	c.failed[class].Add(1)
	l.problem("%s: %s: %v", what, failClassNames[class], err)
}

// unanswered counts a request that was sent and got no byte of an answer
// before the server closed the connection: the keep-alive race at a seal
// (see the report). A write among them is read back after the run: it
// must not have been applied.
func (l *demoLoad) unanswered(c *protoCounters, what string, err error, write *demoKV) {
	if l.ctx.Err() != nil {
		return
	}
	c.unanswered.Add(1)
	l.problem("%s: unanswered (connection closed before any answer): %v", what, err)
	if write != nil {
		l.mu.Lock()
		l.unansweredWrites = append(l.unansweredWrites, *write)
		l.mu.Unlock()
	}
}

// isUnanswered tells whether a request that got no byte of an answer
// failed because the server closed the connection (EOF or reset).
func isUnanswered(err error, answered bool) bool {
	class := classifyFailure(err)
	return !answered && (class == failEOF || class == failReset)
}

// staleRead counts a read that missed an acknowledged write.
func (l *demoLoad) staleRead(what string) {
	l.stale.Add(1)
	l.problem("stale read: %s", what)
}

// classifyFailure sorts a request error into a failClass.
func classifyFailure(err error) failClass {
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return failRefused
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return failReset
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		strings.Contains(err.Error(), "server closed idle connection"):
		return failEOF
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return failTimeout
	}
	return failOther
}
