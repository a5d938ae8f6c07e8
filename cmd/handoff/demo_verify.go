package main

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
)

// verifyWorkers read acknowledged writes back in parallel.
const verifyWorkers = 8

// verify reads back every acknowledged write, checks that no unanswered
// SET was applied, and that the last committed build serves.
func (d *demoRun) verify(ctx context.Context) error {
	acks := d.load.acks.snapshot()
	d.p.linef("verifying: reading back %d acknowledged writes over HTTP", len(acks))
	lost, errs := d.readBack(ctx, acks)
	d.rep.LostWrites, d.rep.VerifyErrors = lost, errs
	if err := d.checkUnanswered(ctx); err != nil {
		return err
	}
	st, err := demoWaitServing(ctx, d.httpURL, d.lastCommitted, swapDeadline)
	d.rep.FinalPID, d.rep.FinalBuild, d.rep.ExpectedBuild = st.PID, st.BuildID, d.lastCommitted
	if err != nil {
		d.rep.failf("final check: %v", err)
	}
	if ctx.Err() != nil {
		return fmt.Errorf("handoff: demo: verify: %w", ctx.Err())
	}
	d.p.linef("verified: %d lost, %d could not be read; build %s (pid %d) serves", lost, errs, st.BuildID, st.PID)
	return nil
}

// readBack GETs every write and counts the lost ones (404 or another
// value) and the reads that failed.
func (d *demoRun) readBack(ctx context.Context, acks []demoKV) (lost, errs int) {
	var nLost, nErr atomic.Int64
	var wg sync.WaitGroup
	for w := range verifyWorkers {
		wg.Go(func() {
			c := newDemoClient()
			defer c.CloseIdleConnections()
			for i := w; i < len(acks) && ctx.Err() == nil; i += verifyWorkers {
				switch d.readOne(ctx, c.Client, acks[i]) {
				case readLost:
					nLost.Add(1)
				case readFailed:
					nErr.Add(1)
				}
			}
		})
	}
	wg.Wait()
	return int(nLost.Load()), int(nErr.Load())
}

// demoReadResult is what reading back one write found.
type demoReadResult int

const (
	readOK demoReadResult = iota
	readLost
	readFailed
	readAbsent // the key does not exist (right for an unanswered write)
)

// readOne reads back one write.
func (d *demoRun) readOne(ctx context.Context, c *http.Client, w demoKV) demoReadResult {
	res, detail := demoGetKey(ctx, c, d.httpURL, w)
	switch res {
	case readAbsent:
		d.rep.problem("lost write: %s: %s", w.key, detail)
		return readLost
	case readLost, readFailed:
		d.rep.problem("read back %s: %s", w.key, detail)
	}
	return res
}

// demoGetKey reads one key: readOK with the expected value, readAbsent on
// 404, readLost with another value, readFailed if the request failed.
func demoGetKey(ctx context.Context, c *http.Client, baseURL string, w demoKV) (demoReadResult, string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, baseURL+"/kv/"+w.key, nil)
	if err != nil {
		return readFailed, err.Error()
	}
	status, body, err := demoDoHTTP(c, req)
	switch {
	case err != nil:
		return readFailed, err.Error()
	case status == http.StatusNotFound:
		return readAbsent, "404 Not Found"
	case status != http.StatusOK:
		return readFailed, fmt.Sprintf("status %d", status)
	case string(body) != w.value:
		return readLost, fmt.Sprintf("value %q, acknowledged %q", body, w.value)
	}
	return readOK, ""
}

// checkUnanswered reads back the writes (HTTP PUT, RESP SET) whose
// connection closed before any byte of an answer: a server answers every
// request it has read (invariant 4), so none may be applied.
func (d *demoRun) checkUnanswered(ctx context.Context) error {
	d.load.mu.Lock()
	sets := append([]demoKV(nil), d.load.unansweredWrites...)
	d.load.mu.Unlock()
	d.rep.UnansweredWrites = len(sets)
	c := newDemoClient()
	defer c.CloseIdleConnections()
	for _, w := range sets {
		switch res, detail := demoGetKey(ctx, c.Client, d.httpURL, w); res {
		case readAbsent:
			d.rep.UnansweredNotApplied++
		case readOK, readLost:
			d.rep.UnansweredApplied++
			d.rep.problem("unanswered write %s was applied (%s)", w.key, detail)
		default:
			d.rep.VerifyErrors++
			d.rep.problem("read back unanswered write %s: %s", w.key, detail)
		}
	}
	if ctx.Err() != nil {
		return fmt.Errorf("handoff: demo: verify: %w", ctx.Err())
	}
	return nil
}
