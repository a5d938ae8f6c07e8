package main

import (
	"fmt"
	"strings"
	"time"
)

func reportProfile(m *md, res *results) {
	m.p("## Where the time goes")
	m.p("")
	pr := res.Profile
	if pr != nil {
		profileTables(m, pr)
	}
	analysis(m, res)
}

func profileTables(m *md, pr *profileResult) {
	if len(pr.FsyncBy) > 0 {
		m.p("Every fsync, fdatasync and sync_file_range of the supervisor and all its children, traced with `strace -f -y -T` during %d no-op swaps (nopd, journal on disk; strace slows the swaps: p50 %s ms here). Per swap, by file:",
			len(pr.Series.Recs), ms(pr.Series.ready().P50))
		m.p("")
		m.table("file", "calls per swap", "wall time per swap ms")
		var calls float64
		var total time.Duration
		for _, g := range pr.FsyncBy {
			per := g.Total / time.Duration(max(1, len(pr.Series.Recs)))
			m.row(g.What, fmt.Sprintf("%.1f", g.PerSwap), ms(per))
			calls += g.PerSwap
			total += per
		}
		m.row("**all**", fmt.Sprintf("%.1f", calls), ms(total))
		m.p("")
	} else if pr.FsyncErr != "" {
		m.p("fsync trace failed: %s", pr.FsyncErr)
		m.p("")
	}
	if len(pr.PprofTop) > 0 {
		m.p("CPU: %d no-op swaps on tmpfs (p50 %s ms) cost the supervisor %s ms of CPU per swap and each daemon generation %s ms (user + system, from getrusage of the reaped children). "+
			"Top of the supervisor's CPU profile (`go tool pprof -top`):", pr.CPUSwaps, ms(pr.TmpSeries.ready().P50), ms(pr.SelfCPU), ms(pr.ChildCPU))
		m.p("")
		m.p("```")
		for _, l := range pr.PprofTop {
			m.p("%s", l)
		}
		m.p("```")
		m.p("")
	} else if pr.PprofErr != "" {
		m.p("CPU profile failed: %s", pr.PprofErr)
		m.p("")
	}
}

// analysis explains, from this run's numbers, what dominates each missed
// target and what would close the gap.
func analysis(m *md, res *results) {
	floorAnalysis(m, res)
	tableflipAnalysis(m, res)
	blackoutAnalysis(m, res)
	loadAnalysis(m, res)
}

func phaseP50(s series, name string) time.Duration { return s.phase(name).P50 }

func floorAnalysis(m *md, res *results) {
	f, okF := res.floor("nopd")
	disk, ok1 := res.idleSeries(cfgNopJournal)
	noj, ok2 := res.idleSeries(cfgNopNoJ)
	tmp, ok3 := res.idleSeries(cfgNopTmpfs)
	if !okF || !ok1 {
		return
	}
	m.p("### Swap duration vs the floor (no-op hooks)")
	m.p("")
	m.p("The nopd floor (spawn → Hello) is %s ms at p50. A no-op swap with the journal on disk takes %s ms (%s ms above the floor).", ms(f.Sum.P50), ms(disk.ready().P50), ms(disk.ready().P50-f.Sum.P50))
	if ok2 && ok3 {
		rest := fmt.Sprintf("the rest of the disk (no journal − tmpfs; nothing else fsyncs in a no-op swap) for about %s ms", ms(noj.ready().P50-tmp.ready().P50))
		if noj.ready().P50 <= tmp.ready().P50 {
			rest = fmt.Sprintf("the rest of the disk for nothing measurable (no journal − tmpfs = %s ms, within the noise: nothing else fsyncs in a no-op swap)", ms(noj.ready().P50-tmp.ready().P50))
		}
		m.p("Without a journal it takes %s ms, and with journal and data dir on tmpfs (fsync costs nothing) %s ms: "+
			"the journal on disk accounts for about %s ms of the median swap, %s, "+
			"and the protocol itself, with no fsync cost, is %s ms above the floor.",
			ms(noj.ready().P50), ms(tmp.ready().P50), ms(disk.ready().P50-noj.ready().P50), rest, ms(tmp.ready().P50-f.Sum.P50))
	}
	m.p("")
	m.p("Phase medians (ms), journal on disk / no journal / tmpfs:")
	m.p("")
	m.table("phase", cfgNopJournal, cfgNopNoJ, cfgNopTmpfs)
	for _, ph := range phaseOrder {
		m.row(ph, ms(phaseP50(disk, ph)), ms(phaseP50(noj, ph)), ms(phaseP50(tmp, ph)))
	}
	m.p("")
	m.p("What would close the gap (what each item costs in this run, from the rows above):")
	m.p("")
	journal := ""
	if ok2 && ok3 {
		journal = fmt.Sprintf(" (%s ms: journal on disk − no journal)", ms(disk.ready().P50-noj.ready().P50))
	}
	m.p("1. **Journal writes%s.** The supervisor writes the journal at every phase move, each write a temp file + fsync + rename + directory fsync "+
		"(the fsync table gives the calls per swap and their time). Recovery needs only two durable points: the successor's pid and start time before it can take the lock, and `Committed` before Commit is sent; "+
		"the other records could be written without fsync (or not at all), and an in-place record with a checksum and one fdatasync avoids the directory fsync. "+
		"DESIGN §6 asks for a durable record after every acknowledged step, and the recovery model was checked with it, so the journal stays as designed until a model run covers the lighter one. "+
		"(The lock's pid file, which the successor writes between Begin and Ready, is already replaced atomically without fsync: it describes a live process.)", journal)
	if ok3 {
		m.p("2. **Commit confirmation (%s ms, *committed* on tmpfs).** After sending Commit the supervisor watches the control socket path's inode every 1 ms (`confirmServing`) and asks the kernel who answers there once it changed. "+
			"A notification instead of the poll (the successor reporting on its socketpair once the path is bound, or inotify on the directory) would cut it to a round trip.", ms(phaseP50(tmp, "committed")))
		m.p("3. **Work before the spawn (%s ms: *spawned* + *hello* on tmpfs − the floor).** *spawned* includes a journal write, connecting to the incumbent and its Hello/HelloAck before fork+exec; "+
			"starting the successor first and talking to the incumbent while it warms up would hide that behind the floor.",
			ms(phaseP50(tmp, "spawned")+phaseP50(tmp, "hello")-f.Sum.P50))
	}
	m.p("")
}

func tableflipAnalysis(m *md, res *results) {
	ours, ok1 := res.idleSeries(cfgNopJournal)
	tmp, ok2 := res.idleSeries(cfgNopTmpfs)
	theirs, ok3 := res.idleSeries(cfgTableflip)
	f, ok4 := res.floor("nopd")
	if !ok1 || !ok2 || !ok3 || !ok4 || ours.ready().P50 <= theirs.ready().P50 {
		return
	}
	m.p("### Swap duration vs tableflip")
	m.p("")
	m.p("tableflip's upgrade is fork+exec of the same binary and the new process's `Ready` over an inherited pipe: %s ms at p50, next to a floor of %s ms for nopd. "+
		"It writes nothing durable and runs no drain or seal before the new process serves (the old one drains afterwards, with `Shutdown`). "+
		"handoff's no-op swap is %s ms with the journal on disk and %s ms on tmpfs: the journal's fsyncs make up most of the difference, and the rest is the protocol round trips and the commit poll listed above. "+
		"Closing the fsync gap (fewer durable journal records) and replacing the commit poll would bring the no-op swap to about the tmpfs figure.",
		ms(theirs.ready().P50), ms(f.Sum.P50), ms(ours.ready().P50), ms(tmp.ready().P50))
	m.p("")
}

func loadAnalysis(m *md, res *results) {
	var bad []loadResult
	for _, l := range ourLoads(res) {
		if failedOf(l) > 0 || l.Lost > 0 {
			bad = append(bad, l)
		}
	}
	if res.CLI != nil && failedOf(res.CLI.Load) > 0 {
		bad = append(bad, res.CLI.Load)
	}
	if len(bad) == 0 {
		return
	}
	m.p("### Failed requests under load")
	m.p("")
	modes := map[loadMode]bool{}
	for _, l := range bad {
		m.p("- %s, %s: %s in %d swaps (%s), %d of them inside swap windows; %d acknowledged writes lost.",
			l.System, l.Stats.Mode, errSummary(l.Stats.Errs), len(l.Series.ok()), perSwapText(l), l.Stats.ErrsInWindows, l.Lost)
		modes[l.Stats.Mode] = true
	}
	m.p("")
	m.p("EOF means the sealing incumbent closed a connection the client was about to reuse before any response byte; reset means it closed it with the client's request already in its receive queue " +
		"(the kernel answers close() with RST when unread data is pending). In both cases the request was not processed, so no acknowledged write is lost, but a client without retries counts a failure.")
	m.p("")
	if modes[modeKeepAlive] || modes[modeNewConn] {
		m.p("HTTP: httpdrain's Drain turns keep-alive off, so a busy connection gets `Connection: close` with its next response; it waits for the first request of connections accepted just before, " +
			"and for keep-alive connections that answered a request within the idle-quiet time (100 ms) or are still finishing a response. What remains is a client idle longer than that which sends at the very instant of the seal " +
			"(the check for pending bytes and the close are two steps); closing that needs handing established connections to the successor (DESIGN §11, roadmap).")
		m.p("")
	}
	if modes[modeRESP] {
		m.p("RESP: the protocol has no way to tell a client to reconnect. kvd's Drain makes each connection in use close right after its next reply, with the FIN in the same segment as the reply (TCP_CORK, write, shutdown), " +
			"so a client that checks its connection before reusing it sees the close before it sends; and it waits up to 100 ms after the last reply for connections in use. What remains is a client idle longer than that " +
			"which sends at the instant of the seal, or one that pipelines a command behind an unanswered one; only handing established connections to the successor (DESIGN §11, roadmap) removes those.")
		m.p("")
	}
}

func perSwapText(l loadResult) string {
	return fmt.Sprintf("%.2f per swap", perSwap(l))
}

func reportMethod(m *md, res *results) {
	m.p("## How to run, and how it measures")
	m.p("")
	m.p("```sh")
	m.p("make bench        # cd bench && go run . -out ../BENCHMARKS.md        (quick)")
	m.p("make bench-full   # cd bench && go run . -full -out ../BENCHMARKS.md  (≥ 200 swaps per load mode, ≥ 1000 for stability, 1 GiB data)")
	m.p("cd bench && go run . -only floor,idle -keep   # a subset; -keep leaves every process's log in the temp dir")
	m.p("```")
	m.p("")
	m.p("- Everything runs on loopback with the binaries built once per run into a temp dir without build tags (`go build ./examples/kvd ./cmd/handoff` from the repository, `bench/cmd/{nopd,bare,tfpeer}` from this module).")
	m.p("- The supervisor runs in the harness process through package `supervisor` (`New`, `WithListeners`, `WithJournal`, `Start`, `PerformHandoff`, `Stop`) for exact per-phase timings and its own resource counts; one run goes through `handoff supervise` + `handoff upgrade --json` instead. " +
		"The listening sockets are bound on 127.0.0.1:0 and handed over as a copy made with `F_DUPFD_CLOEXEC` inside `SyscallConn().Control` and wrapped with `os.NewFile` (the bench module cannot import the repository's `internal/sysx.DupFile`, so it carries the same few lines): never `(*os.File).Fd` or `File()`, which would switch the shared socket to blocking mode.")
	m.p("- kvd gets `--build-id` (its default hashes its own executable at start-up; the floor table shows what that costs). kvd's data dir and the journal are on the root file system (%s); the tmpfs rows use /dev/shm.", res.Machine.TmpFS)
	m.p("- tableflip v1.2.3 runs `bench/cmd/tfpeer` in the style of its `http_example_test.go`: `tableflip.New` with a pid file, `Listen`, `Ready`, SIGHUP → `Upgrade`, `<-Exit()`, `http.Server.Shutdown`. Upgrades are timed from SIGHUP to the new pid in the pid file (written by `Ready`) and to the old process's exit (pidfd). The harness is a child subreaper, so every tableflip generation is reaped. tableflip refuses an upgrade until the new process has seen its own parent exit (\"Upgrade failed: parent hasn't exited\" in its log); the harness then sends SIGHUP again and times the upgrade from the SIGHUP that was taken. SIGHUPs re-sent in this run: %d.", resentTotal(res))
	m.p("- Swap loops are bounded by a count and by a time limit; a series stops after 5 failed swaps in a row. Failed swaps are counted in every table.")
	m.p("")
	var ran []string
	for _, s := range steps {
		if d, ok := res.Ran[s]; ok {
			ran = append(ran, fmt.Sprintf("%s %v (load avg %.1f)", s, d.Round(time.Second), res.StepLoad[s]))
		}
	}
	m.p("Steps in this run: %s.", strings.Join(ran, ", "))
	m.p("")
}

func resentTotal(res *results) int {
	n := 0
	for _, l := range res.Loads {
		n += l.Series.resent()
	}
	for _, b := range res.Blackouts {
		n += b.Series.resent()
	}
	if res.Idle != nil {
		for _, s := range res.Idle.Series {
			n += s.resent()
		}
	}
	return n
}

func blackoutAnalysis(m *md, res *results) {
	var nop, kvd *blackoutResult
	for i := range res.Blackouts {
		switch b := &res.Blackouts[i]; {
		case strings.Contains(b.Label, "nopd"):
			nop = b
		case strings.Contains(b.Label, "kvd"):
			kvd = b
		}
	}
	if nop == nil || nop.Gap.N == 0 {
		return
	}
	m.p("### Accept blackout")
	m.p("")
	if nop.Gap.P50 > blackoutP50Target || nop.Gap.Max > blackoutMaxTarget {
		m.p("With no-op hooks the old process never stops accepting before it has received Commit, and the new one accepts as soon as `AnnounceAndBind` returns (Commit is sent to the new process first), "+
			"so by design there is no interval in which nobody accepts. The measured blackout (p50 %s ms, max %s ms) is to be read against the prober's own longest gap in windows of the same width without any swap (p50 %s ms, max %s ms) "+
			"and against a daemon that is not swapped at all, probed through the very same swap windows (p50 %s ms, max %s ms). "+
			"Per swap, the blackout exceeds the bystander's gap by %s ms at p50 (max %s ms). The longest gap of each swap began in phase %s, i.e. wherever the machine happened to stall, not at the hand-over. "+
			"The load average was %.1f on %d CPUs during the step, and each swap adds a Go process start (%s of CPU per generation, see above), so the old process and the prober wait for a CPU. "+
			"What would close it: an idle machine for the measurement (the target is about the protocol), or keeping the successor's start-up off the incumbent's CPUs (cpuset or a lower priority for the spawn).",
			ms(nop.Gap.P50), ms(nop.Gap.Max), ms(nop.Baseline.P50), ms(nop.Baseline.Max), ms(nop.Bystander.P50), ms(nop.Bystander.Max), ms(nop.Excess.P50), ms(nop.Excess.Max), gapPhases(nop.GapIn), res.StepLoad["blackout"], res.Machine.Nproc, childCPU(res))
		m.p("")
	}
	if kvd == nil || kvd.Gap.N == 0 {
		return
	}
	if s, ok := res.idleSeries(cfgKVD); ok {
		sum := phaseP50(s, "drained") + phaseP50(s, "sealed") + phaseP50(s, "ready") + phaseP50(s, "committed")
		m.p("kvd stops accepting at the start of Drain and its successor accepts after Commit, so its blackout is about drain + seal + Begin→Ready + commit: %s ms from the phase medians of the no-load swaps, against a measured blackout p50 of %s ms (longest gap began in %s). "+
			"Those phases are dominated by fsync (kvd's log and the journal) on this disk; the fixes listed for the swap duration shorten the blackout by the same amount.",
			ms(sum), ms(kvd.Gap.P50), gapPhases(kvd.GapIn))
		m.p("")
	}
}

func childCPU(res *results) string {
	if res.Profile == nil || res.Profile.ChildCPU == 0 {
		return "several ms"
	}
	return ms(res.Profile.ChildCPU) + " ms"
}
