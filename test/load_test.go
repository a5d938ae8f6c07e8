package test

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Bounds of every load loop: each client stops at the first of these.
const (
	loadMaxOps   = 50000
	loadMaxTime  = 5 * time.Minute
	loadInterval = 4 * time.Millisecond // pacing between one client's requests
	loadKeys     = 16                   // keys per writer
	requestWait  = 45 * time.Second     // one request, including time waiting in a backlog
)

// Classes of client failures. A "violation" breaks invariant 4 (or 3) by
// itself; the others are what a correct server may cause, counted.
const (
	failRefused   = "refused"            // connect refused: a listening socket was closed
	failDial      = "dial-error"         // any other connect failure
	failFresh     = "fresh-conn-dropped" // a new connection closed or reset before any answer
	failIdleClose = "idle-closed"        // a reused connection closed before any answer byte (the documented keep-alive race)
	failResetIdle = "reset-idle"         // a reset of a connection with no request in flight
	failPartial   = "partial-answer"     // closed or reset after part of an answer
	failTimeout   = "timeout"            // no answer within requestWait
	failRejected  = "rejected"           // answered with a retryable refusal (503, -ERR sealed)
	failBadAnswer = "bad-answer"         // answered something unexpected (500, garbage)
)

// clientError is one failed request.
type clientError struct {
	class string
	proto string
	op    string
	at    time.Time
	err   error
}

func (e clientError) String() string {
	return fmt.Sprintf("%s %s %s at %s: %v", e.proto, e.op, e.class, e.at.Format("15:04:05.000"), e.err)
}

// keyState is what the writers know about one key: the value of the last
// acknowledged write, and the values sent after it that were not
// acknowledged (they may or may not have been applied).
type keyState struct {
	mu       sync.Mutex
	acked    uint64 // sequence number of the last acknowledged value; 0: none
	unacked  map[uint64]bool
	ackedSeq atomic.Uint64 // acked, for readers without the lock
}

// load is a set of clients writing and reading on both of kvd's listeners.
type load struct {
	httpAddr, respAddr string
	keys               map[string]*keyState
	seq                atomic.Uint64

	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	errs   []clientError
	ops    map[string]int // successful requests by proto+op
	stale  []string       // reads that missed an acknowledged write
	maxLat time.Duration  // longest successful request
}

// startLoad starts one writer and one reader on each listener.
func startLoad(httpAddr, respAddr string) *load {
	ctx, cancel := context.WithTimeout(context.Background(), loadMaxTime)
	l := &load{httpAddr: httpAddr, respAddr: respAddr, keys: map[string]*keyState{}, cancel: cancel, ops: map[string]int{}}
	for _, proto := range []string{"http", "resp"} {
		for i := range loadKeys {
			l.keys[fmt.Sprintf("%s-k%d", proto, i)] = &keyState{unacked: map[uint64]bool{}}
		}
	}
	for _, proto := range []string{"http", "resp"} {
		l.wg.Go(func() { l.run(ctx, proto, true) })
		l.wg.Go(func() { l.run(ctx, proto, false) })
	}
	return l
}

// stop ends the clients and waits for them.
func (l *load) stop() {
	l.cancel()
	l.wg.Wait()
}

// waitAcked waits until n more writes were acknowledged on each protocol,
// proving that both listeners serve.
func (l *load) waitAcked(n int, limit time.Duration) error {
	l.mu.Lock()
	h0, r0 := l.ops["http PUT"], l.ops["resp SET"]
	l.mu.Unlock()
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		l.mu.Lock()
		h, r := l.ops["http PUT"]-h0, l.ops["resp SET"]-r0
		l.mu.Unlock()
		if h >= n && r >= n {
			return nil
		}
		time.Sleep(5 * time.Millisecond) // polling counters the clients advance
	}
	return fmt.Errorf("fewer than %d acknowledged writes per listener within %v: %w", n, limit, errTimeout)
}

// run is one client: a writer (PUT/SET of increasing values over its own
// keys) or a reader (GET of every key, checked against the writes
// acknowledged before the read was sent).
func (l *load) run(ctx context.Context, proto string, writer bool) {
	c := newClient(proto, l.addr(proto))
	defer c.close()
	tick := time.NewTicker(loadInterval)
	defer tick.Stop()
	for i := 0; i < loadMaxOps; i++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		key := fmt.Sprintf("%s-k%d", proto, i%loadKeys)
		if writer {
			l.write(c, key)
		} else {
			l.read(c, otherProto(proto, i)+key[strings.IndexByte(key, '-'):])
		}
	}
}

func otherProto(proto string, i int) string {
	if i%2 == 0 {
		return proto
	}
	if proto == "http" {
		return "resp"
	}
	return "http"
}

func (l *load) addr(proto string) string {
	if proto == "http" {
		return l.httpAddr
	}
	return l.respAddr
}

func (l *load) write(c *client, key string) {
	ks := l.keys[key]
	seq := l.seq.Add(1)
	ks.mu.Lock()
	ks.unacked[seq] = true
	ks.mu.Unlock()
	start := time.Now()
	err := c.put(key, value(seq))
	if err != nil {
		l.fail(c, "write", err)
		return
	}
	ks.mu.Lock()
	for s := range ks.unacked {
		if s <= seq {
			delete(ks.unacked, s) // acknowledged, or superseded by an acknowledged later write
		}
	}
	ks.acked = seq
	ks.ackedSeq.Store(seq)
	ks.mu.Unlock()
	l.ok(c.proto+" "+c.writeOp(), time.Since(start))
}

func (l *load) read(c *client, key string) {
	ks := l.keys[key]
	floor := ks.ackedSeq.Load()
	start := time.Now()
	v, found, err := c.get(key)
	if err != nil {
		l.fail(c, "read", err)
		return
	}
	l.ok(c.proto+" GET", time.Since(start))
	got := uint64(0)
	if found {
		got = parseValue(v)
	}
	if got < floor {
		l.mu.Lock()
		l.stale = append(l.stale, fmt.Sprintf("%s GET %s answered %q after the write of %s was acknowledged", c.proto, key, v, value(floor)))
		l.mu.Unlock()
	}
}

func value(seq uint64) string { return "v" + strconv.FormatUint(seq, 10) }

func parseValue(v string) uint64 {
	n, err := strconv.ParseUint(strings.TrimPrefix(v, "v"), 10, 64)
	if err != nil {
		return 0
	}
	return n
}

func (l *load) ok(op string, took time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ops[op]++
	l.maxLat = max(l.maxLat, took)
}

func (l *load) fail(c *client, op string, err error) {
	var ce *classified
	class := failBadAnswer
	if errors.As(err, &ce) {
		class = ce.class
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.errs = append(l.errs, clientError{class: class, proto: c.proto, op: op, at: time.Now(), err: err})
}

// failures returns the client failures by class.
func (l *load) failures() map[string][]clientError {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string][]clientError{}
	for _, e := range l.errs {
		out[e.class] = append(out[e.class], e)
	}
	return out
}

// summary is one line of counts for logs.
func (l *load) summary() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var parts []string
	for op, n := range l.ops {
		parts = append(parts, fmt.Sprintf("%s=%d", op, n))
	}
	byClass := map[string]int{}
	for _, e := range l.errs {
		byClass[e.class]++
	}
	for class, n := range byClass {
		parts = append(parts, fmt.Sprintf("%s=%d", class, n))
	}
	sort.Strings(parts)
	return strings.Join(parts, " ") + fmt.Sprintf(" max-latency=%v", l.maxLat.Round(time.Millisecond))
}

// verify reads every key once more, after the load stopped, and returns
// what is wrong: a key whose value misses its last acknowledged write (a
// lost write), and, unless unanswered writes may have been applied (a
// serving process was killed with requests in flight), a key holding a
// value that was never acknowledged.
func (l *load) verify(allowUnanswered bool) []string {
	c := newClient("http", l.httpAddr)
	defer c.close()
	var bad []string
	for key, ks := range l.keys {
		v, found, err := c.get(key)
		if err != nil {
			bad = append(bad, fmt.Sprintf("final GET %s: %v (the other keys were not read)", key, err))
			break
		}
		bad = append(bad, ks.check(key, v, found, allowUnanswered)...)
	}
	sort.Strings(bad)
	return bad
}

func (ks *keyState) check(key, v string, found, allowUnanswered bool) []string {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	got := uint64(0)
	if found {
		got = parseValue(v)
	}
	switch {
	case got == ks.acked:
		return nil
	case got < ks.acked:
		return []string{fmt.Sprintf("lost write: %s holds %q, the acknowledged write of %s is gone", key, v, value(ks.acked))}
	case ks.unacked[got] && allowUnanswered:
		return nil
	case ks.unacked[got]:
		return []string{fmt.Sprintf("%s holds %s, from a write whose request failed without an answer: a request was processed but not answered", key, value(got))}
	}
	return []string{fmt.Sprintf("%s holds %q, which no client wrote after %s", key, v, value(ks.acked))}
}
