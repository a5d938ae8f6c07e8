package main

import (
	"context"
	"fmt"
	"time"
)

// series is a run of swaps of one system in one configuration.
type series struct {
	System string
	Config string
	Recs   []swapRec
	Wall   time.Duration
}

// runSwaps performs n swaps back to back, bounded by count and by limit;
// it stops early after 5 failures in a row. between runs after each swap.
func runSwaps(ctx context.Context, sys system, n int, limit time.Duration, between func(int)) []swapRec {
	deadline := time.Now().Add(limit)
	var recs []swapRec
	failedInRow := 0
	for i := 0; i < n && time.Now().Before(deadline) && ctx.Err() == nil; i++ {
		r := sys.Swap(ctx)
		recs = append(recs, r)
		if between != nil {
			between(i)
		}
		if r.OK {
			failedInRow = 0
			continue
		}
		logfn("  %s: swap %d failed: %s", sys.Name(), i, r.Err)
		if failedInRow++; failedInRow >= 5 {
			logfn("  %s: %v", sys.Name(), errTooManyFailures)
			break
		}
	}
	return recs
}

func (s series) ok() []swapRec {
	var out []swapRec
	for _, r := range s.Recs {
		if r.OK {
			out = append(out, r)
		}
	}
	return out
}

func (s series) failed() int { return len(s.Recs) - len(s.ok()) }

func (s series) ready() summary {
	var ds []time.Duration
	for _, r := range s.ok() {
		ds = append(ds, r.Ready)
	}
	return summarize(ds)
}

func (s series) oldGone() summary {
	var ds []time.Duration
	for _, r := range s.ok() {
		ds = append(ds, r.OldGone)
	}
	return summarize(ds)
}

// phaseNames lists the phases in the order they happen.
func (s series) phaseNames() []string {
	var names []string
	seen := map[string]bool{}
	for _, r := range s.ok() {
		for _, p := range r.Phases {
			if !seen[p.Name] {
				seen[p.Name] = true
				names = append(names, p.Name)
			}
		}
	}
	return names
}

func (s series) phase(name string) summary {
	var ds []time.Duration
	for _, r := range s.ok() {
		for _, p := range r.Phases {
			if p.Name == name {
				ds = append(ds, p.D)
			}
		}
	}
	return summarize(ds)
}

func (s series) resent() int {
	n := 0
	for _, r := range s.Recs {
		n += r.Resent
	}
	return n
}

func (s series) errors() []string {
	var out []string
	for i, r := range s.Recs {
		if !r.OK && len(out) < 5 {
			out = append(out, fmt.Sprintf("swap %d: %s", i, r.Err))
		}
	}
	return out
}
