package supervisor

import (
	"context"
	"fmt"
	"slices"
	"testing"
)

// TestSupervisorCrash_incumbentRecoversAndIsAdopted kills the supervisor
// with SIGKILL at four points of a swap (DESIGN "If S dies mid-swap"). In
// every case the successor exits on EOF without having written, the
// incumbent recovers by itself (resumes if only drained; follows the
// recovery rule if sealed) and serves writes with no supervisor at all, no
// client is refused meanwhile (the daemons hold the listening socket), and a
// restarted supervisor adopts the incumbent from the journal and the control
// socket (ResumeFromJournal) and commits the next handoff (invariant 7).
func TestSupervisorCrash_incumbentRecoversAndIsAdopted(t *testing.T) {
	t.Parallel()
	cases := []supervisorCrashCase{
		{name: "during drain", oHold: "drain", unsealed: true},
		{name: "during seal", oHold: "seal"},
		{name: "after SealComplete", sHold: "sealed"},
		{name: "after Ready", sHold: "ready", nHolds: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			runSupervisorCrash(t, tc)
		})
	}
}

// supervisorCrashCase is where the supervisor dies: while a process of the
// swap is held at a hold point.
type supervisorCrashCase struct {
	name     string
	oHold    string // hold point in the incumbent
	sHold    string // hold point in the supervisor (a Progress step)
	nHolds   bool   // the successor held the lock when S died
	unsealed bool   // the incumbent had not sealed when S died
}

func runSupervisorCrash(t *testing.T, tc supervisorCrashCase) {
	e := newTestEnv(t, envOptions{noListener: true})
	child, o := e.startSupervisorChild(supChildOptions{
		oEnv: []string{envBuild + "=old", envHold + "=" + tc.oHold}, nEnv: []string{envBuild + "=new"},
		hold: tc.sHold})
	e.mustPut("before", "x")
	p := startProber(e.addr)
	l := e.startLoad("load", 1)
	child.start()
	var held *procEvent
	if tc.oHold != "" {
		held = e.events.wait(t, tc.oHold, o)
	} else {
		held = e.events.wait(t, "s-"+tc.sHold, 0)
	}
	n := spawnedPID(t, child)
	if tc.nHolds {
		e.expectHolderNow(n)
	}
	child.kill()
	held.release()
	e.waitGone(n) // N exits on EOF by itself: nobody else would stop it now
	e.events.wait(t, "resumed", o)
	e.mustPut("no-supervisor", "y")
	e.expectServedBy(o)
	e.expectHolderNow(o)
	if tc.unsealed && e.holders.sawFree() {
		t.Error("the lock was released although the incumbent never sealed")
	}
	s := e.newSupervisor()
	adoptAndCommit(t, e, s, o)
	e.expectNeverRefused(p)
	e.expectClean(l)
	e.expectJournalAtRest(s.Incumbent())
	want := []int{o}
	if tc.nHolds {
		want = append(want, n, o)
	}
	e.expectHolders(append(want, s.Incumbent())...)
	e.checkAcked()
}

// spawnedPID reads the successor's pid from the supervisor child's report.
func spawnedPID(t *testing.T, c *supChild) int {
	t.Helper()
	var pid int
	if _, err := fmt.Sscanf(c.expect("event spawned"), "pid %d", &pid); err != nil {
		t.Fatalf("spawned line: %v", err)
	}
	return pid
}

// adoptAndCommit restarts a supervisor over incumbent o: it must adopt o
// (taking back the very listening socket from it), and the next handoff
// must commit and retire o.
func adoptAndCommit(t *testing.T, e *testEnv, s *Supervisor, o int) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	adopted, err := s.ResumeFromJournal(ctx, e.daemonSpec("adopted"))
	if err != nil || !adopted || s.Incumbent() != o {
		t.Fatalf("ResumeFromJournal: adopted %v, incumbent %d, %v; want pid %d", adopted, s.Incumbent(), err, o)
	}
	if ls := s.Listeners(); !slices.Equal(ls, []string{"http"}) {
		t.Fatalf("adopted listeners %v, want [http]", ls)
	}
	n := e.mustCommit(s, e.daemonSpec("after-restart"))
	e.waitGone(o)
	e.mustPut("after-restart", "z")
	e.expectServedBy(n)
	return n
}
