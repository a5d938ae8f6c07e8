package main

import "time"

// plan is how much each measurement runs. The quick plan fits in a few
// minutes on 2 cores; the full plan runs the counts the issue asks for
// (≥ 200 swaps per load mode, ≥ 1000 for resource stability, 1 GB of data).
type plan struct {
	Full           bool
	FloorN         int           // spawns per floor binary
	IdleSwaps      int           // swaps per configuration, no load
	BlackoutSwaps  int           // swaps per system with the accept prober
	LoadSwaps      int           // swaps per system and load mode
	StabilitySwaps int           // swaps for resource stability
	SizeSwaps      int           // swaps per data-dir size
	Sizes          []int64       // data-dir sizes
	ListenerSwaps  int           // swaps per listener count
	ListenerCounts []int         // listener counts
	CLISwaps       int           // swaps through `handoff supervise` + `handoff upgrade`
	Clients        int           // concurrent load clients
	ValueSize      int           // bytes per written value
	Steady         time.Duration // load without swaps before and after the swaps
	ProbeEvery     time.Duration // accept prober interval
	ProfileSwaps   int           // swaps under strace / pprof
}

const (
	mib = 1 << 20
	gib = 1 << 30
)

func quickPlan() plan {
	return plan{
		FloorN: 200, IdleSwaps: 200, BlackoutSwaps: 100, LoadSwaps: 100, StabilitySwaps: 500,
		SizeSwaps: 20, Sizes: []int64{1 * mib, 100 * mib},
		ListenerSwaps: 50, ListenerCounts: []int{1, 8, 64},
		CLISwaps: 30, Clients: 64, ValueSize: 100, Steady: 2 * time.Second,
		ProbeEvery: time.Millisecond, ProfileSwaps: 30,
	}
}

func fullPlan() plan {
	return plan{
		Full:   true,
		FloorN: 1000, IdleSwaps: 500, BlackoutSwaps: 400, LoadSwaps: 300, StabilitySwaps: 2000,
		SizeSwaps: 30, Sizes: []int64{1 * mib, 100 * mib, 1 * gib},
		ListenerSwaps: 200, ListenerCounts: []int{1, 8, 64},
		CLISwaps: 200, Clients: 64, ValueSize: 100, Steady: 3 * time.Second,
		ProbeEvery: time.Millisecond, ProfileSwaps: 100,
	}
}
