package main

import (
	"bytes"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// loadMode is how the load clients talk to the server.
type loadMode int

const (
	modeKeepAlive loadMode = iota // HTTP/1.1, one persistent connection per client
	modeNewConn                   // HTTP/1.1, a new connection for every request
	modeRESP                      // RESP (Redis protocol), one connection per client
)

func (m loadMode) String() string {
	return [...]string{"HTTP keep-alive", "HTTP new connection per request", "RESP"}[m]
}

// sample is one successful request: start and duration in microseconds,
// the start counted from the beginning of the load.
type sample struct{ at, dur uint32 }

// errEvent is one failure, for attributing failures to swap windows.
type errEvent struct {
	at    time.Duration
	class errClass
}

// loadClient is one closed-loop client: a write (PUT / SET) of a fresh key,
// then a read (GET) of that key, again and again at full speed.
type loadClient struct {
	id       int
	acked    []uint32 // sequence numbers of acknowledged writes
	samples  []sample
	errs     errCounts
	events   []errEvent
	examples map[string]int
	ops      int
}

// load runs the clients of one mode until stopped.
type load struct {
	mode      loadMode
	addr      string
	valueSize int
	start     time.Time
	clients   []*loadClient
	stop      atomic.Bool
	wg        sync.WaitGroup
	stopped   time.Time
}

func keyFor(client int, seq uint32) string {
	return "c" + strconv.Itoa(client) + "-" + strconv.FormatUint(uint64(seq), 10)
}

// valueFor is the value written under a key: derived from it, so read-back
// needs no copy of what was written.
func valueFor(client int, seq uint32, size int) []byte {
	unit := []byte(keyFor(client, seq) + "|")
	return bytes.Repeat(unit, size/len(unit)+1)[:size]
}

func startLoad(mode loadMode, addr string, clients, valueSize int) *load {
	l := &load{mode: mode, addr: addr, valueSize: valueSize, start: time.Now()}
	for i := range clients {
		c := &loadClient{id: i, examples: map[string]int{}}
		l.clients = append(l.clients, c)
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			l.runClient(c)
		}()
	}
	return l
}

// finish stops every client after its current request and waits.
func (l *load) finish() {
	l.stop.Store(true)
	l.wg.Wait()
	l.stopped = time.Now()
}

// kv is what a load client needs from a protocol.
type kv interface {
	put(key string, value []byte) error
	get(key string) ([]byte, bool, error)
	close()
}

func (l *load) newKV() kv {
	switch l.mode {
	case modeRESP:
		return &respKV{c: &respClient{addr: l.addr}}
	case modeNewConn:
		return newHTTPClient(l.addr, false)
	}
	return newHTTPClient(l.addr, true)
}

func (l *load) runClient(c *loadClient) {
	cl := l.newKV()
	defer cl.close()
	for seq := uint32(0); !l.stop.Load(); seq++ {
		key, val := keyFor(c.id, seq), valueFor(c.id, seq, l.valueSize)
		t0 := time.Now()
		if !l.record(c, t0, cl.put(key, val)) {
			continue
		}
		c.acked = append(c.acked, seq)
		t1 := time.Now()
		got, found, err := cl.get(key)
		if l.record(c, t1, err) && (!found || !bytes.Equal(got, val)) {
			l.fail(c, t1, classStale, staleMsg(found))
		}
	}
}

// record accounts for one request; it returns whether it succeeded.
func (l *load) record(c *loadClient, t0 time.Time, err error) bool {
	c.ops++
	if err == nil {
		now := time.Now()
		c.samples = append(c.samples, sample{at: uint32(t0.Sub(l.start) / time.Microsecond), dur: uint32(now.Sub(t0) / time.Microsecond)})
		return true
	}
	l.fail(c, t0, classOf(err), normalize(err))
	return false
}

func staleMsg(found bool) string {
	if found {
		return "read after the client's acknowledged write answered another value"
	}
	return "read after the client's acknowledged write answered not found"
}

var (
	addrRE = regexp.MustCompile(`127\.0\.0\.1:\d+`)
	keyRE  = regexp.MustCompile(`/kv/c[0-9-]+`)
)

// normalize makes error messages comparable across clients: no ports, no
// keys.
func normalize(err error) string {
	var ue *url.Error
	msg := err.Error()
	if errors.As(err, &ue) {
		msg = ue.Op + " " + ue.Err.Error()
	}
	return keyRE.ReplaceAllString(addrRE.ReplaceAllString(msg, "ADDR"), "/kv/KEY")
}

func classOf(err error) errClass {
	var se *statusError
	var re *errRESP
	switch {
	case errors.As(err, &se) && se.code >= 500, errors.As(err, &re):
		return class5xx
	case errors.As(err, &se):
		return classOther
	}
	return classify(err)
}

func (l *load) fail(c *loadClient, at time.Time, class errClass, msg string) {
	c.errs[class]++
	c.events = append(c.events, errEvent{at: at.Sub(l.start), class: class})
	if len(c.examples) < 8 {
		c.examples[class.String()+": "+msg]++
	}
}

// respKV adapts respClient to kv.
type respKV struct{ c *respClient }

func (r *respKV) put(key string, value []byte) error {
	v, err := r.c.do([]byte("SET"), []byte(key), value)
	if err == nil && string(v) != "OK" {
		return fmt.Errorf("bench: SET answered %q", v)
	}
	return err
}

func (r *respKV) get(key string) ([]byte, bool, error) {
	v, err := r.c.do([]byte("GET"), []byte(key))
	return v, v != nil, err
}

func (r *respKV) close() { r.c.close() }

// window is a swap, as the load sees it: from the trigger until the old
// process is gone.
type window struct{ from, to time.Duration }

// loadStats is what a load run measured.
type loadStats struct {
	Mode             loadMode
	Clients          int
	Duration         time.Duration
	Ops              int
	Acked            int
	Errs             errCounts
	ErrsInWindows    int
	Steady, InSwap   summary
	Examples         []string
	SteadyOps, SwOps int
}

func (l *load) stats(ws []window) loadStats {
	sort.Slice(ws, func(i, j int) bool { return ws[i].from < ws[j].from })
	st := loadStats{Mode: l.mode, Clients: len(l.clients), Duration: l.stopped.Sub(l.start)}
	var steady, inSwap []time.Duration
	ex := map[string]int{}
	for _, c := range l.clients {
		st.Ops += c.ops
		st.Acked += len(c.acked)
		st.Errs.add(c.errs)
		for _, s := range c.samples {
			d := time.Duration(s.dur) * time.Microsecond
			from := time.Duration(s.at) * time.Microsecond
			if overlaps(ws, from, from+d) {
				inSwap = append(inSwap, d)
			} else {
				steady = append(steady, d)
			}
		}
		for _, e := range c.events {
			if overlaps(ws, e.at, e.at) {
				st.ErrsInWindows++
			}
		}
		for k, v := range c.examples {
			ex[k] += v
		}
	}
	st.Steady, st.InSwap = summarize(steady), summarize(inSwap)
	st.SteadyOps, st.SwOps = len(steady), len(inSwap)
	for k, v := range ex {
		st.Examples = append(st.Examples, fmt.Sprintf("%s (×%d)", k, v))
	}
	sort.Strings(st.Examples)
	if len(st.Examples) > 12 {
		st.Examples = st.Examples[:12]
	}
	return st
}

// overlaps reports whether [from, to] meets a window of sorted ws.
func overlaps(ws []window, from, to time.Duration) bool {
	i := sort.Search(len(ws), func(i int) bool { return ws[i].to >= from })
	return i < len(ws) && ws[i].from <= to
}
