package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"time"

	"github.com/handoff-go/handoff/supervisor"
)

// handoff performs swap i of the plan and records how it ended and which
// build serves afterwards.
func (d *demoRun) handoff(ctx context.Context, i int) error {
	bad := i == d.plan.bad
	build := demoBuildID(i, bad)
	bin, err := d.genBinary(i)
	if err != nil {
		return err
	}
	// Pinned to the build's SHA-256, as an operator would pin a release:
	// the supervisor runs exactly the file it hashed.
	pin, err := demoFileSHA256(bin)
	if err != nil {
		return err
	}
	fail := ""
	if bad {
		fail = d.plan.failMode
	}
	d.p.linef("swap %d/%d: to %s, build %s%s", i, d.plan.handoffs, filepath.Base(bin), build, demoPlanNote(fail))
	out, err := d.sup.PerformHandoff(ctx, supervisor.SpawnSpec{
		Binary: bin, Args: d.kvdArgs(build, fail), SHA256: pin,
		Deadline: swapDeadline, DrainGrace: swapDrainGrace, OnEvent: d.onEvent,
	})
	if ctx.Err() != nil {
		return fmt.Errorf("handoff: demo: swap %d: %w", i, ctx.Err())
	}
	if err != nil && !errors.Is(err, supervisor.ErrRolledBack) {
		return fmt.Errorf("handoff: demo: swap %d: %w", i, err)
	}
	if out.Committed {
		d.lastCommitted = build
	}
	res := d.rep.addSwap(i, bad, out)
	d.checkServing(ctx, res)
	d.p.linef("swap %d/%d: %s", i, d.plan.handoffs, res.summary())
	return nil
}

func demoPlanNote(fail string) string {
	if fail == "" {
		return ""
	}
	return fmt.Sprintf(" with --fail %s (planned to roll back)", fail)
}

// onEvent prints one phase of the swap in progress as it happens.
func (d *demoRun) onEvent(p supervisor.Progress) {
	took := demoRound(p.Took).String()
	if p.Step == "seal-progress" {
		took = "·"
	}
	d.p.linef("    %-14s %9s  %s", p.Step, took, dedupe(p.Detail))
}

// checkServing asks a new connection which process serves: after a commit
// it must be the new build, after a rollback the previous one.
func (d *demoRun) checkServing(ctx context.Context, res *swapResult) {
	st, err := demoWaitServing(ctx, d.httpURL, d.lastCommitted, swapDeadline)
	res.ServingPID, res.ServingBuild = st.PID, st.BuildID
	if err != nil {
		d.rep.failf("swap %d: %v", res.Index, err)
	}
}

// kvdStats is the part of kvd's GET /stats the demo checks.
type kvdStats struct {
	PID      int    `json:"pid"`
	BuildID  string `json:"build_id"`
	Revision uint64 `json:"revision"`
}

// demoWaitServing polls GET /stats on fresh connections until the build id
// is build, or the budget ends. A connection made while no process
// accepts waits in the listen backlog, so the poll interval only matters
// when the wrong build answers.
func demoWaitServing(ctx context.Context, baseURL, build string, budget time.Duration) (kvdStats, error) {
	ctx, cancel := context.WithTimeout(ctx, budget)
	defer cancel()
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil}}
	defer c.CloseIdleConnections()
	var st kvdStats
	var err error
	for {
		if st, err = demoFetchStats(ctx, c, baseURL); err == nil && st.BuildID == build {
			return st, nil
		}
		if err == nil {
			err = fmt.Errorf("handoff: demo: build %s (pid %d) serves, expected build %s", st.BuildID, st.PID, build)
		}
		if demoSleep(ctx, 20*time.Millisecond) != nil {
			return st, fmt.Errorf("%w (gave up after %s)", err, budget)
		}
	}
}

// demoFetchStats reads kvd's GET /stats.
func demoFetchStats(ctx context.Context, c *http.Client, baseURL string) (kvdStats, error) {
	var st kvdStats
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, baseURL+"/stats", nil)
	if err != nil {
		return st, fmt.Errorf("handoff: demo: %w", err)
	}
	resp, err := c.Do(req)
	if err != nil {
		return st, fmt.Errorf("handoff: demo: GET /stats: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("handoff: demo: GET /stats: %s", resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return st, fmt.Errorf("handoff: demo: GET /stats: %w", err)
	}
	return st, nil
}

// demoRound rounds a duration for people: 3 significant digits or so.
func demoRound(d time.Duration) time.Duration {
	switch {
	case d >= 10*time.Second:
		return d.Round(100 * time.Millisecond)
	case d >= time.Second:
		return d.Round(10 * time.Millisecond)
	case d >= 10*time.Millisecond:
		return d.Round(100 * time.Microsecond)
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond)
	}
	return d.Round(time.Microsecond)
}
