package main

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

func reportRatios(m *md, res *results) {
	m.p("## Ours / theirs (handoff / tableflip, same run)")
	m.p("")
	m.table("measure", "handoff", "tableflip", "ours / theirs")
	tf, okTF := res.idleSeries(cfgTableflip)
	for _, cfg := range []string{cfgNopJournal, cfgKVD} {
		s, ok := res.idleSeries(cfg)
		if !ok || !okTF {
			continue
		}
		m.row("swap p50, trigger → new process serving ("+cfg+")", ms(s.ready().P50)+" ms", ms(tf.ready().P50)+" ms",
			ratio(float64(s.ready().P50), float64(tf.ready().P50)))
		m.row("swap p50, trigger → old process gone ("+cfg+")", ms(s.oldGone().P50)+" ms", ms(tf.oldGone().P50)+" ms",
			ratio(float64(s.oldGone().P50), float64(tf.oldGone().P50)))
	}
	var theirs blackoutResult
	for _, b := range res.Blackouts {
		if b.Label == "tableflip" {
			theirs = b
		}
	}
	for _, b := range res.Blackouts {
		if b.Label == "tableflip" || theirs.Gap.N == 0 {
			continue
		}
		m.row("accept blackout p50 / max ("+b.Label+")", ms(b.Gap.P50)+" / "+ms(b.Gap.Max)+" ms",
			ms(theirs.Gap.P50)+" / "+ms(theirs.Gap.Max)+" ms",
			ratio(float64(b.Gap.P50), float64(theirs.Gap.P50))+" / "+ratio(float64(b.Gap.Max), float64(theirs.Gap.Max)))
	}
	for _, mode := range []loadMode{modeKeepAlive, modeNewConn} {
		ours, theirs, ok := loadPair(res, mode)
		if !ok {
			continue
		}
		a, b := perSwap(ours), perSwap(theirs)
		m.row("failed requests per swap, "+mode.String()+" (kvd vs in-memory peer)",
			fmt.Sprintf("%.2f (%d in %d)", a, ours.Stats.Errs.failures(), len(ours.Series.ok())),
			fmt.Sprintf("%.2f (%d in %d)", b, theirs.Stats.Errs.failures(), len(theirs.Series.ok())), ratio(a, b))
	}
	m.p("")
	m.p("Stale reads of the stateless peer are not counted as its failures here: tableflip moves sockets, not state, so its new generation starts empty by design. They are listed in the load table.")
	m.p("")
}

func loadPair(res *results, mode loadMode) (ours, theirs loadResult, ok bool) {
	var a, b bool
	for _, l := range res.Loads {
		if l.Stats.Mode != mode {
			continue
		}
		if l.System == "tableflip" {
			theirs, b = l, true
		} else {
			ours, a = l, true
		}
	}
	return ours, theirs, a && b
}

func perSwap(l loadResult) float64 {
	return float64(l.Stats.Errs.failures()) / float64(max(1, len(l.Series.ok())))
}

func reportSwaps(m *md, res *results) {
	if res.Idle == nil {
		return
	}
	m.p("## Swap duration per phase (no load)")
	m.p("")
	m.p("Trigger → serving is `PerformHandoff` from call to return for handoff (Commit sent and the new incumbent answering on the control socket), "+
		"and SIGHUP → the new process's pid file (written by its `Ready`) for tableflip. Old gone: until the old process has exited (pidfd). "+
		"Phases (p50 / p99, ms) are the supervisor's own `Outcome.Phases`: *spawned* = journal, connect to the incumbent and its Hello/HelloAck, fork+exec, journal again (the successor starts meanwhile); "+
		"*hello* = the rest of the wait for the successor's Hello; *drained*, *sealed* = the incumbent's hooks and round trips; *ready* = Begin → Ready (lock, open state); "+
		"*committed* = journal `Committed`, Commit to both, until the new incumbent owns the control socket path. %d swaps per configuration.", res.Plan.IdleSwaps)
	m.p("")
	seriesTable(m, res.Idle.Series)
	m.p("")
	m.p("nopd incumbent after %d swaps vs the first generation: goroutines %d → %d, fds %d → %d, RSS %d → %d KiB.",
		res.Plan.IdleSwaps, res.Idle.NopdGorFirst, res.Idle.NopdGorLast, res.Idle.NopdFDsFirst, res.Idle.NopdFDsLast,
		res.Idle.NopdRSSFirst, res.Idle.NopdRSSLast)
	m.p("")
}

// phaseOrder is the order of phase columns.
var phaseOrder = []string{"spawned", "hello", "drained", "sealed", "ready", "committed"}

func seriesTable(m *md, ss []series) {
	head := []string{"configuration", "swaps (failed)", "trigger → serving p50 / p99 / max", "old gone p50 / p99"}
	m.table(append(head, phaseOrder...)...)
	for _, s := range ss {
		r, g := s.ready(), s.oldGone()
		cells := []string{s.Config, fmt.Sprintf("%d (%d)", len(s.Recs), s.failed()),
			ms(r.P50) + " / " + ms(r.P99) + " / " + ms(r.Max), ms(g.P50) + " / " + ms(g.P99)}
		for _, ph := range phaseOrder {
			cells = append(cells, phaseCell(s, ph))
		}
		m.row(cells...)
	}
	var errs []string
	for _, s := range ss {
		for _, e := range s.errors() {
			errs = append(errs, "- failed swap, "+s.Config+": "+e)
		}
	}
	if len(errs) > 0 {
		m.p("")
		m.p("%s", strings.Join(errs, "\n"))
	}
}

func phaseCell(s series, name string) string {
	if s.System == "tableflip" || strings.HasPrefix(s.Config, "tableflip") {
		return "–"
	}
	p := s.phase(name)
	if p.N == 0 {
		return "–"
	}
	return ms(p.P50) + " / " + ms(p.P99)
}

func reportFloors(m *md, res *results) {
	if len(res.Floors) == 0 {
		return
	}
	m.p("## The physical floor")
	m.p("")
	m.p("Spawn exactly as the supervisor spawns a successor (listeners at fd 3…, a socketpair end after them, the LISTEN_*/HANDOFF_* environment) and time until the first frame (the Hello) has arrived on the socketpair; "+
		"no HelloAck, no protocol. Round-robin over the binaries, %d spawns each. The idle swaps below ran round-robin too (one swap of each configuration in turn).", res.Plan.FloorN)
	m.p("")
	m.table("binary", "what", "p50 ms", "p99 ms", "max ms", "errors")
	for _, f := range res.Floors {
		m.row(f.Label, f.What, ms(f.Sum.P50), ms(f.Sum.P99), ms(f.Sum.Max), fmt.Sprint(f.Errs))
	}
	m.p("")
	m.table("swap", "swap p50 / floor p50", "swap p50 − floor p50")
	for _, pair := range [][2]string{{cfgNopJournal, "nopd"}, {cfgNopNoJ, "nopd"}, {cfgNopTmpfs, "nopd"}, {cfgKVD, "kvd"}} {
		s, ok1 := res.idleSeries(pair[0])
		f, ok2 := res.floor(pair[1])
		if ok1 && ok2 {
			m.row(s.Config+" vs "+pair[1]+" floor", ratio(float64(s.ready().P50), float64(f.Sum.P50)), ms(s.ready().P50-f.Sum.P50)+" ms")
		}
	}
	m.p("")
}

func reportBlackouts(m *md, res *results) {
	if len(res.Blackouts) == 0 {
		return
	}
	m.p("## Accept blackout")
	m.p("")
	m.p("A prober opens a new TCP connection every %v, sends `GET /healthz` with `Connection: close` and waits for the status line. "+
		"Per swap, the blackout is the longest interval without a completed probe, from the last completion before the trigger to the first after the old process is gone. "+
		"*Longest wait* is the slowest single probe overlapping the swap (time spent in the listen backlog). "+
		"*Prober baseline* is the same gap statistic over slices (as wide as a swap window) of the steady probing before the swaps: the prober's own resolution on this machine. "+
		"*Bystander* is the same statistic over the very same swap windows, measured by a second prober on a second nopd that is never swapped: what the machine's contention during a swap does to any daemon; *excess* is, per swap, the blackout minus the bystander's gap in the same window (0 when smaller). 20 ms pause between swaps; %d rounds alternating the systems, %v of probing before each round's swaps.", res.Plan.ProbeEvery, blackoutRounds, blackoutSteady)
	m.p("")
	m.table("system", "swaps (failed)", "blackout p50 / p99 / max ms", "longest wait p50 / max ms", "prober baseline p50 / max ms", "bystander, same windows p50 / max ms", "excess over bystander p50 / max ms", "probes", "probe failures")
	for _, b := range res.Blackouts {
		m.row(b.Label, fmt.Sprintf("%d (%d)", len(b.Series.Recs), b.Series.failed()),
			ms(b.Gap.P50)+" / "+ms(b.Gap.P99)+" / "+ms(b.Gap.Max), ms(b.Wait.P50)+" / "+ms(b.Wait.Max),
			ms(b.Baseline.P50)+" / "+ms(b.Baseline.Max), ms(b.Bystander.P50)+" / "+ms(b.Bystander.Max), ms(b.Excess.P50)+" / "+ms(b.Excess.Max), fmt.Sprint(b.Probes), errSummary(b.Errs))
	}
	m.p("")
	for _, b := range res.Blackouts {
		if b.Label != "tableflip" && len(b.GapIn) > 0 {
			m.p("- %s: the longest gap of each swap began in phase %s.", b.Label, gapPhases(b.GapIn))
		}
	}
	m.p("")
}

// gapPhases lists phases by how many swaps' longest gap began in them.
func gapPhases(in map[string]int) string {
	order := append([]string{"before the trigger"}, append(slices.Clone(phaseOrder), "after the outcome")...)
	var parts []string
	for _, ph := range order {
		if n := in[ph]; n > 0 {
			parts = append(parts, fmt.Sprintf("*%s* %d×", ph, n))
		}
	}
	return strings.Join(parts, ", ")
}

func errSummary(e errCounts) string {
	var parts []string
	for i, v := range e {
		if v > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", errClass(i), v))
		}
	}
	if len(parts) == 0 {
		return "0"
	}
	return strings.Join(parts, ", ")
}

func reportLoads(m *md, res *results) {
	if len(res.Loads) == 0 {
		return
	}
	m.p("## Client errors under load")
	m.p("")
	m.p("%d closed-loop clients per run, each at full speed: `PUT /kv/{new key}` (%d-byte value) then `GET` of that key (RESP: `SET` then `GET`), "+
		"%v of steady load, then swaps back to back, then %v more. Go's `http.Transport` with one connection per client; requests carry a body without `GetBody`, "+
		"so the Transport can replay none of them (checked by the self-test below): every failure the client library sees is counted. "+
		"handoff runs kvd (fsync before each acknowledgement); the peer serves the same API from memory.",
		res.Plan.Clients, res.Plan.ValueSize, res.Plan.Steady, res.Plan.Steady)
	m.p("")
	head := []string{"system", "mode", "swaps (failed)", "req/s"}
	for i := range numClasses {
		head = append(head, errClass(i).String())
	}
	m.table(append(head, "failed / swap", "in swap windows", "acked writes read back", "lost")...)
	for _, l := range res.Loads {
		loadRow(m, l)
	}
	m.p("")
	m.p("Latency of successful requests (ms): steady state vs requests that overlapped a swap window (trigger → old process gone).")
	m.p("")
	m.table("system", "mode", "steady n", "steady p50 / p99 / p99.9 / max", "in swaps n", "in swaps p50 / p99 / p99.9 / max")
	for _, l := range res.Loads {
		st := l.Stats
		m.row(l.System, st.Mode.String(), fmt.Sprint(st.Steady.N), latCell(st.Steady), fmt.Sprint(st.InSwap.N), latCell(st.InSwap))
	}
	m.p("")
	reportExamples(m, res.Loads)
	reportSelfTest(m, res)
}

func loadRow(m *md, l loadResult) {
	st := l.Stats
	cells := []string{l.System, st.Mode.String(), fmt.Sprintf("%d (%d)", len(l.Series.Recs), l.Series.failed()), fmt.Sprintf("%.0f", l.Rate)}
	for _, v := range st.Errs {
		cells = append(cells, fmt.Sprint(v))
	}
	read, lost := "n/a", "n/a"
	if l.Checked > 0 || l.System != "tableflip" {
		read, lost = fmt.Sprint(l.Checked), fmt.Sprint(l.Lost)
	}
	cells = append(cells, fmt.Sprintf("%.2f", perSwap(l)), fmt.Sprint(st.ErrsInWindows), read, lost)
	m.row(cells...)
}

func latCell(s summary) string {
	if s.N == 0 {
		return "–"
	}
	return ms(s.P50) + " / " + ms(s.P99) + " / " + ms(s.P999) + " / " + ms(s.Max)
}

func reportExamples(m *md, loads []loadResult) {
	any := false
	for _, l := range loads {
		if len(l.Stats.Examples) == 0 {
			continue
		}
		if !any {
			m.p("Errors as the clients saw them (normalised: addresses and keys removed):")
			m.p("")
			any = true
		}
		m.p("- %s, %s:", l.System, l.Stats.Mode)
		for _, e := range l.Stats.Examples {
			m.p("  - `%s`", strings.ReplaceAll(e, "`", "'"))
		}
	}
	if any {
		m.p("")
	}
	for _, l := range loads {
		if l.Verify != "" && l.System != "tableflip" {
			m.p("Read-back (%s, %s): %s.", l.System, l.Stats.Mode, l.Verify)
		}
	}
	m.p("")
}

func reportSelfTest(m *md, res *results) {
	st := res.SelfTest
	if st == nil {
		return
	}
	m.p("Client self-test (no hidden retries): a server that answers the first request on a connection and closes it after reading the second, without answering. "+
		"The second PUT and the second GET must fail, and the server must see each request once: passed = %v, server saw %d requests for 4 sent; PUT error `%s`; GET error `%s`.",
		st.Passed, st.Arrivals, st.PutErr, st.GetErr)
	m.p("")
}

func reportStability(m *md, res *results) {
	st := res.Stability
	if st == nil || len(st.Samples) < 2 {
		return
	}
	m.p("## Resource stability")
	m.p("")
	m.p("kvd (1 MiB data, journal on disk) swapped %d times with no load, after %d warm-up swaps, in %v. "+
		"The supervisor is this process: goroutines (`runtime.NumGoroutine`), open fds (`/proc/self/fd`), VmRSS and heap after `runtime.GC` + `debug.FreeOSMemory`, sampled every %d swaps once no old generation is still exiting. "+
		"Flat means: the same goroutines and fds at the end as after the warm-up, and least-squares growth below 100 KiB of heap and 1 MiB of RSS per 1000 swaps. Swap p50 %s ms, %d failed.",
		st.Samples[len(st.Samples)-1].Swaps, st.WarmSwaps, st.Wall.Round(time.Second), st.SampleEach, ms(st.Series.ready().P50), st.Series.failed())
	m.p("")
	m.table("", "after warm-up", "end", "growth per 1000 swaps (least squares)")
	f, l := st.Samples[0], st.Samples[len(st.Samples)-1]
	gr := func(fn func(stabSample) float64) string { return fmt.Sprintf("%+.1f", st.growth(fn)) }
	m.row("supervisor goroutines", fmt.Sprint(f.Self.Goroutines), fmt.Sprint(l.Self.Goroutines), gr(func(s stabSample) float64 { return float64(s.Self.Goroutines) }))
	m.row("supervisor open fds", fmt.Sprint(f.Self.FDs), fmt.Sprint(l.Self.FDs), gr(func(s stabSample) float64 { return float64(s.Self.FDs) }))
	m.row("supervisor VmRSS KiB", fmt.Sprint(f.Self.RSSKiB), fmt.Sprint(l.Self.RSSKiB), gr(func(s stabSample) float64 { return float64(s.Self.RSSKiB) }))
	m.row("supervisor heap after GC KiB", fmt.Sprint(f.Self.HeapKiB), fmt.Sprint(l.Self.HeapKiB), gr(func(s stabSample) float64 { return float64(s.Self.HeapKiB) }))
	m.row("supervisor threads", fmt.Sprint(f.Self.Threads), fmt.Sprint(l.Self.Threads), gr(func(s stabSample) float64 { return float64(s.Self.Threads) }))
	m.row("incumbent open fds", fmt.Sprint(f.Incumbent.FDs), fmt.Sprint(l.Incumbent.FDs), gr(func(s stabSample) float64 { return float64(s.Incumbent.FDs) }))
	m.row("incumbent VmRSS KiB", fmt.Sprint(f.Incumbent.RSSKiB), fmt.Sprint(l.Incumbent.RSSKiB), gr(func(s stabSample) float64 { return float64(s.Incumbent.RSSKiB) }))
	m.row("incumbent threads", fmt.Sprint(f.Incumbent.Threads), fmt.Sprint(l.Incumbent.Threads), gr(func(s stabSample) float64 { return float64(s.Incumbent.Threads) }))
	m.p("")
	m.p("The cold-started kvd (generation 0) had %d fds, %d KiB RSS, %d threads. The incumbent's descriptors after the warm-up and after the last swap are %s (%d vs %d); kvd exposes no goroutine count (threads shown instead; nopd's goroutines are in the swap section).",
		st.Cold.FDs, st.Cold.RSSKiB, st.Cold.Threads, sameFDs(st.FirstFDs, st.LastFDs), len(st.FirstFDs), len(st.LastFDs))
	m.p("")
	if len(st.NonBlock) > 0 {
		var parts []string
		for _, name := range slices.Sorted(maps.Keys(st.NonBlock)) {
			parts = append(parts, fmt.Sprintf("%s %v", name, st.NonBlock[name]))
		}
		m.p("The supervisor's listening sockets are still non-blocking (O_NONBLOCK, read through `SyscallConn`) after the last swap: %s.", strings.Join(parts, ", "))
		m.p("")
	}
	m.p("Samples (swaps: goroutines, fds, RSS KiB, heap KiB): %s.", sampleList(st.Samples))
	m.p("")
}

// sameFDs compares two fd lists by number and kind of target (socket and
// pipe inode numbers differ between generations).
func sameFDs(a, b []string) string {
	norm := func(xs []string) string {
		var out []string
		for _, x := range xs {
			n, t, _ := strings.Cut(x, "→")
			if i := strings.Index(t, ":["); i > 0 {
				t = t[:i]
			}
			out = append(out, n+"→"+t)
		}
		return strings.Join(out, ",")
	}
	if norm(a) == norm(b) {
		return "the same set (fd numbers and kinds)"
	}
	return fmt.Sprintf("different: `%s` vs `%s`", norm(a), norm(b))
}

func sampleList(ss []stabSample) string {
	var parts []string
	for _, s := range ss {
		parts = append(parts, fmt.Sprintf("%d: %d, %d, %d, %d", s.Swaps, s.Self.Goroutines, s.Self.FDs, s.Self.RSSKiB, s.Self.HeapKiB))
	}
	return strings.Join(parts, "; ")
}

func reportGrowth(m *md, res *results) {
	if len(res.Sizes) == 0 && len(res.Listeners) == 0 {
		return
	}
	m.p("## Cost growth")
	m.p("")
	if len(res.Sizes) > 0 {
		m.p("Against kvd's data-dir size (prefilled through kvd's store package with 4 KiB values; kvd reads and hashes its whole log when it opens it, which the successor does between Begin and Ready). %d swaps per size, no load.", res.Plan.SizeSwaps)
		m.p("")
		var ss []series
		for _, s := range res.Sizes {
			s.Series.Config += fmt.Sprintf(" (log %d MiB)", s.LogSize/mib)
			ss = append(ss, s.Series)
		}
		seriesTable(m, ss)
		m.p("")
		for _, s := range res.Sizes {
			m.p("- %s: kvd's `store.Open` of the same data dir in the harness process, without the protocol: p50 %s ms (%d opens); the swap's *ready* phase p50 is %s ms.",
				humanBytes(s.Bytes), ms(s.Open.P50), s.Open.N, ms(s.Series.phase("ready").P50))
		}
		m.p("")
		if last := res.Sizes[len(res.Sizes)-1]; len(last.OpenTop) > 0 {
			m.p("CPU profile of those opens at %s (`go tool pprof -top`):", humanBytes(last.Bytes))
			m.p("")
			m.p("```")
			for _, l := range last.OpenTop {
				m.p("%s", l)
			}
			m.p("```")
			m.p("")
		}
	}
	if len(res.Listeners) > 0 {
		m.p("Against the number of listeners (nopd, no-op hooks, journal on disk; every listener is passed to each generation; round-robin over the counts). %d swaps per count.", res.Plan.ListenerSwaps)
		m.p("")
		var ss []series
		for _, l := range res.Listeners {
			ss = append(ss, l.Series)
		}
		seriesTable(m, ss)
		m.p("")
	}
}

func reportCLI(m *md, res *results) {
	c := res.CLI
	if c == nil {
		return
	}
	m.p("## Through the real program")
	m.p("")
	m.p("kvd under `handoff supervise --config F` (journal, metrics, `Run`), swapped by running `handoff upgrade --json --config F` %d times under the HTTP keep-alive load above. "+
		"Trigger → serving here is measured around the whole `handoff upgrade` command; its own cost (process start, trigger socket round trip) is the difference to the supervisor's reported total: p50 %s ms, p99 %s ms.",
		len(c.Load.Series.Recs), ms(c.ClientCost.P50), ms(c.ClientCost.P99))
	m.p("")
	seriesTable(m, []series{c.Load.Series})
	m.p("")
	head := []string{"system", "mode", "swaps (failed)", "req/s"}
	for i := range numClasses {
		head = append(head, errClass(i).String())
	}
	m.table(append(head, "failed / swap", "in swap windows", "acked writes read back", "lost")...)
	loadRow(m, c.Load)
	m.p("")
	m.p("Supervisor process (`/proc/<pid>` and its `/metrics`), after %d warm-up swaps → after the run: goroutines %d → %d, fds %d → %d, RSS %d → %d KiB, threads %d → %d.",
		cliWarmSwaps, c.SupStart.Goroutines, c.SupEnd.Goroutines, c.SupStart.FDs, c.SupEnd.FDs, c.SupStart.RSSKiB, c.SupEnd.RSSKiB, c.SupStart.Threads, c.SupEnd.Threads)
	m.p("")
}
