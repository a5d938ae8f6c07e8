package main

import (
	"context"
	"fmt"
	"time"
)

// blackoutResult is the accept blackout of one system.
type blackoutResult struct {
	Label     string
	Series    series
	Gap       summary // per swap: longest time without a completed probe
	Wait      summary // per swap: longest probe (dial → status line) during the swap
	Baseline  summary // the same gap statistic over equal slices of the steady period
	Bystander summary // the same gap statistic, same windows, on a daemon that is not swapped
	Excess    summary // per swap: blackout − bystander gap in the same window (0 when below)
	Probes    int
	Errs      errCounts
	Skipped   int
	GapIn     map[string]int // the phase in which each swap's longest gap began
}

// phaseAt names the phase of r running at offset d from the trigger.
func phaseAt(r swapRec, d time.Duration) string {
	if d < 0 {
		return "before the trigger"
	}
	var cum time.Duration
	for _, p := range r.Phases {
		if cum += p.D; d < cum {
			return p.Name
		}
	}
	return "after the outcome"
}

const (
	blackoutSteady = 800 * time.Millisecond // probing before the swaps of a round (the baseline)
	blackoutRounds = 4
)

// blackoutAcc accumulates one system's rounds.
type blackoutAcc struct {
	res         blackoutResult
	gaps, waits []time.Duration
	base        []time.Duration
	bystander   []time.Duration
}

// blackoutRound probes sys with a new connection every interval while n
// swaps run, 20 ms apart.
//
// The bystander prober probes another daemon that is not swapped, through
// the same windows: what the machine's contention alone does to the gaps.
func (x *bench) blackoutRound(ctx context.Context, sys system, n int, bystander *prober, acc *blackoutAcc) {
	p := startProber(sys.HTTPAddr(), x.p.ProbeEvery)
	time.Sleep(blackoutSteady)
	recs := runSwaps(ctx, sys, n, swapLimit(n), func(int) { time.Sleep(20 * time.Millisecond) })
	time.Sleep(200 * time.Millisecond)
	p.finish()
	acc.res.Series.Recs = append(acc.res.Series.Recs, recs...)
	acc.res.Probes += len(p.recs)
	acc.res.Errs.add(p.errs)
	acc.res.Skipped += p.skipped
	var width time.Duration
	ok := 0
	for _, r := range recs {
		if !r.OK {
			continue
		}
		w := r.window(p.start)
		gap, at := p.maxGap(w.from, w.to)
		acc.gaps = append(acc.gaps, gap)
		acc.res.GapIn[phaseAt(r, at-w.from)]++
		acc.waits = append(acc.waits, p.maxLatency(w.from, w.to))
		shift := p.start.Sub(bystander.start)
		acc.bystander = append(acc.bystander, bystander.gapSoFar(w.from+shift, w.to+shift))
		width += w.to - w.from
		ok++
	}
	acc.base = append(acc.base, baselineGaps(p, width/time.Duration(max(1, ok)))...)
}

// baselineGaps cuts the steady period before the first swap (skipping its
// first 200 ms) into slices as wide as an average swap window and takes
// the same longest-gap statistic in each: the prober's own resolution.
func baselineGaps(p *prober, width time.Duration) []time.Duration {
	width = max(width, 5*time.Millisecond)
	var gaps []time.Duration
	for from := 200 * time.Millisecond; from+width < blackoutSteady; from += width {
		g, _ := p.maxGap(from, from+width)
		gaps = append(gaps, g)
	}
	return gaps
}

// runBlackouts measures nopd, kvd and tableflip in rounds, alternating the
// systems, so that the machine's other work affects them alike.
func (x *bench) runBlackouts(ctx context.Context) ([]blackoutResult, error) {
	var systems []system
	defer func() {
		for _, s := range systems {
			s.Close()
		}
	}()
	nopd, err := startOurs(ctx, x.nopd("nopd-blackout", true, x.base, 1))
	if err != nil {
		return nil, err
	}
	systems = append(systems, nopd)
	kvd, err := startOurs(ctx, x.kvd("kvd-blackout", 1*mib))
	if err != nil {
		return nil, err
	}
	systems = append(systems, kvd)
	peer, err := startPeer(x.b.TFPeer, x.base)
	if err != nil {
		return nil, fmt.Errorf("tableflip: %w", err)
	}
	systems = append(systems, peer)
	labels := []string{"handoff, nopd (no-op hooks)", "handoff, kvd (real hooks)", "tableflip"}
	accs := make([]blackoutAcc, len(labels))
	for i := range accs {
		accs[i].res.GapIn = map[string]int{}
	}
	per := max(1, x.p.BlackoutSwaps/blackoutRounds)
	by, err := startOurs(ctx, x.nopd("nopd-bystander", true, x.base, 1))
	if err != nil {
		return nil, err
	}
	systems = append(systems, by) // closed with the others, never swapped
	bystander := startProber(by.HTTPAddr(), x.p.ProbeEvery)
	for round := 0; round < blackoutRounds && ctx.Err() == nil; round++ {
		for i := range labels {
			x.blackoutRound(ctx, systems[i], min(per, x.p.BlackoutSwaps-round*per), bystander, &accs[i])
		}
	}
	bystander.finish()
	var out []blackoutResult
	for i, a := range accs {
		r := a.res
		r.Bystander = summarize(a.bystander)
		var excess []time.Duration
		for j, g := range a.gaps {
			excess = append(excess, max(0, g-a.bystander[j]))
		}
		r.Excess = summarize(excess)
		r.Label = labels[i]
		r.Series.System, r.Series.Config = systems[i].Name(), labels[i]
		r.Gap, r.Wait, r.Baseline = summarize(a.gaps), summarize(a.waits), summarize(a.base)
		logfn("  blackout %s: %d swaps, gap p50 %s max %s ms (baseline p50 %s, bystander p50 %s), probe errors %d",
			r.Label, len(r.Series.Recs), ms(r.Gap.P50), ms(r.Gap.Max), ms(r.Baseline.P50), ms(r.Bystander.P50), r.Errs.failures())
		out = append(out, r)
	}
	return out, nil
}
