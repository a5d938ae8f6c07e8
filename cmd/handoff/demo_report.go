package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/handoff-go/handoff/supervisor"
)

// demoReport is what a demo run found. runDemo prints it; the test reads
// it. Durations are milliseconds in JSON.
type demoReport struct {
	Passed      bool     `json:"passed"`
	Interrupted bool     `json:"interrupted,omitempty"`
	Failures    []string `json:"failures"` // why the run failed; empty when it passed

	HandoffsPlanned  int            `json:"handoffs_planned"`
	RollbacksPlanned int            `json:"rollbacks_planned"`
	Committed        int            `json:"committed"`
	RolledBack       int            `json:"rolled_back"`
	Swaps            []*swapResult  `json:"swaps"`
	Phases           []phaseSummary `json:"phases"`

	HTTP                 protoReport `json:"http"`
	RESP                 protoReport `json:"resp"`
	AckedWrites          int         `json:"acknowledged_writes"`
	LostWrites           int         `json:"lost_writes"`
	StaleReads           int         `json:"stale_reads"`
	VerifyErrors         int         `json:"verify_errors"`
	UnansweredWrites     int         `json:"unanswered_writes"` // writes sent without an answer, each read back
	UnansweredNotApplied int         `json:"unanswered_writes_not_applied"`
	UnansweredApplied    int         `json:"unanswered_writes_applied"`
	Crashes              int         `json:"incumbent_crashes"`

	FinalPID      int      `json:"final_pid"`
	FinalBuild    string   `json:"final_build_id"`
	ExpectedBuild string   `json:"expected_build_id"`
	TotalMS       float64  `json:"total_ms"`
	TempDir       string   `json:"temp_dir,omitempty"` // set only when it was kept
	Problems      []string `json:"problems,omitempty"` // samples of what went wrong

	mu      sync.Mutex
	start   time.Time
	logTail string
	dir     string // the temp dir, kept or not
}

// protoReport is one protocol's request counts.
type protoReport struct {
	Served     int64            `json:"served"` // writes acknowledged + reads answered right
	Writes     int64            `json:"acknowledged_writes"`
	Reads      int64            `json:"reads"`
	Failed     int64            `json:"failed"`
	FailedBy   map[string]int64 `json:"failed_by_class"`
	Unanswered int64            `json:"unanswered"` // sent; the connection closed before any byte of an answer
	Moved      int64            `json:"moved"`      // not sent: the connection was closed or idle; sent on a new one
}

// swapResult is how one swap ended.
type swapResult struct {
	Index        int         `json:"index"`
	Binary       string      `json:"binary"`
	BuildID      string      `json:"build_id"`
	Planned      string      `json:"planned"` // "commit" or "rollback"
	Committed    bool        `json:"committed"`
	Reason       string      `json:"reason,omitempty"`
	Cause        string      `json:"cause,omitempty"`
	OldPID       int         `json:"old_pid"`
	NewPID       int         `json:"new_pid"`
	ServingPID   int         `json:"serving_pid"`
	ServingBuild string      `json:"serving_build_id"`
	Phases       []phaseTime `json:"phases"`
	TotalMS      float64     `json:"total_ms"`
	phases       []supervisor.PhaseDuration
}

// phaseTime is one phase of one swap.
type phaseTime struct {
	Phase string  `json:"phase"`
	MS    float64 `json:"ms"`
}

// phaseSummary is one phase over all swaps.
type phaseSummary struct {
	Phase    string  `json:"phase"`
	Count    int     `json:"count"`
	MedianMS float64 `json:"median_ms"`
	MaxMS    float64 `json:"max_ms"`
}

func newDemoReport(p demoPlan) *demoReport {
	r := &demoReport{HandoffsPlanned: p.handoffs, start: time.Now(), Failures: []string{}}
	if p.bad > 0 {
		r.RollbacksPlanned = 1
	}
	return r
}

// demoMS is a duration in milliseconds, for JSON.

// addSwap records a swap's outcome.
func (r *demoReport) addSwap(i int, bad bool, o supervisor.Outcome) *swapResult {
	s := &swapResult{Index: i, Binary: o.Binary, BuildID: o.BuildID, Planned: "commit",
		Committed: o.Committed, Reason: o.Reason, Cause: o.Cause, OldPID: o.OldPID, NewPID: o.NewPID,
		TotalMS: ms(o.Total), phases: o.Phases}
	if bad {
		s.Planned = "rollback"
	}
	for _, p := range o.Phases {
		s.Phases = append(s.Phases, phaseTime{p.Phase, ms(p.Duration)})
	}
	if o.Committed {
		r.Committed++
	} else {
		r.RolledBack++
	}
	if s.Committed != !bad {
		r.failf("swap %d: planned to %s, but %s", i, s.Planned, s.outcomeWord())
	}
	r.Swaps = append(r.Swaps, s)
	return s
}

func (s *swapResult) outcomeWord() string {
	if s.Committed {
		return "committed"
	}
	return "rolled back (" + s.Reason + ")"
}

// summary is the one-line result of a swap.
func (s *swapResult) summary() string {
	total := demoRound(msDuration(s.TotalMS))
	if s.Committed {
		return fmt.Sprintf("COMMITTED in %s: pid %d -> %d, build %s serves%s", total, s.OldPID, s.NewPID, s.ServingBuild, s.planNote())
	}
	return fmt.Sprintf("ROLLED BACK in %s (%s)%s: pid %d, build %s, serves on", total, s.Reason, s.planNote(), s.OldPID, s.ServingBuild)
}

func (s *swapResult) planNote() string {
	if s.Committed == (s.Planned == "commit") {
		if s.Planned == "rollback" {
			return ", as planned"
		}
		return ""
	}
	return ", NOT AS PLANNED"
}

// failf records why the run fails.
func (r *demoReport) failf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.Failures = append(r.Failures, fmt.Sprintf(format, args...))
}

// problem keeps a sample of what went wrong (bounded).
func (r *demoReport) problem(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.Problems) < 2*maxProblems {
		r.Problems = append(r.Problems, fmt.Sprintf(format, args...))
	}
}

// summarizePhases computes the median and max of each phase, in the
// order the phases first appear.
func (r *demoReport) summarizePhases() {
	byPhase := map[string][]time.Duration{}
	var order []string
	for _, s := range r.Swaps {
		for _, p := range s.phases {
			if _, ok := byPhase[p.Phase]; !ok {
				order = append(order, p.Phase)
			}
			byPhase[p.Phase] = append(byPhase[p.Phase], p.Duration)
		}
	}
	r.Phases = nil
	for _, name := range order {
		ds := byPhase[name]
		slices.Sort(ds)
		r.Phases = append(r.Phases, phaseSummary{Phase: name, Count: len(ds),
			MedianMS: ms(demoMedian(ds)), MaxMS: ms(ds[len(ds)-1])})
	}
}

// replacedPIDs are the incumbents that committed swaps replaced.
func (r *demoReport) replacedPIDs() map[int]bool {
	pids := map[int]bool{}
	for _, s := range r.Swaps {
		if s.Committed {
			pids[s.OldPID] = true
		}
	}
	return pids
}

// demoMedian is the median of a sorted, non-empty slice.
func demoMedian(ds []time.Duration) time.Duration {
	n := len(ds)
	if n%2 == 1 {
		return ds[n/2]
	}
	return (ds[n/2-1] + ds[n/2]) / 2
}

// fillLoad copies the load's counts into the report.
func (r *demoReport) fillLoad(l *demoLoad) {
	r.HTTP = demoProtoCounts(&l.http)
	r.RESP = demoProtoCounts(&l.resp)
	r.AckedWrites = int(r.HTTP.Writes + r.RESP.Writes)
	r.StaleReads = int(l.stale.Load())
	l.mu.Lock()
	r.Problems = append(l.problems, r.Problems...)
	l.mu.Unlock()
}

func demoProtoCounts(c *protoCounters) protoReport {
	p := protoReport{Writes: c.writes.Load(), Reads: c.reads.Load(), Failed: c.failedTotal(),
		FailedBy: map[string]int64{}, Unanswered: c.unanswered.Load(), Moved: c.moved.Load()}
	p.Served = p.Writes + p.Reads
	for i, name := range failClassNames {
		p.FailedBy[name] = c.failed[i].Load()
	}
	return p
}

// verdict fills in the report and decides the exit status.
func (d *demoRun) verdict(ctx context.Context, err error) int {
	r := d.rep
	r.TotalMS = ms(time.Since(r.start))
	r.Crashes = d.crashes.count(r.replacedPIDs())
	if d.load != nil {
		r.fillLoad(d.load)
	}
	r.summarizePhases()
	switch {
	case ctx.Err() != nil:
		r.Interrupted = true
		r.failf("interrupted")
		return exitInterrupted
	case err != nil && d.load == nil:
		r.failf("%v", err)
		return exitError
	case err != nil:
		r.failf("%v", err)
	}
	d.checkInvariants()
	r.Passed = len(r.Failures) == 0
	if r.Passed {
		return exitOK
	}
	return exitInvariant
}

// checkInvariants adds a failure for every invariant that did not hold.
func (d *demoRun) checkInvariants() {
	r := d.rep
	check := func(bad bool, format string, args ...any) {
		if bad {
			r.failf(format, args...)
		}
	}
	check(r.Committed != d.plan.goodSwaps(), "%d swaps committed, %d planned", r.Committed, d.plan.goodSwaps())
	check(r.RolledBack != r.RollbacksPlanned, "%d swaps rolled back, %d planned", r.RolledBack, r.RollbacksPlanned)
	check(r.LostWrites > 0, "%d acknowledged writes lost", r.LostWrites)
	check(r.StaleReads > 0, "%d stale reads (an acknowledged write was missing or wrong)", r.StaleReads)
	check(r.VerifyErrors > 0, "%d acknowledged writes could not be read back", r.VerifyErrors)
	check(r.UnansweredApplied > 0, "%d writes were applied without an answer", r.UnansweredApplied)
	refused := r.HTTP.FailedBy["refused"] + r.RESP.FailedBy["refused"]
	check(refused > 0, "%d connections refused", refused)
	check(r.HTTP.Failed > 0, "%d HTTP requests failed", r.HTTP.Failed)
	check(r.RESP.Failed > 0, "%d RESP commands failed", r.RESP.Failed)
	unanswered := r.HTTP.Unanswered + r.RESP.Unanswered
	check(d.cfg.Strict && unanswered > 0, "%d requests unanswered (--strict)", unanswered)
	check(r.Crashes > 0, "the incumbent crashed %d times", r.Crashes)
	check(r.HTTP.Writes == 0 || r.HTTP.Reads == 0 || r.RESP.Writes == 0 || r.RESP.Reads == 0,
		"the load did not exercise every path (HTTP %d writes, %d reads; RESP %d writes, %d reads)",
		r.HTTP.Writes, r.HTTP.Reads, r.RESP.Writes, r.RESP.Reads)
}

// printReport prints the report: text for people, or JSON.
func (d *demoRun) printReport() {
	r := d.rep
	if d.cfg.JSON {
		enc := json.NewEncoder(d.cfg.Out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(r); err != nil {
			fmt.Fprintln(d.cfg.Log, fmt.Errorf("handoff: demo: report: %w", err))
		}
		d.printFailureDetail(d.cfg.Log)
		return
	}
	r.writeText(d.cfg.Out)
	d.printFailureDetail(d.cfg.Out)
}

// printFailureDetail shows the problem samples (of a failed run, or of
// unanswered requests) and the log tail of a failed run.
func (d *demoRun) printFailureDetail(w io.Writer) {
	r := d.rep
	if r.Interrupted || (r.Passed && r.HTTP.Unanswered+r.RESP.Unanswered == 0) {
		return
	}
	for _, p := range r.Problems {
		fmt.Fprintf(w, "  problem: %s\n", p)
	}
	if r.Passed {
		return
	}
	if r.logTail != "" && !d.cfg.Verbose {
		fmt.Fprintf(w, "--- last lines of the daemon and supervisor log ---\n%s\n---\n", r.logTail)
	}
	if r.TempDir == "" {
		fmt.Fprintln(w, "(run with --keep to keep the temp dir, -v to see every log line)")
	}
}

// writeText prints the report for people.
func (r *demoReport) writeText(w io.Writer) {
	fmt.Fprintln(w)
	fmt.Fprintf(w, "handoff demo: %s\n", r.headline())
	fmt.Fprintf(w, "  handoffs      %d planned: %d committed, %d rolled back (%d planned)\n",
		r.HandoffsPlanned, r.Committed, r.RolledBack, r.RollbacksPlanned)
	for _, s := range r.Swaps {
		if !s.Committed {
			fmt.Fprintf(w, "                  swap %d: %s\n", s.Index, demoOneLine(dedupe(s.Reason+": "+s.Cause)))
		}
	}
	r.writeRequests(w)
	r.writeVerified(w)
	r.writePhases(w)
	fmt.Fprintf(w, "  total         %s\n", demoRound(msDuration(r.TotalMS)))
	for _, f := range r.Failures {
		fmt.Fprintf(w, "  FAILED: %s\n", f)
	}
	if r.TempDir != "" {
		fmt.Fprintf(w, "  temp dir      %s (kept)\n", r.TempDir)
	}
}

// writeVerified prints what the read-back found (nothing when the run
// ended before it).
func (r *demoReport) writeVerified(w io.Writer) {
	if r.FinalBuild == "" {
		fmt.Fprintf(w, "  acked writes  %d (HTTP %d, RESP %d), not verified: the run ended first\n",
			r.AckedWrites, r.HTTP.Writes, r.RESP.Writes)
		fmt.Fprintf(w, "  stale reads   %d\n", r.StaleReads)
		return
	}
	fmt.Fprintf(w, "  acked writes  %d (HTTP %d, RESP %d), each read back: lost %d, unreadable %d\n",
		r.AckedWrites, r.HTTP.Writes, r.RESP.Writes, r.LostWrites, r.VerifyErrors)
	fmt.Fprintf(w, "  stale reads   %d\n", r.StaleReads)
	fmt.Fprintf(w, "  serving       pid %d, build %s (last committed: %s)\n", r.FinalPID, r.FinalBuild, r.ExpectedBuild)
}

func (r *demoReport) headline() string {
	switch {
	case r.Interrupted:
		return "INTERRUPTED (cleaned up)"
	case r.Passed:
		return "PASS: no lost write, no stale read, no failed request, every swap ended as planned"
	}
	return "FAIL"
}

// writeRequests prints the request counts of both protocols.
func (r *demoReport) writeRequests(w io.Writer) {
	for _, p := range []struct {
		name string
		c    protoReport
	}{{"HTTP", r.HTTP}, {"RESP", r.RESP}} {
		fmt.Fprintf(w, "  %-13s %s %d served (%d writes, %d reads), %d failed, %d unanswered, %d moved\n",
			demoFirst(p.name == "HTTP", "requests"), p.name, p.c.Served, p.c.Writes, p.c.Reads, p.c.Failed, p.c.Unanswered, p.c.Moved)
	}
	fmt.Fprintf(w, "  failed by     %s\n", demoFailedBy(r.HTTP, r.RESP))
	if n := r.HTTP.Unanswered + r.RESP.Unanswered; n > 0 {
		fmt.Fprintf(w, "  unanswered    %d: at a seal the server closed a keep-alive connection as the request arrived,\n"+
			"                without processing it (neither HTTP/1.1 nor RESP can warn a client sending at that\n"+
			"                instant); writes among them read back: %d not applied, %d applied\n", n, r.UnansweredNotApplied, r.UnansweredApplied)
	}
	fmt.Fprintf(w, "                (moved: not sent because the connection was closed by the server or, for HTTP,\n"+
		"                idle for %s, since a seal closes idle connections; sent on a new connection)\n", staleAfter)
}

// demoFirst returns s if first, else blanks as wide.
func demoFirst(first bool, s string) string {
	if first {
		return s
	}
	return ""
}

// demoFailedBy lists the failure classes with both protocols' counts.
func demoFailedBy(h, s protoReport) string {
	parts := make([]string, 0, len(failClassNames))
	for _, name := range failClassNames {
		parts = append(parts, fmt.Sprintf("%s %d", name, h.FailedBy[name]+s.FailedBy[name]))
	}
	return strings.Join(parts, ", ")
}

// writePhases prints the phase timing table.
func (r *demoReport) writePhases(w io.Writer) {
	if len(r.Phases) == 0 {
		return
	}
	fmt.Fprintf(w, "  phases        %-14s %6s %10s %10s\n", "", "swaps", "median", "max")
	for _, p := range r.Phases {
		fmt.Fprintf(w, "                %-14s %6d %10s %10s\n", p.Phase, p.Count,
			demoRound(msDuration(p.MedianMS)), demoRound(msDuration(p.MaxMS)))
	}
}

// demoOneLine shortens an error text for a report line.
func demoOneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > 160 {
		return s[:157] + "..."
	}
	return s
}

// demoPrinter writes progress lines, each stamped with the time since start;
// lines from the swap and the load never interleave.
type demoPrinter struct {
	mu    sync.Mutex
	w     io.Writer
	start time.Time
}

func newDemoPrinter(w io.Writer) *demoPrinter { return &demoPrinter{w: w, start: time.Now()} }

// linef prints one progress line.
func (p *demoPrinter) linef(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, "[%6.2fs] %s\n", time.Since(p.start).Seconds(), fmt.Sprintf(format, args...))
}
