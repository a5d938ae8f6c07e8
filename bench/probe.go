package main

import (
	"bytes"
	"io"
	"net"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// prober opens a new connection every interval and times connect + request
// + the first bytes of the response. A probe that waits in the listen
// backlog completes when some process accepts and answers, so the gaps
// between completions show how long nobody accepted.
type prober struct {
	addr     string
	interval time.Duration
	start    time.Time
	stop     chan struct{}
	done     sync.WaitGroup
	inflight atomic.Int32

	mu      sync.Mutex
	recs    []probeRec // successful probes, sorted by end after finish
	errs    errCounts
	skipped int // ticks skipped because too many probes were in flight
}

const maxProbesInFlight = 2000

var probeRequest = []byte("GET /healthz HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")

func startProber(addr string, interval time.Duration) *prober {
	p := &prober{addr: addr, interval: interval, start: time.Now(), stop: make(chan struct{})}
	p.done.Add(1)
	go p.loop()
	return p
}

func (p *prober) loop() {
	defer p.done.Done()
	t := time.NewTicker(p.interval)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
		}
		if p.inflight.Load() >= maxProbesInFlight {
			p.mu.Lock()
			p.skipped++
			p.mu.Unlock()
			continue
		}
		p.inflight.Add(1)
		p.done.Add(1)
		go p.probe()
	}
}

func (p *prober) probe() {
	defer p.done.Done()
	defer p.inflight.Add(-1)
	t0 := time.Now()
	err := probeOnce(p.addr)
	t1 := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil {
		p.errs[classOf(err)]++
		return
	}
	p.recs = append(p.recs, probeRec{start: t0.Sub(p.start), end: t1.Sub(p.start)})
}

func probeOnce(addr string) error {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(requestTimeout))
	if _, err := c.Write(probeRequest); err != nil {
		return err
	}
	var buf [12]byte
	if _, err := io.ReadFull(c, buf[:]); err != nil {
		return err
	}
	if !bytes.Equal(buf[:], []byte("HTTP/1.1 200")) {
		return &statusError{code: 500, body: string(buf[:])}
	}
	return nil
}

// finish stops probing and waits for the probes in flight.
func (p *prober) finish() {
	close(p.stop)
	p.done.Wait()
	p.mu.Lock()
	defer p.mu.Unlock()
	sort.Slice(p.recs, func(i, j int) bool { return p.recs[i].end < p.recs[j].end })
}

// probeRec is one successful probe: dial to status line, since the start.
type probeRec struct{ start, end time.Duration }

// maxGap is the longest time without a completed probe around [from, to]:
// from the last completion before from, through every completion inside,
// to the first completion after to; at is when that gap began. Call after
// finish.
func (p *prober) maxGap(from, to time.Duration) (gap, at time.Duration) {
	e := p.recs
	i := sort.Search(len(e), func(i int) bool { return e[i].end >= from })
	if i > 0 {
		i--
	}
	for ; i+1 < len(e); i++ {
		if d := e[i+1].end - e[i].end; d > gap {
			gap, at = d, e[i].end
		}
		if e[i+1].end > to {
			break
		}
	}
	return gap, at
}

// maxLatency is the longest successful probe that overlapped [from, to].
// Call after finish.
func (p *prober) maxLatency(from, to time.Duration) time.Duration {
	var m time.Duration
	for _, r := range p.recs {
		if r.end >= from && r.start <= to {
			m = max(m, r.end-r.start)
		}
	}
	return m
}

// gapSoFar is maxGap on a prober that is still running: it reads the
// completions so far under the lock (they are in completion order only
// roughly, so it sorts a copy of the ones near the window).
func (p *prober) gapSoFar(from, to time.Duration) time.Duration {
	p.mu.Lock()
	var near []probeRec
	for _, r := range p.recs {
		if r.end >= from-time.Second && r.end <= to+time.Second {
			near = append(near, r)
		}
	}
	p.mu.Unlock()
	sort.Slice(near, func(i, j int) bool { return near[i].end < near[j].end })
	gap, _ := (&prober{recs: near}).maxGap(from, to)
	return gap
}
