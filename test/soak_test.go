//go:build chaos

package test

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/handoff-go/handoff/internal/crashpoint"
	"github.com/handoff-go/handoff/internal/sysx"
)

// The chaos soak's flags (after -args).
var (
	soakHandoffs = flag.Int("handoffs", 50, "soak: number of swap attempts with a random fault")
	soakSeed     = flag.Int64("seed", 0, "soak: PRNG seed (0: time-based; the seed is printed for a replay)")
	soakReport   = flag.String("report", "", "soak: write the figures as a Markdown section into this file")
)

// Fault kinds of the soak: each swap gets one.
const (
	faultNone       = "none"
	faultKillO      = "SIGKILL incumbent"
	faultKillN      = "SIGKILL successor"
	faultKillS      = "SIGKILL supervisor"
	faultCrash      = "crash point (exit)"
	faultSlowDrain  = "slow drain"
	faultSlowSeal   = "slow seal"
	faultSealFail   = "seal failure"
	faultNeverReady = "successor never ready"
	faultUnhealthy  = "unhealthy successor"
)

// faultKinds in report order, with the weight of each in the draw.
var faultKinds = []struct {
	kind   string
	weight int
}{
	{faultNone, 2}, {faultKillO, 2}, {faultKillN, 2}, {faultKillS, 2}, {faultCrash, 4},
	{faultSlowDrain, 1}, {faultSlowSeal, 1}, {faultSealFail, 1}, {faultNeverReady, 1}, {faultUnhealthy, 1},
}

// Soak timing. The kills land at a random moment within about one plain
// swap's duration (measured as the soak runs); the never-ready successor
// is given a short deadline; the slow drains and seals stay well below the
// swap's budget (swapBudget).
const (
	neverReadyDeadline = 3 * time.Second
	slowMax            = 1500 * time.Millisecond
	soakMaxTime        = 5 * time.Hour // bound of the load, whatever the count
	soakOpsPerSwap     = 5000          // bound of each client's requests, per planned swap
)

// soakPlan is one swap's fault.
type soakPlan struct {
	kind  string
	point crashpoint.Point // faultCrash
	dur   time.Duration    // slow drain / seal
	frac  float64          // kills: where in the swap, as a fraction of a typical swap
}

// incumbentSide says what must be armed in the incumbent for this fault:
// kvd arguments (its --fail modes act in the incumbent's Drain and Seal)
// or crash-point environment. ok is false when the fault is not the
// incumbent's.
func (p soakPlan) incumbentSide(notify string) (args, env []string, ok bool) {
	switch {
	case p.kind == faultSlowDrain:
		return []string{"--fail", "slow-drain=" + p.dur.String()}, nil, true
	case p.kind == faultSlowSeal:
		return []string{"--fail", "slow-seal=" + p.dur.String()}, nil, true
	case p.kind == faultSealFail:
		return []string{"--fail", "seal"}, nil, true
	case p.kind == faultCrash && p.point.Role() == "incumbent":
		return nil, crashEnv(p.point, modeExit, notify), true
	}
	return nil, nil, false
}

// key names what an armed incumbent carries, to match it with a plan.
func (p soakPlan) key() string {
	return fmt.Sprintf("%s/%s/%v", p.kind, p.point, p.dur)
}

func (p soakPlan) String() string {
	switch p.kind {
	case faultCrash:
		return fmt.Sprintf("%s %s", p.kind, p.point)
	case faultSlowDrain, faultSlowSeal:
		return fmt.Sprintf("%s %v", p.kind, p.dur)
	case faultKillO, faultKillN, faultKillS:
		return fmt.Sprintf("%s at %.0f%%", p.kind, 100*p.frac)
	}
	return p.kind
}

// casualties says whether the fault may kill a process while it serves
// clients: then connections it had accepted may break and requests in
// flight to it may go unanswered (the crash matrix's allowance).
func (p soakPlan) casualties() bool {
	switch p.kind {
	case faultKillO, faultKillN:
		return true
	case faultCrash:
		return expectations[p.point].casualties
	}
	return false
}

func drawPlan(rng *rand.Rand) soakPlan {
	total := 0
	for _, k := range faultKinds {
		total += k.weight
	}
	n := rng.IntN(total)
	var p soakPlan
	for _, k := range faultKinds {
		if n < k.weight {
			p.kind = k.kind
			break
		}
		n -= k.weight
	}
	switch p.kind {
	case faultCrash:
		p.point = crashpoint.All[rng.IntN(len(crashpoint.All))]
	case faultSlowDrain, faultSlowSeal:
		p.dur = time.Duration(100+rng.IntN(int(slowMax/time.Millisecond)-100)) * time.Millisecond
	case faultKillO, faultKillN, faultKillS:
		p.frac = 1.2 * rng.Float64()
	}
	return p
}

// Outcomes of one swap attempt.
const (
	outCommitted  = "committed"
	outRolledBack = "rolled back"
	outRecovered  = "recovered by restart of S"
)

// soakFigures are the counts the soak reports.
type soakFigures struct {
	attempted, prep, overridden int
	outcomes                    map[string]int
	byFault                     map[string]map[string]int // fault kind -> outcome -> count
	pointsHit                   map[crashpoint.Point]int
	driverRestarts              int
	casualties                  bool
}

// soak is the state of one chaos soak.
type soak struct {
	t      *testing.T
	w      *world
	rng    *rand.Rand
	notify string
	hits   <-chan crashHit
	ld     *load
	lw     *lockWatch
	avail  *availability

	cur      serving
	gen      int
	wrappers int
	// coldGen is the generation of w.cold; drvColdGen that of the spec
	// the running driver was started with.
	coldGen, drvColdGen int
	typical             time.Duration // wall time of a plain committed swap (moving average)
	typicalSeen         bool
	armed               struct {
		pid int
		key string
	}
	fig soakFigures
}

// TestSoak is the chaos soak of issue 7: one kvd under the supervisor
// driver with continuous HTTP and RESP load, then -handoffs swaps, each
// with a random fault (see faultKinds), checking after every swap that the
// world converged to one serving incumbent (invariant 7), that no client
// saw a refused connection or lost an answer beyond what the fault allows
// (4), that no read was stale (3) and that /proc/locks never showed two
// holders (1); at the end, that every acknowledged write is readable (3),
// that the last swap committed and that no process is left.
func TestSoak(t *testing.T) {
	if !crashpoint.Enabled {
		t.Skip("the soak injects crash points: run with -tags 'chaos handoff_crashpoints'")
	}
	seed := *soakSeed
	if seed == 0 {
		seed = time.Now().UnixNano()
	}
	n := *soakHandoffs
	t.Logf("soak: %d swaps, seed %d (replay: -args -seed=%d -handoffs=%d), race=%v", n, seed, seed, n, raceEnabled)
	began := time.Now()
	s := newSoak(t, seed)
	plans := make([]soakPlan, n)
	for i := range plans {
		plans[i] = drawPlan(s.rng)
	}
	plans[n-1] = soakPlan{kind: faultNone} // the final swap must commit
	total0, torn0 := samplerStats()
	for i := 0; i < len(plans); i++ {
		next := soakPlan{kind: faultNone}
		if i+1 < len(plans) {
			next = plans[i+1]
		}
		p := plans[i]
		if i == len(plans)-1 && s.armed.pid == s.cur.pid {
			// An armed incumbent is still serving: get rid of it first,
			// so that the final, plain swap can commit.
			plans = append(plans, p)
			p = soakPlan{kind: faultKillO, frac: s.rng.Float64()}
		}
		out := s.swap(i, p, next)
		if i == len(plans)-1 && out != outCommitted {
			t.Fatalf("the final swap did not commit (%s)", out)
		}
		if (i+1)%25 == 0 || i == len(plans)-1 {
			t.Logf("soak: %d/%d swaps, %v: %s; %s", i+1, len(plans), time.Since(began).Round(time.Second),
				s.outcomeLine(), s.ld.summary())
		}
	}
	total, torn := samplerStats()
	s.finish(began, seed, total-total0, torn-torn0)
}

func newSoak(t *testing.T, seed int64) *soak {
	s := &soak{t: t, rng: rand.New(rand.NewPCG(uint64(seed), uint64(seed)>>1^0x9e3779b97f4a7c15)),
		typical: 300 * time.Millisecond, avail: &availability{}}
	s.fig.outcomes, s.fig.byFault, s.fig.pointsHit = map[string]int{}, map[string]map[string]int{}, map[crashpoint.Point]int{}
	s.w = newWorld(t, "soak")
	t.Cleanup(func() {
		// Before the world's teardown removes it: keep the log of a failure.
		if t.Failed() {
			keep := filepath.Join(os.TempDir(), fmt.Sprintf("soak-%d.log", seed))
			if b, err := os.ReadFile(filepath.Join(s.w.dir, "log")); err == nil && os.WriteFile(keep, b, 0o644) == nil {
				t.Logf("soak: the full log of the processes is in %s", keep)
			}
		}
	})
	s.notify, s.hits = listenNotify(s.w)
	s.w.start()
	var err error
	if s.cur, err = s.w.converge(); err != nil {
		t.Fatal(err)
	}
	lw, stopWatch := watchLock(s.w.data)
	t.Cleanup(stopWatch)
	s.lw = lw
	s.ld = startSoakLoad(s.w.addr["http"], s.w.addr["resp"], soakOpsPerSwap*(*soakHandoffs+10), s.avail)
	t.Cleanup(s.ld.stop)
	if err := s.ld.waitAcked(10, startWait); err != nil {
		t.Fatal(err)
	}
	return s
}

// swap runs swap attempt i with fault p; next is the following swap's
// fault, armed in this swap's successor when it is the incumbent's.
func (s *soak) swap(i int, p soakPlan, next soakPlan) string {
	t, w := s.t, s.w
	_, _, inc := p.incumbentSide(s.notify)
	switch {
	case s.armed.pid != 0 && s.armed.pid == s.cur.pid && (!inc || s.armed.key != p.key()):
		// The incumbent is still armed with a fault that did not fire or
		// does not go away by itself (a failing seal): kill it instead, so
		// that it is restarted without it.
		s.fig.overridden++
		p = soakPlan{kind: faultKillO, frac: s.rng.Float64()}
	case inc && !(s.armed.pid == s.cur.pid && s.armed.key == p.key()):
		// The incumbent must carry p's incumbent-side fault: if it does
		// not (the swap that was to arm it did not commit), a plain swap
		// arms it.
		s.fig.prep++
		if out := s.do(i, soakPlan{kind: faultNone}, &p, "prep "); out != outCommitted {
			t.Fatalf("swap %d: the plain swap arming the incumbent did not commit (%s)\n%s", i, out, w.logTail())
		}
	}
	var arm *soakPlan
	if _, _, inc := next.incumbentSide(s.notify); inc {
		arm = &next
	}
	return s.do(i, p, arm, "")
}

// do performs one swap attempt with fault p; if arm is set, the successor
// runs through a one-shot wrapper that gives it arm's incumbent-side fault
// for the next swap.
func (s *soak) do(i int, p soakPlan, arm *soakPlan, label string) string {
	t, w := s.t, s.w
	s.fig.attempted++
	s.gen++
	s.avail.setPhase(fmt.Sprintf("swap %d (%s%s)", i, label, p))
	sp := w.kvdSpec(fmt.Sprintf("g%d", s.gen))
	switch {
	case p.kind == faultNeverReady:
		sp.Args = append(sp.Args, "--fail", "never-ready")
		sp.DeadlineMS = int(neverReadyDeadline / time.Millisecond)
	case p.kind == faultUnhealthy, p.kind == faultCrash && expectations[p.point].abort:
		sp.Args = append(sp.Args, "--fail", "unhealthy")
	}
	if p.kind == faultCrash && p.point.Role() == "successor" {
		sp.Env = crashEnv(p.point, modeExit, s.notify)
	}
	if arm != nil {
		args, env, _ := arm.incumbentSide(s.notify)
		sp.Binary = s.armWrapper(args, env)
	}
	if p.kind == faultCrash && p.point.Role() == "supervisor" {
		if !s.restartDriver(crashEnv(p.point, modeExit, s.notify)) {
			// The armed supervisor died in its recovery, before any swap.
			s.record(p, outRecovered)
			return outRecovered
		}
	}
	old, oldStart := s.cur, startTime(s.cur.pid)
	errMark := len(s.ld.failures0())
	d := w.drv
	began := time.Now()
	restarts0 := s.fig.driverRestarts
	from, err := d.requestSwap(sp, false)
	if err != nil {
		t.Fatalf("swap %d: %v", i, err)
	}
	delay := time.Duration(p.frac * float64(s.typical))
	var spawned int
	switch p.kind {
	case faultKillO:
		time.Sleep(delay)
		killIf(old.pid, oldStart)
	case faultKillN:
		e, err := d.waitFor(from, outcomeWait, func(e event) bool {
			return e.Event == "outcome" || e.Event == "progress" && e.Step == "spawned"
		})
		if err == nil && e.Event == "progress" {
			spawned, _ = spawnedPID(e.Detail)
			start := startTime(spawned)
			w.noteDaemon(spawned)
			time.Sleep(delay)
			killIf(spawned, start)
		}
	case faultKillS:
		time.Sleep(delay)
		d.kill()
	}
	out, err := d.waitFor(from, outcomeWait, func(e event) bool { return e.Event == "outcome" })
	took := time.Since(began)
	if spawned == 0 {
		if e, err := d.waitFor(from, 0, func(e event) bool { return e.Event == "progress" && e.Step == "spawned" }); err == nil {
			spawned, _ = spawnedPID(e.Detail)
			w.noteDaemon(spawned)
		}
	}
	result := ""
	switch {
	case err == nil && out.InProgress:
		t.Fatalf("swap %d (%s): the driver says another swap is in progress", i, p)
	case err == nil && out.Committed:
		result = outCommitted
	case err == nil:
		result = outRolledBack
	case d.exited():
		result = outRecovered
	default:
		t.Fatalf("swap %d (%s): waiting for the outcome: %v\n%s", i, p, err, w.logTail())
	}
	if d.exited() || p.kind == faultCrash && p.point.Role() == "supervisor" {
		// The supervisor died (or is armed and must be replaced): a new
		// one must adopt the incumbent with the same sockets.
		<-d.done
		s.restartDriver(nil)
	}
	cur, err := w.converge()
	if err != nil {
		t.Fatalf("swap %d (%s, %s): %v\n%s", i, p, result, err, w.logTail())
	}
	newBuild := fmt.Sprintf("g%d", s.gen)
	switch {
	case result == outCommitted && cur.buildID != newBuild, result == outRolledBack && cur.buildID != old.buildID,
		result == outRecovered && cur.buildID != newBuild && cur.buildID != old.buildID:
		t.Fatalf("swap %d (%s): %s, but build %s serves (old %s, new %s)", i, p, result, cur.buildID, old.buildID, newBuild)
	}
	s.cur = cur
	if cur.buildID == newBuild {
		// What a restarted driver gives ResumeFromJournal as the spec of
		// a crash restart: the last committed binary, as a real
		// supervisor's configuration would say after the swap.
		w.cold = spec{Binary: sp.Binary, Args: sp.Args, Env: sp.Env}
		s.coldGen = s.gen
	}
	if s.fig.driverRestarts > restarts0 && s.drvColdGen != s.coldGen {
		// The driver was restarted during the swap, before the new binary
		// was known to be the committed one: restart it with that spec.
		s.restartDriver(nil)
	}
	if err := s.ld.waitAcked(3, settleWait); err != nil {
		t.Fatalf("swap %d (%s): after convergence: %v", i, p, err)
	}
	s.check(i, p, errMark)
	s.noteHits(p)
	switch {
	case arm != nil && spawned != 0 && cur.pid == spawned:
		s.armed.pid, s.armed.key = spawned, arm.key()
	case cur.pid != s.armed.pid:
		s.armed.pid, s.armed.key = 0, ""
	}
	if p.kind == faultNone && result == outCommitted {
		if s.typicalSeen {
			s.typical = (4*s.typical + took) / 5
		} else {
			s.typical, s.typicalSeen = took, true
		}
	}
	s.record(p, result)
	return result
}

// restartDriver replaces the driver: gracefully (end of its input) if it
// still runs, then starts one with env (crash points) that must adopt the
// incumbent. It returns false if that driver died before it was ready (an
// armed point on its recovery path); an unarmed one then took over.
func (s *soak) restartDriver(env []string) bool {
	d := s.w.drv
	if !d.exited() {
		d.stdin.Close()
		<-d.done
	}
	s.fig.driverRestarts++
	s.drvColdGen = s.coldGen
	nd := s.w.startDriver(env...)
	if err := s.w.adoptedBy(nd); err != nil {
		if env != nil && nd.exited() {
			s.restartDriver(nil)
			return false
		}
		s.t.Fatalf("supervisor restart: %v\n%s", err, s.w.logTail())
	}
	return true
}

// check applies invariants 1, 3 and 4 to what happened since errMark.
func (s *soak) check(i int, p soakPlan, errMark int) {
	t := s.t
	if maxHeld, overlap, _, _, _ := s.lw.result(); maxHeld > 1 {
		t.Fatalf("swap %d (%s): two processes held the data-dir lock at once: %v", i, p, overlap)
	}
	allowed := map[string]bool{failIdleClose: true, failRejected: true}
	if p.casualties() {
		allowed[failFresh], allowed[failPartial] = true, true
		s.fig.casualties = true
	}
	for _, e := range s.ld.failures0()[errMark:] {
		if !allowed[e.class] {
			t.Fatalf("swap %d (%s): a client request failed with %s: %s\n%s", i, p, e.class, e, s.w.logTail())
		}
	}
	s.ld.mu.Lock()
	stale := firstN(s.ld.stale, 5)
	s.ld.mu.Unlock()
	if len(stale) > 0 {
		t.Fatalf("swap %d (%s): stale reads: %v", i, p, stale)
	}
}

// noteHits counts the crash points reached (their announcements).
func (s *soak) noteHits(p soakPlan) {
	for {
		select {
		case h := <-s.hits:
			s.fig.pointsHit[h.point]++
		default:
			return
		}
	}
}

func (s *soak) record(p soakPlan, out string) {
	s.fig.outcomes[out]++
	if s.fig.byFault[p.kind] == nil {
		s.fig.byFault[p.kind] = map[string]int{}
	}
	s.fig.byFault[p.kind][out]++
}

func (s *soak) outcomeLine() string {
	return fmt.Sprintf("%d attempted (%d arming), %d committed, %d rolled back, %d recovered by restart of S",
		s.fig.attempted, s.fig.prep, s.fig.outcomes[outCommitted], s.fig.outcomes[outRolledBack], s.fig.outcomes[outRecovered])
}

// armWrapper writes a wrapper that starts kvd with args and env the first
// time only (as armOnce does for env): a restart of that binary by the
// supervisor, after a crash, runs kvd plain.
func (s *soak) armWrapper(args, env []string) string {
	s.wrappers++ // a fresh name for the wrapper and its marker
	path := filepath.Join(s.w.dir, fmt.Sprintf("arm%d", s.wrappers))
	var b strings.Builder
	fmt.Fprintf(&b, "#!/bin/sh\nif mkdir %q 2>/dev/null; then\n", path+".armed")
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		fmt.Fprintf(&b, "  export %s=%q\n", k, v)
	}
	fmt.Fprintf(&b, "  exec %q \"$@\"", bin.kvd)
	for _, a := range args {
		fmt.Fprintf(&b, " %q", a)
	}
	fmt.Fprintf(&b, "\nfi\nexec %q \"$@\"\n", bin.kvd)
	if err := os.WriteFile(path, []byte(b.String()), 0o755); err != nil {
		s.t.Fatal(err)
	}
	return path
}

// finish stops the load and checks the end state: every acknowledged write
// readable, no process left after a graceful stop; then reports.
func (s *soak) finish(began time.Time, seed int64, lockSamples, torn int) {
	t, w := s.t, s.w
	s.ld.stop()
	var res rowResult
	checkLoad(&res, s.ld, expectation{casualties: s.fig.casualties})
	lost := 0
	for _, pr := range res.problems {
		if strings.HasPrefix(pr, "lost write") {
			lost++
		}
	}
	checkLock(&res, s.lw)
	d := w.drv
	if err := d.send(map[string]any{"op": "stop"}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.waitFor(0, settleWait, func(e event) bool { return e.Event == "stopped" }); err != nil {
		res.problems = append(res.problems, "graceful stop: "+err.Error())
	}
	<-d.done
	leaked := s.waitNoProcess(10 * time.Second)
	if len(leaked) > 0 {
		res.problems = append(res.problems, fmt.Sprintf("processes left after the supervisor stopped: %v", leaked))
	}
	report := s.report(time.Since(began), seed, lost, lockSamples, torn, len(leaked))
	t.Log("\n" + report)
	if *soakReport != "" {
		if err := writeSoakReport(*soakReport, report); err != nil {
			t.Error(err)
		} else {
			t.Logf("soak: wrote the figures into %s", *soakReport)
		}
	}
	for _, pr := range res.problems {
		t.Error(pr)
	}
}

func (s *soak) waitNoProcess(limit time.Duration) []int {
	deadline := time.Now().Add(limit)
	for {
		reapOrphans()
		var pids []int
		for pid := range s.w.processes() {
			pids = append(pids, pid)
		}
		if len(pids) == 0 || time.Now().After(deadline) {
			slices.Sort(pids)
			return pids
		}
		time.Sleep(10 * time.Millisecond) // polling the process table
	}
}

// report is the Markdown section of the figures.
func (s *soak) report(took time.Duration, seed int64, lost, lockSamples, torn, leaked int) string {
	f := &s.fig
	fails := s.ld.failures()
	s.ld.mu.Lock()
	acked, reads := s.ld.ops["http PUT"]+s.ld.ops["resp SET"], s.ld.ops["http GET"]+s.ld.ops["resp GET"]
	maxLat, stale := s.ld.maxLat, len(s.ld.stale)
	s.ld.mu.Unlock()
	maxHeld, _, _, _, _ := s.lw.result()
	var b strings.Builder
	fmt.Fprintf(&b, "Generated by `TestSoak` (test/soak_test.go) on %s: %d planned swaps, seed `%d`, %s, race detector %v,\n"+
		"%d CPUs (GOMAXPROCS %d), kernel %s. Replay: `go test -tags 'chaos handoff_crashpoints' -run '^TestSoak$' -count=1 ./test/ -args -handoffs=%d -seed=%d`.\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 UTC"), *soakHandoffs, seed, runtime.Version(), raceEnabled,
		runtime.NumCPU(), runtime.GOMAXPROCS(0), kernelRelease(), *soakHandoffs, seed)
	b.WriteString("| figure | value |\n|---|---|\n")
	row := func(k string, v any) { fmt.Fprintf(&b, "| %s | %v |\n", k, v) }
	row("swaps attempted", fmt.Sprintf("%d (%d of them plain swaps that armed the next incumbent's fault)", f.attempted, f.prep))
	row("committed", f.outcomes[outCommitted])
	row("rolled back", f.outcomes[outRolledBack])
	row("recovered by restart of the supervisor", f.outcomes[outRecovered])
	row("supervisor (driver) restarts", fmt.Sprintf("%d (after its SIGKILL or crash point, to arm or disarm a crash point, or to give it the committed binary's spec)", f.driverRestarts))
	row("typical plain swap (request to outcome, moving average)", s.typical.Round(time.Millisecond))
	row("acknowledged writes", acked)
	row("successful reads", reads)
	row("writes lost (must be 0)", lost)
	row("stale reads (must be 0)", stale)
	row("refused connections (must be 0)", len(fails[failRefused]))
	var classes []string
	for c, e := range fails {
		classes = append(classes, fmt.Sprintf("%s %d", c, len(e)))
	}
	sort.Strings(classes)
	if len(classes) == 0 {
		classes = []string{"none"}
	}
	row("client errors by class", strings.Join(classes, ", "))
	row("max unavailability seen by a client", fmt.Sprintf("%v (%s)", s.avail.maxGap().Round(time.Millisecond), s.avail.worstAt()))
	row("slowest successful request", maxLat.Round(time.Millisecond))
	row("most lock holders at one sampled instant (must be 1)", fmt.Sprintf("%d (%d samples of /proc/locks, %d in several reads)", maxHeld, lockSamples, torn))
	row("processes left at the end (must be 0)", leaked)
	row("total time", took.Round(time.Second))
	b.WriteString("\nFaults by kind (\"kill at N%\": the SIGKILL landed N% of a typical plain swap after the request; a\n" +
		"planned fault whose armed incumbent was still serving was replaced by a SIGKILL of it, counted there):\n\n")
	b.WriteString("| fault | swaps | committed | rolled back | recovered by restart of S |\n|---|---|---|---|---|\n")
	for _, k := range faultKinds {
		o := f.byFault[k.kind]
		fmt.Fprintf(&b, "| %s | %d | %d | %d | %d |\n", k.kind, o[outCommitted]+o[outRolledBack]+o[outRecovered],
			o[outCommitted], o[outRolledBack], o[outRecovered])
	}
	var pts []string
	for _, p := range crashpoint.All {
		if n := f.pointsHit[p]; n > 0 {
			pts = append(pts, fmt.Sprintf("`%s` %d", p, n))
		}
	}
	fmt.Fprintf(&b, "\nCrash points reached (%d of %d): %s.\n", len(pts), len(crashpoint.All), strings.Join(pts, ", "))
	return b.String()
}

func kernelRelease() string {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(b))
}

// Markers around the generated section in the report file.
const (
	soakBegin = "<!-- soak:begin -->"
	soakEnd   = "<!-- soak:end -->"
)

// writeSoakReport puts the section between the markers of path (the rest
// of the file is hand-written), or creates the file with it.
func writeSoakReport(path, section string) error {
	block := soakBegin + "\n" + section + soakEnd
	doc, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	text := string(doc)
	i, j := strings.Index(text, soakBegin), strings.Index(text, soakEnd)
	switch {
	case i >= 0 && j > i:
		text = text[:i] + block + text[j+len(soakEnd):]
	case text == "":
		text = "# Reliability\n\n## Chaos soak\n\n" + block + "\n"
	default:
		text = strings.TrimRight(text, "\n") + "\n\n" + block + "\n"
	}
	return os.WriteFile(path, []byte(text), 0o644)
}

// failures0 is every client failure so far, in order.
func (l *load) failures0() []clientError {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]clientError(nil), l.errs...)
}

// count is the number of successful requests of one client kind.
func (l *load) count(op string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ops[op]
}

// startSoakLoad starts the load clients of package test (one writer and
// one reader per listener) with the soak's bounds, each also tracking the
// longest interval without a successful request.
func startSoakLoad(httpAddr, respAddr string, maxOps int, av *availability) *load {
	ctx, cancel := context.WithTimeout(context.Background(), soakMaxTime)
	l := &load{httpAddr: httpAddr, respAddr: respAddr, keys: map[string]*keyState{}, cancel: cancel, ops: map[string]int{}}
	for _, proto := range []string{"http", "resp"} {
		for i := range loadKeys {
			l.keys[fmt.Sprintf("%s-k%d", proto, i)] = &keyState{unacked: map[uint64]bool{}}
		}
	}
	for _, proto := range []string{"http", "resp"} {
		for _, writer := range []bool{true, false} {
			l.wg.Go(func() { soakClient(ctx, l, proto, writer, maxOps, av) })
		}
	}
	return l
}

// soakClient is load.run with the soak's bounds and availability tracking.
func soakClient(ctx context.Context, l *load, proto string, writer bool, maxOps int, av *availability) {
	c := newClient(proto, l.addr(proto))
	defer c.close()
	op := proto + " GET"
	if writer {
		op = proto + " " + c.writeOp()
	}
	tick := time.NewTicker(loadInterval)
	defer tick.Stop()
	last := time.Now()
	for i := 0; i < maxOps; i++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		before := l.count(op)
		key := fmt.Sprintf("%s-k%d", proto, i%loadKeys)
		if writer {
			l.write(c, key)
		} else {
			l.read(c, otherProto(proto, i)+key[strings.IndexByte(key, '-'):])
		}
		if l.count(op) > before {
			now := time.Now()
			av.success(op, now.Sub(last))
			last = now
		}
	}
}

// availability keeps the longest interval in which one client had no
// successful request, and the swap it happened in.
type availability struct {
	mu    sync.Mutex
	phase string
	max   time.Duration
	at    string
}

func (a *availability) setPhase(p string) {
	a.mu.Lock()
	a.phase = p
	a.mu.Unlock()
}

func (a *availability) success(client string, gap time.Duration) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if gap > a.max {
		a.max, a.at = gap, client+" client, "+a.phase
	}
}

func (a *availability) maxGap() time.Duration {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.max
}

func (a *availability) worstAt() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.at
}

// startTime is pid's start time, 0 if it is gone.
func startTime(pid int) uint64 {
	st, err := sysx.ProcStartTime(pid)
	if err != nil {
		return 0
	}
	return st
}

// killIf SIGKILLs pid if it is still the process that started at start.
func killIf(pid int, start uint64) {
	if pid > 0 && start != 0 && alive(pid, start) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}
