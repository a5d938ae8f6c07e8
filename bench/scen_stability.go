package main

import (
	"context"
	"time"

	"golang.org/x/sys/unix"
)

// stabSample is the resources after a number of swaps.
type stabSample struct {
	Swaps     int
	Self      procRes // the in-process supervisor (this process, idle harness)
	Incumbent procRes // the current kvd generation
	IncPID    int
}

// stabilityResult is resource use over many swaps.
type stabilityResult struct {
	Series     series
	Samples    []stabSample
	Cold       procRes  // the cold-started incumbent, before any swap
	FirstFDs   []string // the incumbent's descriptors after the warm-up swaps
	LastFDs    []string // … after the last swap
	Wall       time.Duration
	WarmSwaps  int
	SampleEach int
	NonBlock   map[string]bool // the supervisor's listening sockets still O_NONBLOCK at the end
}

const warmSwaps = 10

// runStability swaps kvd many times with no load and samples the
// supervisor's and the incumbent's resources along the way.
func (x *bench) runStability(ctx context.Context) (*stabilityResult, error) {
	sys, err := startOurs(ctx, x.kvd("kvd-stability", 1*mib))
	if err != nil {
		return nil, err
	}
	defer sys.Close()
	res := &stabilityResult{WarmSwaps: warmSwaps, SampleEach: max(1, x.p.StabilitySwaps/20)}
	_, res.Cold = sys.incumbentRes()
	t0 := time.Now()
	warm := runSwaps(ctx, sys, warmSwaps, swapLimit(warmSwaps), nil)
	res.Samples = append(res.Samples, x.sample(sys, 0))
	res.FirstFDs = fdTargets(sys.sup.Incumbent())
	// Compact records, allocated up front: the harness itself must not grow
	// the heap it measures.
	compact := make([]compactRec, 0, x.p.StabilitySwaps)
	for len(compact) < x.p.StabilitySwaps && ctx.Err() == nil && time.Since(t0) < swapLimit(x.p.StabilitySwaps) {
		r := sys.Swap(ctx)
		compact = append(compact, compactRec{start: r.Start, ready: r.Ready, gone: r.OldGone, ok: r.OK})
		if !r.OK {
			logfn("  stability: swap %d failed: %s", len(compact), r.Err)
		}
		if len(compact)%res.SampleEach == 0 || len(compact) == x.p.StabilitySwaps {
			res.Samples = append(res.Samples, x.sample(sys, len(compact)))
		}
	}
	res.LastFDs = fdTargets(sys.sup.Incumbent())
	res.NonBlock = nonBlocking(sys)
	res.Wall = time.Since(t0)
	recs := warm
	for _, c := range compact {
		recs = append(recs, swapRec{Start: c.start, Ready: c.ready, OldGone: c.gone, OK: c.ok, Err: okErr(c.ok)})
	}
	res.Series = series{System: "handoff", Config: "kvd, 1 MiB, no load", Recs: recs}
	done := len(compact)
	last := res.Samples[len(res.Samples)-1]
	logfn("  stability: %d swaps; supervisor goroutines %d→%d fds %d→%d RSS %d→%d KiB",
		done, res.Samples[0].Self.Goroutines, last.Self.Goroutines, res.Samples[0].Self.FDs, last.Self.FDs,
		res.Samples[0].Self.RSSKiB, last.Self.RSSKiB)
	return res, nil
}

// compactRec is a swap without its phases.
type compactRec struct {
	start       time.Time
	ready, gone time.Duration
	ok          bool
}

func okErr(ok bool) string {
	if ok {
		return ""
	}
	return "failed (see the log)"
}

// sample waits until no old generation is still exiting (their reapers are
// the supervisor's goroutines), then reads both processes.
func (x *bench) sample(sys *ours, swaps int) stabSample {
	for i := 0; i < 200 && len(sys.sup.Draining()) > 0; i++ {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond) // let the reaper goroutines of exited generations return
	pid, inc := sys.incumbentRes()
	return stabSample{Swaps: swaps, Self: selfRes(), Incumbent: inc, IncPID: pid}
}

// growth is the least-squares growth per 1000 swaps of f over the samples.
func (r *stabilityResult) growth(f func(stabSample) float64) float64 {
	var xs, ys []float64
	for _, s := range r.Samples {
		xs = append(xs, float64(s.Swaps))
		ys = append(ys, f(s))
	}
	return slope(xs, ys) * 1000
}

// nonBlocking reads O_NONBLOCK of each of the supervisor's listening
// sockets (through SyscallConn, never Fd): a daemon or the library that
// switched the shared socket to blocking mode would show here (DESIGN §12).
func nonBlocking(sys *ours) map[string]bool {
	out := map[string]bool{}
	for _, name := range sys.sup.Listeners() {
		f := sys.sup.ListenerFile(name)
		rc, err := f.SyscallConn()
		if err != nil {
			continue
		}
		flags := 0
		_ = rc.Control(func(fd uintptr) { flags, _ = unix.FcntlInt(fd, unix.F_GETFL, 0) })
		out[name] = flags&unix.O_NONBLOCK != 0
	}
	return out
}
