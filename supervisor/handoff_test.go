package supervisor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/handoff-go/handoff/internal/peer"
	"github.com/handoff-go/handoff/internal/sysx"
)

// TestHandoff_severalInARow runs DESIGN section 2 steps 1-8 three times in a
// row under a write load: each new incumbent hands off to the next. Every
// acknowledged write, before, during and after, is present at the end
// (invariant 3); no client is refused or reset (invariant 4); the lock
// passes from each incumbent to its successor and to nobody else
// (invariants 1, 2, 5); each old incumbent exits after Commit (step 7).
func TestHandoff_severalInARow(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, envOptions{})
	s := e.newSupervisor()
	o := e.coldStart(s, "gen0")
	e.mustPut("before", "x")
	l := e.startLoad("load", 2)
	p := startProber(e.addr)
	gens := []int{o}
	for i := 1; i <= 3; i++ {
		n := e.mustCommit(s, e.daemonSpec(fmt.Sprintf("gen%d", i)))
		out, _ := s.LastOutcome()
		e.expectOutcome(out, fmt.Sprintf("gen%d", i))
		e.expectJournalAtRest(n)
		e.waitGone(gens[len(gens)-1]) // the old incumbent exits and is reaped (step 8)
		e.waitNoneDraining(s)
		gens = append(gens, n)
		st, err := e.client.stats()
		if err != nil || st.PID != n || st.Build != fmt.Sprintf("gen%d", i) {
			t.Errorf("after handoff %d: stats %+v, %v; want pid %d build gen%d", i, st, err, n, i)
		}
	}
	e.expectClean(l)
	e.expectNeverRefused(p)
	e.mustPut("after", "y")
	e.checkAcked()
	e.expectHolders(gens...)
	// DESIGN pitfall: handing the same socket out again and again must not
	// switch it to blocking mode (every drain above relied on it).
	if nb, err := sysx.IsNonblock(s.ListenerFile("http")); err != nil || !nb {
		t.Errorf("listening socket non-blocking after %d handoffs: %v, %v", len(gens)-1, nb, err)
	}
}

// expectOutcome checks what a committed handoff reports: the resolved
// binary it ran, the successor's build id, and each phase in order.
func (e *testEnv) expectOutcome(out Outcome, build string) {
	e.t.Helper()
	bin, _ := filepath.EvalSymlinks(e.self)
	if out.Binary != bin || out.BuildID != build || out.Reason != "" || out.HandoffID == "" {
		e.t.Errorf("outcome %+v; want binary %s, build %s", out, bin, build)
	}
	var phases []string
	for _, p := range out.Phases {
		phases = append(phases, p.Phase)
	}
	want := []string{"spawned", "hello", "drained", "sealed", "ready", "committed"}
	if !slices.Equal(phases, want) {
		e.t.Errorf("phases %v, want %v", phases, want)
	}
}

// waitNoneDraining waits until the supervisor has no old generation left
// exiting after a Commit.
func (e *testEnv) waitNoneDraining(s *Supervisor) {
	e.t.Helper()
	deadline := time.Now().Add(waitLimit)
	for len(s.Draining()) > 0 {
		if time.Now().After(deadline) {
			e.t.Fatalf("old generations still draining: %v", s.Draining())
		}
		time.Sleep(5 * time.Millisecond) // the retire goroutine reports nothing else
	}
}

// expectRolledBack asserts what DESIGN step 9 promises after an abort: the
// handoff reports the reason, the successor is stopped and reaped before
// PerformHandoff returns, the same incumbent serves with the lock, and the
// observable state is as before the swap (invariant 6).
func (e *testEnv) expectRolledBack(s *Supervisor, out Outcome, err error, reason string, o int) {
	e.t.Helper()
	if !errors.Is(err, ErrRolledBack) || out.Committed {
		e.t.Fatalf("handoff: err %v, committed %v; want a rollback", err, out.Committed)
	}
	if out.Reason != reason {
		e.t.Errorf("abort reason %q (cause %s), want %q", out.Reason, out.Cause, reason)
	}
	if out.OldPID != o || s.Incumbent() != o {
		e.t.Errorf("incumbent is %d (outcome says old %d), want %d unchanged", s.Incumbent(), out.OldPID, o)
	}
	if out.NewPID != 0 {
		if ppid, _, ok := procParent(out.NewPID); ok && ppid == os.Getpid() {
			e.t.Errorf("successor %d not reaped when PerformHandoff returned", out.NewPID)
		}
	}
	if last, ok := s.LastOutcome(); !ok || last.HandoffID != out.HandoffID {
		e.t.Errorf("LastOutcome %+v, want the handoff %s", last, out.HandoffID)
	}
	e.expectJournalAtRest(o)
	e.mustPut("after-abort-"+out.HandoffID, "resumed")
	e.expectServedBy(o)
	if now := e.holders.current(); now != o {
		e.t.Errorf("lock held by %d after the abort, want the incumbent %d", now, o)
	}
}

// TestHandoff_successorFailureRollsBack covers every way a successor can
// fail before Commit (DESIGN steps 3, 6, 7 and 9): the incumbent resumes
// (reopening its state from the data directory when it had sealed), keeps
// every acknowledged write, and the lock goes back to it; N acknowledged
// nothing (invariant 5).
func TestHandoff_successorFailureRollsBack(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		fail     string
		deadline time.Duration
		reason   string
		sealed   bool // O sealed (and released the lock) before the failure
	}{
		{name: "crashes before Hello", fail: "exit-at-start", reason: "successor-exited"},
		{name: "crashes before Ready", fail: "exit-before-ready", reason: "successor-exited", sealed: true},
		{name: "never sends Ready", fail: "never-ready", deadline: 3 * time.Second, reason: "timeout", sealed: true},
		{name: "reports unhealthy", fail: "unhealthy", reason: "unhealthy", sealed: true},
		{name: "advertises revisions behind the seal", fail: "behind", reason: "revision-behind", sealed: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newTestEnv(t, envOptions{})
			s := e.newSupervisor()
			o := e.coldStart(s, "old")
			e.mustPut("before", "x")
			l := e.startLoad("load", 1)
			spec := e.daemonSpec("new", envFail+"="+tc.fail)
			spec.Deadline = tc.deadline
			var (
				out Outcome
				err error
			)
			if tc.sealed {
				out, err = e.handoffSeenOpening(s, spec, true)
			} else {
				out, err = e.handoff(s, spec)
			}
			e.expectClean(l)
			e.expectRolledBack(s, out, err, tc.reason, o)
			e.checkAcked()
			if tc.sealed {
				// The successor took the lock after the seal; O took it back.
				e.expectHolders(o, out.NewPID, o)
				if !e.logHas("testd.resumed", fmt.Sprintf("pid=%d", o)) {
					t.Error("the incumbent did not reopen its state (ResumeAfterAbort)")
				}
			} else {
				e.expectHolders(o)
				if e.holders.sawFree() || e.logHas("handoff.prepare", fmt.Sprintf("pid=%d", o)) {
					t.Error("the incumbent was touched although the successor never said Hello")
				}
			}
		})
	}
}

// handoffSeenOpening runs a handoff whose successor holds at "open" (after
// Begin, with the lock) and records it there as the lock holder, so the
// sequence of holders the test asserts does not depend on sampling. With
// release false the successor stays held until it dies.
func (e *testEnv) handoffSeenOpening(s *Supervisor, spec SpawnSpec, release bool) (Outcome, error) {
	e.t.Helper()
	spec.Env = append(spec.Env, envHold+"=open")
	type result struct {
		out Outcome
		err error
	}
	done := make(chan result, 1)
	go func() {
		out, err := e.handoff(s, spec)
		done <- result{out, err}
	}()
	held := e.events.wait(e.t, "open", 0)
	e.expectHolderNow(held.PID)
	if release {
		held.release()
	}
	r := <-done
	return r.out, r.err
}

// TestHandoff_sealFailureKeepsLock: Seal fails, so O never released the
// lock (invariant 2), resumed at once and answered SealFailed; S stops N and
// reports seal-failed; O still serves writes.
func TestHandoff_sealFailureKeepsLock(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, envOptions{})
	s := e.newSupervisor()
	o := e.coldStart(s, "old", envFail+"=seal")
	e.mustPut("before", "x")
	l := e.startLoad("load", 1)
	out, err := e.handoff(s, e.daemonSpec("new"))
	e.expectClean(l)
	e.expectRolledBack(s, out, err, "seal-failed", o)
	e.expectHolders(o)
	if e.holders.sawFree() {
		t.Error("the data-dir lock was free at some point: released although Seal failed")
	}
	if !e.logHas("testd.resumed", fmt.Sprintf("pid=%d", o)) {
		t.Error("the incumbent did not call ResumeAfterAbort after its failed Seal")
	}
	e.checkAcked()
}

// TestHandoff_drainPastGraceRollsBack: Drain runs past its grace (DESIGN
// step 4): O resumes by itself and reports DrainFailed; S aborts; the lock
// never moved.
func TestHandoff_drainPastGraceRollsBack(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, envOptions{})
	s := e.newSupervisor()
	o := e.coldStart(s, "old", envFail+"=drain-slow")
	e.mustPut("before", "x")
	spec := e.daemonSpec("new")
	spec.DrainGrace = time.Second
	out, err := e.handoff(s, spec)
	e.expectRolledBack(s, out, err, "drain-failed", o)
	if !strings.Contains(out.Cause, "drain") {
		t.Errorf("cause %q does not name the drain", out.Cause)
	}
	e.expectHolders(o)
	if e.holders.sawFree() {
		t.Errorf("the data-dir lock was free although the incumbent never sealed (samples %v)", e.holders.raw())
	}
	e.checkAcked()
}

// TestHandoff_slowHooksWithHeartbeats: long hooks are fine (DESIGN
// "Liveness"). O's Seal takes 11 s and N's open takes 11 s, each longer than
// the 10 s silence limit, and the swap commits: O sends heartbeats while it
// seals, S to N while N waits for Begin, N while it opens, and S to O while
// O waits for Commit. O's seal progress reports reach the supervisor.
func TestHandoff_slowHooksWithHeartbeats(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, envOptions{})
	s := e.newSupervisor()
	o := e.coldStart(s, "old", envFail+"=seal-slow=11s")
	e.mustPut("before", "x")
	var progress []string
	spec := e.daemonSpec("new", envFail+"=open-slow=11s")
	spec.OnEvent = func(p Progress) {
		e.onEvent(p)
		if p.Step == "seal-progress" {
			progress = append(progress, p.Detail)
		}
	}
	n := e.mustCommit(s, spec)
	out, _ := s.LastOutcome()
	for _, phase := range []string{"sealed", "ready"} {
		if d := phaseDuration(out, phase); d < peer.Silence {
			t.Errorf("phase %s took %v; the test needs it longer than the %v silence limit", phase, d, peer.Silence)
		}
	}
	if len(progress) != 2 || !strings.HasPrefix(progress[1], "1/1 shards") {
		t.Errorf("seal progress reports %q, want 0/1 then 1/1", progress)
	}
	e.mustPut("after", "y")
	e.expectServedBy(n)
	e.expectHolders(o, n)
	e.checkAcked()
}

func phaseDuration(out Outcome, phase string) time.Duration {
	for _, p := range out.Phases {
		if p.Phase == phase {
			return p.Duration
		}
	}
	return 0
}

// TestHandoff_concurrentFailsAtOnce: a second PerformHandoff while one runs
// fails at once with ErrHandoffInProgress and sends nothing (DESIGN step 1):
// no second successor is spawned; the first handoff then commits.
func TestHandoff_concurrentFailsAtOnce(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, envOptions{})
	s := e.newSupervisor()
	o := e.coldStart(s, "old")
	e.mustPut("before", "x")
	type result struct {
		out Outcome
		err error
	}
	first := make(chan result, 1)
	go func() {
		out, err := e.handoff(s, e.daemonSpec("new", envHold+"=warmup"))
		first <- result{out, err}
	}()
	held := e.events.wait(t, "warmup", 0)
	out, err := s.PerformHandoff(context.Background(), e.daemonSpec("third"))
	if !errors.Is(err, ErrHandoffInProgress) || out.HandoffID != "" {
		t.Errorf("second handoff: %+v, %v; want ErrHandoffInProgress and no handoff id", out, err)
	}
	held.release()
	r := <-first
	if r.err != nil || !r.out.Committed || r.out.NewPID != held.PID {
		t.Fatalf("first handoff: %+v, %v; want committed to pid %d", r.out, r.err, held.PID)
	}
	if n := e.logCount("handoff.spawned"); n != 1 {
		t.Errorf("%d successors spawned, want 1", n)
	}
	e.expectHolders(o, held.PID)
	e.checkAcked()
}

// TestHandoff_dryRunLeavesIncumbentUntouched: a canary start spawns N, lets
// it handshake and aborts it with reason dry-run before touching O (DESIGN
// "Dry run"): O was never prepared, its lock never moved, N is reaped.
func TestHandoff_dryRunLeavesIncumbentUntouched(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, envOptions{})
	s := e.newSupervisor()
	o := e.coldStart(s, "old")
	e.mustPut("before", "x")
	l := e.startLoad("load", 1)
	spec := e.daemonSpec("canary")
	spec.DryRun = true
	out, err := e.handoff(s, spec)
	e.expectClean(l)
	if err != nil || out.Committed || !out.DryRun || out.Reason != "dry-run" || out.BuildID != "canary" {
		t.Fatalf("dry run: %+v, %v", out, err)
	}
	if s.Incumbent() != o {
		t.Errorf("incumbent %d after a dry run, want %d", s.Incumbent(), o)
	}
	// The canary ends on the Abort or on the SIGTERM right behind it.
	if !e.logHas("testd.begin", fmt.Sprintf("pid=%d", out.NewPID), "aborted=true") &&
		!e.logHas("testd.signal", fmt.Sprintf("pid=%d", out.NewPID)) {
		t.Error("the canary was neither aborted nor stopped")
	}
	if e.logHas("handoff.prepare", fmt.Sprintf("pid=%d", o)) {
		t.Error("the incumbent was prepared during a dry run")
	}
	e.expectHolders(o)
	if e.holders.sawFree() {
		t.Error("the data-dir lock was free during a dry run")
	}
	e.expectServedBy(o)
	e.checkAcked()
}

// TestHandoff_sameDataDirBeforeAndAfter: O writes the data directory before
// the swap, N after; at the end the log holds every acknowledged write of
// both, in one revision sequence (N continued from O's sealed state).
func TestHandoff_sameDataDirBeforeAndAfter(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, envOptions{})
	s := e.newSupervisor()
	o := e.coldStart(s, "old")
	for i := range 20 {
		e.mustPut(fmt.Sprintf("o-%d", i), fmt.Sprintf("from-%d", o))
	}
	n := e.mustCommit(s, e.daemonSpec("new"))
	for i := range 20 {
		e.mustPut(fmt.Sprintf("n-%d", i), fmt.Sprintf("from-%d", n))
	}
	e.checkAcked()
	e.expectHolders(o, n)
	s.Stop(10 * time.Second)
	e.waitGone(n)
	data, err := os.ReadFile(filepath.Join(e.data, storeFile))
	if err != nil {
		t.Fatal(err)
	}
	recs, good := decodeRecords(data)
	if good != len(data) || len(recs) != 40 {
		t.Fatalf("log has %d records (%d of %d bytes good), want 40", len(recs), good, len(data))
	}
	for i, r := range recs {
		if r.Rev != uint64(i+1) {
			t.Fatalf("record %d has revision %d: the successor did not continue the sealed log", i, r.Rev)
		}
	}
}
