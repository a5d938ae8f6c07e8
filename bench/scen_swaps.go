package main

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strconv"
	"time"
)

// bench holds what every measurement needs.
type bench struct {
	p    plan
	b    binaries
	base string // a directory on the root file system (ext4 here): data, journal, sockets
	shm  string // a tmpfs directory, for the configuration without fsync cost
}

// listenerNames are n names, "http" first (the prober's and the clients').
func listenerNames(n int) []string {
	names := []string{"http"}
	for i := 1; i < n; i++ {
		names = append(names, "l"+strconv.Itoa(i))
	}
	return names
}

func (x *bench) nopd(name string, journal bool, base string, listeners int) oursOpts {
	return oursOpts{name: name, binary: x.b.Nopd, extraArgs: []string{"--build-id", "bench-nopd"},
		listeners: listenerNames(listeners), journal: journal, base: base}
}

// kvd is kvd with its two listeners and the supervisor's journal, like
// `handoff supervise` runs it, with data prefilled to size bytes.
func (x *bench) kvd(name string, size int64) oursOpts {
	o := oursOpts{name: name, binary: x.b.KVD, extraArgs: []string{"--build-id", "bench-kvd"},
		listeners: []string{"http", "resp"}, journal: true, base: x.base}
	if size > 0 {
		o.prefill = prefill(size, 4096)
	}
	return o
}

// idleSeries runs n swaps of a system started by start, with no load.
func (x *bench) idleSeries(ctx context.Context, config string, sys system, n int) series {
	defer sys.Close()
	t0 := time.Now()
	recs := runSwaps(ctx, sys, n, swapLimit(n), nil)
	s := series{System: sys.Name(), Config: config, Recs: recs, Wall: time.Since(t0)}
	logSeries(s)
	return s
}

// swapLimit bounds a series in time: a generous 2 s per swap plus a minute.
func swapLimit(n int) time.Duration { return time.Duration(n)*2*time.Second + time.Minute }

// nopdGoroutines asks a nopd incumbent for its goroutine count.
func nopdGoroutines(addr string) int {
	c := oneShotClient(2 * time.Second)
	resp, err := c.Get("http://" + addr + "/stats")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	var v struct{ Goroutines int }
	if json.NewDecoder(resp.Body).Decode(&v) != nil {
		return -1
	}
	return v.Goroutines
}

// idleResults are the swap durations without load.
type idleResults struct {
	Series       []series
	NopdGorFirst int // goroutines of the first nopd generation
	NopdGorLast  int // … and of the last one
	NopdFDsFirst int
	NopdFDsLast  int
	NopdRSSFirst int64
	NopdRSSLast  int64
}

func (x *bench) runIdle(ctx context.Context) (idleResults, error) {
	var out idleResults
	cfgs := []struct {
		label string
		o     oursOpts
	}{
		{cfgNopJournal, x.nopd("nopd-journal", true, x.base, 1)},
		{cfgNopNoJ, x.nopd("nopd-nojournal", false, x.base, 1)},
		{cfgNopTmpfs, x.nopd("nopd-tmpfs", true, x.shm, 1)},
		{cfgKVD + ", 1 MiB data, journal on disk", x.kvd("kvd-idle", 1*mib)},
	}
	var systems []system
	var labels []string
	defer func() {
		for _, s := range systems {
			s.Close()
		}
	}()
	for _, c := range cfgs {
		sys, err := startOurs(ctx, c.o)
		if err != nil {
			return out, fmt.Errorf("%s: %w", c.label, err)
		}
		systems, labels = append(systems, sys), append(labels, c.label)
	}
	p, err := startPeer(x.b.TFPeer, x.base)
	if err != nil {
		return out, fmt.Errorf("tableflip: %w", err)
	}
	systems, labels = append(systems, p), append(labels, cfgTableflip+", HTTP server, SIGHUP")
	nopd := systems[0].(*ours)
	_, r := nopd.incumbentRes()
	out.NopdGorFirst, out.NopdFDsFirst, out.NopdRSSFirst = nopdGoroutines(nopd.HTTPAddr()), r.FDs, r.RSSKiB
	recs := interleave(ctx, systems, x.p.IdleSwaps)
	_, r = nopd.incumbentRes()
	out.NopdGorLast, out.NopdFDsLast, out.NopdRSSLast = nopdGoroutines(nopd.HTTPAddr()), r.FDs, r.RSSKiB
	for i, sys := range systems {
		s := series{System: sys.Name(), Config: labels[i], Recs: recs[i]}
		logSeries(s)
		out.Series = append(out.Series, s)
	}
	return out, nil
}

// interleave runs n swaps of every system, round-robin (one swap of each in
// turn), so that whatever else the machine does affects them alike. A
// system that fails 5 swaps in a row leaves the rotation.
func interleave(ctx context.Context, systems []system, n int) [][]swapRec {
	recs := make([][]swapRec, len(systems))
	failedInRow := make([]int, len(systems))
	deadline := time.Now().Add(swapLimit(n * len(systems)))
	for i := 0; i < n && time.Now().Before(deadline) && ctx.Err() == nil; i++ {
		for j, sys := range systems {
			if failedInRow[j] >= 5 {
				continue
			}
			r := sys.Swap(ctx)
			recs[j] = append(recs[j], r)
			if r.OK {
				failedInRow[j] = 0
				continue
			}
			failedInRow[j]++
			logfn("  %s: swap %d failed: %s", sys.Name(), i, r.Err)
		}
	}
	return recs
}

// sizeResult is the swap cost at one data-dir size.
type sizeResult struct {
	Bytes   int64 // requested
	LogSize int64 // kvd.log after prefill
	Series  series
	Open    summary  // store.Open of the same data dir, in this process, after the swaps
	OpenTop []string // CPU profile of those opens (largest size only)
}

func (x *bench) runSizes(ctx context.Context) ([]sizeResult, error) {
	var out []sizeResult
	for _, size := range x.p.Sizes {
		t0 := time.Now()
		sys, err := startOurs(ctx, x.kvd("kvd-size", size))
		if err != nil {
			return out, err
		}
		logSize := fileSize(filepath.Join(sys.dataDir, "kvd.log"))
		logfn("  prefilled %d MiB in %v", logSize/mib, time.Since(t0).Round(time.Millisecond))
		label := fmt.Sprintf("kvd, %s of data", humanBytes(size))
		r := sizeResult{Bytes: size, LogSize: logSize, Series: x.idleSeries(ctx, label, sys, x.p.SizeSwaps)}
		r.Open, r.OpenTop = timeOpens(sys.dataDir, x.base, size == x.p.Sizes[len(x.p.Sizes)-1])
		out = append(out, r)
	}
	return out, nil
}

func humanBytes(n int64) string {
	switch {
	case n >= gib:
		return fmt.Sprintf("%d GiB", n/gib)
	case n >= mib:
		return fmt.Sprintf("%d MiB", n/mib)
	}
	return fmt.Sprintf("%d KiB", n/1024)
}

// listenerResult is the swap cost at one listener count.
type listenerResult struct {
	Count  int
	Series series
}

func (x *bench) runListeners(ctx context.Context) ([]listenerResult, error) {
	var systems []system
	defer func() {
		for _, s := range systems {
			s.Close()
		}
	}()
	for _, n := range x.p.ListenerCounts {
		sys, err := startOurs(ctx, x.nopd(fmt.Sprintf("nopd-%dl", n), true, x.base, n))
		if err != nil {
			return nil, err
		}
		systems = append(systems, sys)
	}
	recs := interleave(ctx, systems, x.p.ListenerSwaps)
	var out []listenerResult
	for i, n := range x.p.ListenerCounts {
		s := series{System: "handoff", Config: fmt.Sprintf("nopd, listeners: %d", n), Recs: recs[i]}
		logSeries(s)
		out = append(out, listenerResult{Count: n, Series: s})
	}
	return out, nil
}
