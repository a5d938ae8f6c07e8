package test

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/handoff-go/handoff/internal/crashpoint"
)

// TestSupervisorCrash_SuccessorCommitsDuringRecovery: the supervisor dies
// right after sending Commit to the successor (journal Committed), and the
// successor is slow to act on it: when the restarted supervisor looks, the
// old incumbent still answers on the control socket while the successor
// holds the lock. Then the successor binds the path (the commit mark) and
// the old incumbent exits by the recovery rule. DESIGN section 3,
// invariant 7: the system converges to exactly one serving incumbent, the
// binary of the last committed swap, the supervisor knows it (it must not
// adopt the old incumbent and then, when that one exits, cold-start a
// daemon beside the committed one), and the next handoff succeeds.
//
// The successor's slowness is made deterministic by stopping it (SIGSTOP)
// after Ready and before the supervisor commits, and continuing it once the
// restarted supervisor has begun its recovery (its first log line).
func TestSupervisorCrash_SuccessorCommitsDuringRecovery(t *testing.T) {
	if !crashpoint.Enabled {
		t.Skip("run with -tags handoff_crashpoints")
	}
	t.Parallel()
	const point = crashpoint.SupervisorAfterCommitSuccessorBeforeCommitIncumbent
	var hits <-chan crashHit
	l := startLoaded(t, func(w *world) []string {
		var notify string
		notify, hits = listenNotify(w)
		return crashEnv(point, modeExit, notify)
	})
	n := holdSwapAtReady(t, l.w, l.d)
	cont := stopProcess(t, n)
	if err := l.d.send(map[string]any{"op": "release"}); err != nil {
		t.Fatal(err)
	}
	if _, err := awaitHit(hits, point); err != nil {
		t.Fatal(err)
	}
	<-l.d.done
	d := l.w.startDriver()
	if err := l.w.logged(startWait, "handoff.recover", fmt.Sprintf("pid=%d ", d.pid)); err != nil {
		t.Fatal(err)
	}
	cont()
	if err := l.w.adoptedBy(d); err != nil {
		t.Fatalf("%v\n%s", err, l.w.logTail())
	}
	s, err := l.w.converge()
	if err != nil {
		t.Fatalf("%v\n%s", err, l.w.logTail())
	}
	if s.pid != n || s.buildID != "gen1" {
		t.Fatalf("pid %d (%s) serves, want the committed successor %d (gen1)", s.pid, s.buildID, n)
	}
	l.finish(t)
}

// holdSwapAtReady starts a swap to gen1 that the driver holds after Ready
// (before Commit) and returns the successor's pid.
func holdSwapAtReady(t *testing.T, w *world, d *driver) int {
	t.Helper()
	sp := w.kvdSpec("gen1")
	sp.DeadlineMS = int((60 * time.Second) / time.Millisecond)
	from, err := d.requestSwap(sp, true)
	if err != nil {
		t.Fatal(err)
	}
	spawned, err := d.waitFor(from, outcomeWait, func(e event) bool { return e.Event == "progress" && e.Step == "spawned" })
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.waitFor(from, outcomeWait, func(e event) bool { return e.Event == "holding" }); err != nil {
		t.Fatal(err)
	}
	pid, err := spawnedPID(spawned.Detail)
	if err != nil {
		t.Fatal(err)
	}
	w.noteDaemon(pid)
	return pid
}

// spawnedPID reads the pid from a "spawned" progress detail ("pid N, path").
func spawnedPID(detail string) (int, error) {
	f := strings.FieldsFunc(detail, func(r rune) bool { return r == ' ' || r == ',' })
	if len(f) < 2 || f[0] != "pid" {
		return 0, fmt.Errorf("spawned detail %q names no pid", detail)
	}
	return strconv.Atoi(f[1])
}

// TestSupervisorCrash_OrphanedSuccessorIsRemoved: the supervisor is killed
// while the successor, told to Begin, is stopped (a successor that would
// wake up late). The restarted supervisor must kill that orphan before it
// adopts anyone (DESIGN section 2, "S on restart"), so that it can never
// take the lock later; the old incumbent resumes by its recovery rule and
// the next swap commits, with one lock holder at a time throughout.
func TestSupervisorCrash_OrphanedSuccessorIsRemoved(t *testing.T) {
	t.Parallel()
	l := startLoaded(t, nil)
	n, start := sleepingSuccessor(t, l)
	l.d.kill() // the supervisor dies waiting for Ready from a successor that sleeps
	if _, err := l.w.restartDriver(); err != nil {
		t.Fatalf("%v\n%s", err, l.w.logTail())
	}
	if alive(n, start) {
		t.Fatalf("the restarted supervisor adopted an incumbent while the orphaned successor %d still lives", n)
	}
	s, err := l.w.converge()
	if err != nil {
		t.Fatalf("%v\n%s", err, l.w.logTail())
	}
	if s.pid != l.old.pid {
		t.Fatalf("pid %d serves, want the old incumbent %d resumed", s.pid, l.old.pid)
	}
	l.finish(t)
}

// sleepingSuccessor starts a swap, stops the successor right after its
// Hello and returns once the incumbent has sealed (so the supervisor is
// about to send Begin, or waits for Ready): the successor's pid and start
// time.
func sleepingSuccessor(t *testing.T, l *loaded) (int, uint64) {
	t.Helper()
	sp := l.w.kvdSpec("gen1")
	sp.DeadlineMS = 60000
	from, err := l.d.requestSwap(sp, false)
	if err != nil {
		t.Fatal(err)
	}
	step := func(name string) event {
		e, err := l.d.waitFor(from, outcomeWait, func(e event) bool { return e.Event == "progress" && e.Step == name })
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	n, err := spawnedPID(step("spawned").Detail)
	if err != nil {
		t.Fatal(err)
	}
	l.w.noteDaemon(n)
	step("hello")
	start, _ := liveStart(n)
	stopProcess(t, n)
	step("sealed")
	return n, start
}

// loaded is a started world with clients on both listeners and its lock
// watched: the setting of the supervisor-crash tests.
type loaded struct {
	w   *world
	d   *driver
	old serving
	ld  *load
	lw  *lockWatch
}

// startLoaded starts a world; arm, if set, returns the driver's extra
// environment (crash points) once the world's directory exists.
func startLoaded(t *testing.T, arm func(w *world) []string) *loaded {
	t.Helper()
	w := newWorld(t, t.Name())
	var env []string
	if arm != nil {
		env = arm(w)
	}
	d := w.start(env...)
	old, err := w.converge()
	if err != nil {
		t.Fatal(err)
	}
	lw, stopWatch := watchLock(w.data)
	t.Cleanup(stopWatch)
	ld := startLoad(w.addr["http"], w.addr["resp"])
	t.Cleanup(ld.stop)
	if err := ld.waitAcked(10, startWait); err != nil {
		t.Fatal(err)
	}
	return &loaded{w: w, d: d, old: old, ld: ld, lw: lw}
}

// finish checks that the next swap commits, then the clients' and the
// lock's invariants over the whole test.
func (l *loaded) finish(t *testing.T) {
	t.Helper()
	out, err := l.w.swap(l.w.kvdSpec("gen2"))
	if err != nil || !out.Committed {
		t.Fatalf("the next swap did not commit: %v %s %s", err, out.Reason, out.Cause)
	}
	if _, err := l.w.converge(); err != nil {
		t.Fatal(err)
	}
	l.ld.stop()
	var res rowResult
	checkLoad(&res, l.ld, expectation{})
	checkLock(&res, l.lw)
	for _, p := range res.problems {
		t.Error(p)
	}
}

// stopProcess SIGSTOPs pid (a process that is slow at the worst moment)
// and returns the function that lets it go on.
func stopProcess(t *testing.T, pid int) (cont func()) {
	t.Helper()
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	cont = func() { once.Do(func() { _ = syscall.Kill(pid, syscall.SIGCONT) }) }
	t.Cleanup(cont)
	return cont
}
