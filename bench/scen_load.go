package main

import (
	"context"
	"fmt"
	"time"
)

// loadResult is one system under one load mode while swaps run.
type loadResult struct {
	System  string
	Series  series
	Stats   loadStats
	Checked int    // acknowledged writes read back after the run
	Lost    int    // … missing or wrong
	Verify  string // how (or why not) writes were read back
	Rate    float64
}

// runLoad drives sys with the clients of mode while n swaps run back to
// back, between two steady periods, then stops sys and reads back every
// acknowledged write (when the system keeps state).
func (x *bench) runLoad(ctx context.Context, sys system, mode loadMode, n int, dataDir string) loadResult {
	addr := sys.HTTPAddr()
	if mode == modeRESP {
		addr = sys.RESPAddr()
	}
	l := startLoad(mode, addr, x.p.Clients, x.p.ValueSize)
	time.Sleep(x.p.Steady)
	recs := runSwaps(ctx, sys, n, swapLimit(n), nil)
	time.Sleep(x.p.Steady)
	l.finish()
	res := loadResult{System: sys.Name(), Series: series{System: sys.Name(), Config: mode.String(), Recs: recs}}
	var ws []window
	for _, r := range recs {
		ws = append(ws, r.window(l.start))
	}
	res.Stats = l.stats(ws)
	res.Rate = float64(res.Stats.Ops) / res.Stats.Duration.Seconds()
	if err := sys.Close(); err != nil {
		res.Verify = "stop failed: " + err.Error()
	}
	res.verify(dataDir, l)
	logfn("  load %s / %s: %d swaps (%d failed), %.0f req/s, failed requests %d %v, stale %d, lost %d of %d",
		res.System, mode, len(recs), res.Series.failed(), res.Rate, res.Stats.Errs.failures(), res.Stats.Errs,
		res.Stats.Errs[classStale], res.Lost, res.Checked)
	for _, e := range res.Stats.Examples {
		logfn("    %s", e)
	}
	return res
}

func (res *loadResult) verify(dataDir string, l *load) {
	if dataDir == "" {
		res.Verify = "n/a: tableflip hands over sockets, not state (each generation starts empty)"
		return
	}
	checked, lost, err := verifyAcked(dataDir, l)
	res.Checked, res.Lost = checked, lost
	if err != nil {
		res.Verify = "read-back failed: " + err.Error()
		return
	}
	res.Verify = "kvd's log opened after a graceful stop; every acknowledged write looked up"
}

func (x *bench) runLoads(ctx context.Context) ([]loadResult, error) {
	n := x.p.LoadSwaps
	var out []loadResult
	for _, mode := range []loadMode{modeKeepAlive, modeNewConn, modeRESP} {
		sys, err := startOurs(ctx, x.kvd(fmt.Sprintf("kvd-load%d", mode), 1*mib))
		if err != nil {
			return out, err
		}
		out = append(out, x.runLoad(ctx, sys, mode, n, sys.dataDir))
	}
	for _, mode := range []loadMode{modeKeepAlive, modeNewConn} {
		p, err := startPeer(x.b.TFPeer, x.base)
		if err != nil {
			return out, fmt.Errorf("tableflip: %w", err)
		}
		out = append(out, x.runLoad(ctx, p, mode, n, ""))
	}
	return out, nil
}
