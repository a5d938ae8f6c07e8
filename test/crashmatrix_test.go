package test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/handoff-go/handoff/internal/crashpoint"
)

// Outcome cells of the crash matrix. Every row ends with one serving
// incumbent and a committed next swap; the cell says how it got there.
const (
	cellCommitted         = "committed"
	cellCommittedNRestart = "committed; S restarts the new binary (N died)"
	cellRolledBack        = "rolled back"
	cellRolledBackORest   = "rolled back; S restarts the old binary (O died)"
	cellRecoveredOld      = "recovered by restart of S: old binary serves"
	cellRecoveredNew      = "recovered by restart of S: new binary serves"
)

// expectation is what a crash at one point may lead to (DESIGN sections 2
// and 3, ARCHITECTURE "Failure modes"). A point with two outcomes depends
// on timing: whether the dying process had already taken a message that
// was in flight.
type expectation struct {
	// abort makes the swap one that must abort after the seal (the
	// successor reports unhealthy), to reach the abort-path points.
	abort bool
	// casualties: the crash kills a process while it serves clients, so
	// connections it had accepted may break and requests in flight to it
	// may go unanswered (nothing else may: no refused connection, no lost
	// acknowledged write).
	casualties bool
	accept     []string
	// reason is the abort reason the supervisor must report when the swap
	// rolls back (an operator acts on it: "successor-exited" and "peer-lost"
	// call for different fixes).
	reason string
}

var expectations = map[crashpoint.Point]expectation{
	crashpoint.SupervisorAfterSpawn:                                {accept: []string{cellRecoveredOld}},
	crashpoint.SupervisorAfterJournalNegotiating:                   {accept: []string{cellRecoveredOld}},
	crashpoint.SupervisorAfterJournalDraining:                      {accept: []string{cellRecoveredOld}},
	crashpoint.SupervisorAfterJournalSealing:                       {accept: []string{cellRecoveredOld}},
	crashpoint.SupervisorAfterJournalAwaitingReady:                 {accept: []string{cellRecoveredOld}},
	crashpoint.SupervisorAfterReadyBeforeJournalCommit:             {accept: []string{cellRecoveredOld}},
	crashpoint.SupervisorAfterJournalCommitted:                     {accept: []string{cellRecoveredOld}},
	crashpoint.SupervisorAfterCommitSuccessorBeforeCommitIncumbent: {accept: []string{cellRecoveredNew}},
	crashpoint.SupervisorAfterCommitIncumbent:                      {accept: []string{cellRecoveredNew}},
	crashpoint.SupervisorAfterJournalAborting:                      {abort: true, accept: []string{cellRecoveredOld}},
	crashpoint.SupervisorAfterAbortBeforeResume:                    {abort: true, accept: []string{cellRecoveredOld}},

	crashpoint.IncumbentAfterPrepare:                  {casualties: true, accept: []string{cellRolledBackORest}, reason: "peer-lost"},
	crashpoint.IncumbentAfterDrain:                    {casualties: true, accept: []string{cellRolledBackORest}, reason: "peer-lost"},
	crashpoint.IncumbentAfterSealBeforeUnlock:         {accept: []string{cellRolledBackORest}, reason: "peer-lost"},
	crashpoint.IncumbentAfterUnlockBeforeSealComplete: {accept: []string{cellRolledBackORest}, reason: "peer-lost"},
	crashpoint.IncumbentAfterSealComplete:             {accept: []string{cellCommitted}},
	crashpoint.IncumbentAfterCommitReceived:           {accept: []string{cellCommitted}},
	crashpoint.IncumbentResumingAfterAbort:            {abort: true, accept: []string{cellRolledBackORest}, reason: "unhealthy"},

	crashpoint.SuccessorAfterHello:             {accept: []string{cellRolledBack}, reason: "successor-exited"},
	crashpoint.SuccessorAfterBegin:             {accept: []string{cellRolledBack}, reason: "successor-exited"},
	crashpoint.SuccessorAfterLockBeforeReady:   {accept: []string{cellRolledBack}, reason: "successor-exited"},
	crashpoint.SuccessorAfterReadyBeforeCommit: {accept: []string{cellRolledBack, cellCommittedNRestart}, reason: "successor-exited"},
	crashpoint.SuccessorAfterCommitBeforeBind:  {accept: []string{cellCommittedNRestart}},
	crashpoint.SuccessorAfterBindBeforeServe:   {accept: []string{cellCommittedNRestart}},
}

// shortPoints is the -short subset: one point per role and phase group,
// the orderings DESIGN section 3 calls load-bearing.
var shortPoints = []crashpoint.Point{
	crashpoint.SupervisorAfterJournalAwaitingReady,
	crashpoint.SupervisorAfterCommitSuccessorBeforeCommitIncumbent,
	crashpoint.IncumbentAfterUnlockBeforeSealComplete,
	crashpoint.SuccessorAfterLockBeforeReady,
	crashpoint.SuccessorAfterCommitBeforeBind,
}

// rowResult is what one row of the matrix observed.
type rowResult struct {
	point    crashpoint.Point
	mode     string
	cell     string
	reason   string // abort reason reported by the supervisor
	took     time.Duration
	load     string
	holders  []int
	problems []string
}

// TestCrashMatrix runs a swap under load for every crash point of
// internal/crashpoint and both ways of dying there, and checks the
// invariants of DESIGN section 3 for each (see runRow).
func TestCrashMatrix(t *testing.T) {
	if !crashpoint.Enabled {
		t.Skip("run with -tags handoff_crashpoints")
	}
	checkExpectationsCover(t)
	points := crashpoint.All
	if testing.Short() {
		points = shortPoints
	}
	var mu sync.Mutex
	results := map[string]rowResult{}
	start := time.Now()
	total0, torn0 := samplerStats()
	t.Run("rows", func(t *testing.T) {
		for _, p := range points {
			for _, mode := range []string{modeExit, modePause} {
				t.Run(string(p)+"/"+mode, func(t *testing.T) {
					t.Parallel()
					res := runRow(t, p, mode)
					mu.Lock()
					results[string(p)+"/"+mode] = res
					mu.Unlock()
				})
			}
		}
	})
	total, torn := samplerStats()
	total, torn = total-total0, torn-torn0
	t.Logf("crash matrix: %d rows in %v; /proc/locks sampled %d times (%d of them in several reads)",
		len(results), time.Since(start).Round(time.Second), total, torn)
	t.Log("\n" + runTable(points, results))
	if !t.Failed() && !testing.Short() && len(results) == 2*len(points) {
		syncArchitecture(t, docTable(points))
	}
}

func checkExpectationsCover(t *testing.T) {
	for _, p := range crashpoint.All {
		if _, ok := expectations[p]; !ok {
			t.Fatalf("crash point %s has no expectation in the crash matrix: add one", p)
		}
	}
}

// runRow is one row: kvd under the supervisor driver with writers and
// readers on both listeners, a swap whose role p.Role() dies at p, recovery
// (the supervisor restarted if it died), then the checks:
//
//   - the outcome is one the design allows at p (expectations);
//   - invariant 4: no client saw a refused connection, a reset of a
//     connection with no request in flight, a dropped backlog connection or
//     a request left unanswered (except requests to the killed incumbent
//     itself, where expectation.casualties says so);
//   - invariant 3: every acknowledged write is readable at the end, and no
//     read missed a write acknowledged before it was sent;
//   - invariant 1: /proc/locks never showed two holders of the lock;
//   - the listening sockets are the same kernel sockets after a supervisor
//     restart (same inode);
//   - invariant 7: one serving incumbent (control socket owner = lock
//     holder = the process answering HTTP = the supervisor's incumbent),
//     no other process left, and the next swap commits.
func runRow(t *testing.T, p crashpoint.Point, mode string) (res rowResult) {
	exp := expectations[p]
	res = rowResult{point: p, mode: mode}
	began := time.Now()
	w := newWorld(t, string(p)+"/"+mode)
	defer func() {
		if r := recover(); r != nil {
			res.problems = append(res.problems, fmt.Sprint(r))
		}
		res.took = time.Since(began)
		for _, pr := range res.problems {
			t.Error(pr)
		}
		if t.Failed() {
			t.Logf("log of %s:\n%s", w.dir, w.logTail())
		}
	}()
	notify, hits := listenNotify(w)
	env := crashEnv(p, mode, notify)
	var drvEnv []string
	switch p.Role() {
	case "supervisor":
		drvEnv = env
	case "incumbent":
		w.cold.Binary = armOnce(w, env)
	}
	w.start(drvEnv...)
	lw, stopWatch := watchLock(w.data)
	defer stopWatch()
	ld := startLoad(w.addr["http"], w.addr["resp"])
	defer ld.stop()
	if err := ld.waitAcked(10, startWait); err != nil {
		res.problems = append(res.problems, "before the swap: "+err.Error())
		return res
	}
	res.cell, res.reason = crashSwap(w, &res, p, mode, exp, env, hits)
	if len(res.problems) == 0 {
		if !slices.Contains(exp.accept, res.cell) {
			res.problems = append(res.problems, fmt.Sprintf("outcome %q, the design allows %q", res.cell, exp.accept))
		}
		afterCrash(w, &res, ld)
	}
	ld.stop()
	checkLoad(&res, ld, exp)
	checkLock(&res, lw)
	res.load = ld.summary()
	return res
}

// crashSwap triggers the swap that dies at p and waits until the world
// has recovered; it returns the outcome cell.
func crashSwap(w *world, res *rowResult, p crashpoint.Point, mode string, exp expectation, env []string, hits <-chan crashHit) (cell, reason string) {
	sp := w.kvdSpec("gen1")
	if exp.abort {
		sp.Args = append(sp.Args, "--fail", "unhealthy")
	}
	if p.Role() == "successor" {
		sp.Env = env
	}
	d := w.drv
	from, err := d.requestSwap(sp, false)
	if err != nil {
		res.problems = append(res.problems, err.Error())
		return "", ""
	}
	hit, err := awaitHit(hits, p)
	if err != nil {
		res.problems = append(res.problems, err.Error())
		return "", ""
	}
	w.noteDaemon(hit.pid)
	if mode == modePause {
		if err := killHit(w, hit); err != nil {
			res.problems = append(res.problems, err.Error())
			return "", ""
		}
	}
	if p.Role() == "supervisor" {
		return recoverSupervisor(w, res, d)
	}
	out, err := d.waitFor(from, outcomeWait, func(e event) bool { return e.Event == "outcome" })
	if err != nil {
		res.problems = append(res.problems, "waiting for the swap's outcome: "+err.Error())
		return "", ""
	}
	if !out.Committed && out.Reason != exp.reason {
		res.problems = append(res.problems, fmt.Sprintf("rolled back with reason %q (%s), want %q", out.Reason, out.Cause, exp.reason))
	}
	return outcomeCell(w, res, out), out.Reason
}

// awaitHit waits for the crash point to announce itself.
func awaitHit(hits <-chan crashHit, p crashpoint.Point) (crashHit, error) {
	select {
	case hit := <-hits:
		if hit.point != p || hit.pid == 0 {
			return hit, fmt.Errorf("crash point announced %q by pid %d, want %s", hit.point, hit.pid, p)
		}
		return hit, nil
	case <-time.After(outcomeWait):
		return crashHit{}, fmt.Errorf("crash point %s was never reached within %v", p, outcomeWait)
	}
}

// recoverSupervisor waits for the dead driver to be reaped, starts a new
// one (it must adopt the incumbent with the same sockets) and waits for
// the world to settle.
func recoverSupervisor(w *world, res *rowResult, dead *driver) (string, string) {
	<-dead.done
	if _, err := w.restartDriver(); err != nil {
		res.problems = append(res.problems, err.Error())
		return "", ""
	}
	s, err := w.converge()
	if err != nil {
		res.problems = append(res.problems, "after the supervisor restart: "+err.Error())
		return "", ""
	}
	if s.buildID == "gen1" {
		return cellRecoveredNew, ""
	}
	return cellRecoveredOld, ""
}

// outcomeCell names what the surviving supervisor reported, and whether it
// had to restart the binary that should serve.
func outcomeCell(w *world, res *rowResult, out event) string {
	s, err := w.converge()
	if err != nil {
		res.problems = append(res.problems, "after the swap: "+err.Error())
		return ""
	}
	switch {
	case out.Committed && s.buildID != "gen1", !out.Committed && s.buildID != "gen0":
		res.problems = append(res.problems, fmt.Sprintf("the swap committed=%v, but build %s serves", out.Committed, s.buildID))
		return ""
	case out.Committed && s.pid == out.NewPID:
		return cellCommitted
	case out.Committed:
		return cellCommittedNRestart
	case s.pid == out.OldPID:
		return cellRolledBack
	}
	return cellRolledBackORest
}

// afterCrash checks that both listeners serve again and that the next
// swap commits, then that nothing but the driver and the new incumbent
// is left.
func afterCrash(w *world, res *rowResult, ld *load) {
	if err := ld.waitAcked(10, settleWait); err != nil {
		res.problems = append(res.problems, "after recovery: "+err.Error())
		return
	}
	out, err := w.swap(w.kvdSpec("gen2"))
	if err != nil || !out.Committed {
		res.problems = append(res.problems, fmt.Sprintf("the next swap did not commit: %v %s %s", err, out.Reason, out.Cause))
		return
	}
	s, err := w.converge()
	if err != nil {
		res.problems = append(res.problems, "after the next swap: "+err.Error())
		return
	}
	if s.buildID != "gen2" || s.pid != out.NewPID {
		res.problems = append(res.problems, fmt.Sprintf("after the next swap pid %d (%s) serves, want pid %d (gen2)", s.pid, s.buildID, out.NewPID))
	}
	for _, d := range w.drivers[:len(w.drivers)-1] {
		if !d.exited() {
			res.problems = append(res.problems, fmt.Sprintf("the supervisor driver pid %d that crashed still runs", d.pid))
		}
	}
	if err := ld.waitAcked(10, settleWait); err != nil {
		res.problems = append(res.problems, "after the next swap: "+err.Error())
	}
}

// checkLoad applies invariants 3 and 4 to what the clients saw.
func checkLoad(res *rowResult, ld *load, exp expectation) {
	allowed := map[string]bool{failIdleClose: true, failRejected: true}
	if exp.casualties {
		allowed[failFresh], allowed[failPartial] = true, true
	}
	for class, errs := range ld.failures() {
		if !allowed[class] {
			res.problems = append(res.problems, fmt.Sprintf("%d client requests failed with %s, e.g. %s", len(errs), class, errs[0]))
		}
	}
	res.problems = append(res.problems, firstN(ld.stale, 5)...)
	res.problems = append(res.problems, firstN(ld.verify(exp.casualties), 5)...)
}

// checkLock applies invariant 1 to the /proc/locks samples.
func checkLock(res *rowResult, lw *lockWatch) {
	maxHeld, overlap, holders, held, samples := lw.result()
	res.holders = holders
	if maxHeld > 1 {
		res.problems = append(res.problems, fmt.Sprintf("two processes held the data-dir lock at once: %v", overlap))
	}
	if held == 0 {
		res.problems = append(res.problems, fmt.Sprintf("the lock was never seen held in %d samples of /proc/locks: the check is blind", samples))
	}
}

func firstN(s []string, n int) []string {
	if len(s) > n {
		return append(s[:n:n], fmt.Sprintf("… and %d more", len(s)-n))
	}
	return s
}

// runTable is this run's table, with the abort reasons, the lock holders
// seen and the client counts.
func runTable(points []crashpoint.Point, results map[string]rowResult) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-58s %-5s %-48s %-20s %6s  %s\n", "point", "mode", "outcome", "abort reason", "took", "lock holders / clients")
	for _, p := range points {
		for _, mode := range []string{modeExit, modePause} {
			r, ok := results[string(p)+"/"+mode]
			if !ok {
				continue
			}
			cell := r.cell
			if len(r.problems) > 0 {
				cell = "FAILED: " + cell
			}
			fmt.Fprintf(&b, "%-58s %-5s %-48s %-20s %6s  %v / %s\n", p, mode, cell, r.reason,
				r.took.Round(100*time.Millisecond), r.holders, r.load)
		}
	}
	return b.String()
}

// docTable is the table ARCHITECTURE.md carries: the outcome the design
// allows at each point, which every row of a passing run matched in both
// modes.
func docTable(points []crashpoint.Point) string {
	var b strings.Builder
	b.WriteString("Each row ran kvd under a supervisor with writers and readers on both listeners (HTTP and RESP)\n" +
		"and checked: no refused connection, no reset of an idle connection, no request left unanswered\n" +
		"(except by the incumbent killed while serving), every acknowledged write readable and no stale\n" +
		"read, never two holders of the data-dir lock in /proc/locks, the same listening sockets (inode)\n" +
		"after a supervisor restart, one serving incumbent and no other process left, and a committed\n" +
		"next swap. \"Old binary\" is the incumbent's, \"new\" the successor's.\n\n")
	b.WriteString("| crash point | who dies | swap | outcome (`exit` at the point, and SIGKILL from outside while held there) | abort reason |\n")
	b.WriteString("|---|---|---|---|---|\n")
	for _, p := range points {
		exp := expectations[p]
		swap := "healthy successor"
		if exp.abort {
			swap = "unhealthy successor (abort after seal)"
		}
		reason := "–"
		if exp.reason != "" {
			reason = "`" + exp.reason + "`"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s | %s |\n", p, roleLetter(p), swap, strings.Join(exp.accept, ", or "), reason)
	}
	return b.String()
}

func roleLetter(p crashpoint.Point) string {
	switch p.Role() {
	case "supervisor":
		return "S"
	case "incumbent":
		return "O"
	}
	return "N"
}

// Markers around the generated table in ARCHITECTURE.md.
const (
	tableBegin = "<!-- crash-matrix:begin -->"
	tableEnd   = "<!-- crash-matrix:end -->"
)

// syncArchitecture writes the table into ARCHITECTURE.md with
// UPDATE_ARCHITECTURE=1, and otherwise checks that the file carries it.
func syncArchitecture(t *testing.T, table string) {
	path := filepath.Join("..", "ARCHITECTURE.md")
	doc, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block := tableBegin + "\n" + table + tableEnd
	text := string(doc)
	i, j := strings.Index(text, tableBegin), strings.Index(text, tableEnd)
	if os.Getenv("UPDATE_ARCHITECTURE") == "1" {
		if i < 0 || j < i {
			text = insertInSection(text, "## Failure modes", block)
		} else {
			text = text[:i] + block + text[j+len(tableEnd):]
		}
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote the crash-matrix table into %s", path)
		return
	}
	if i < 0 || j < i || text[i:j+len(tableEnd)] != block {
		t.Errorf("ARCHITECTURE.md does not carry this crash-matrix table; run the test with UPDATE_ARCHITECTURE=1:\n%s", table)
	}
}

// insertInSection puts block at the end of the section that starts with
// heading (before the next "## " heading), or at the end of text.
func insertInSection(text, heading, block string) string {
	start := strings.Index(text, heading)
	if start < 0 {
		return strings.TrimRight(text, "\n") + "\n\n" + block + "\n"
	}
	end := len(text)
	if k := strings.Index(text[start+len(heading):], "\n## "); k >= 0 {
		end = start + len(heading) + k + 1
	}
	return strings.TrimRight(text[:end], "\n") + "\n\n" + block + "\n" + sectionGap(text[end:])
}

func sectionGap(rest string) string {
	if rest == "" {
		return ""
	}
	return "\n" + rest
}
