package main

import (
	"context"
	"os"
	"strconv"
	"strings"
	"time"
)

// results is everything a run measured; the report is written from it.
type results struct {
	Plan      plan
	Scale     float64
	Machine   machine
	Bins      binaries
	Started   time.Time
	Finished  time.Time
	Ran       map[string]time.Duration
	SelfTest  *selfTest
	Floors    []floorResult
	Idle      *idleResults
	Blackouts []blackoutResult
	Loads     []loadResult
	Stability *stabilityResult
	Sizes     []sizeResult
	Listeners []listenerResult
	CLI       *cliResult
	Profile   *profileResult
	Problems  []string // steps that failed, with the error
	LoadStart float64  // 1-minute load average when the run started
	LoadEnd   float64
	StepLoad  map[string]float64 // load average when each step started
}

func (x *bench) runSteps(ctx context.Context, res *results, sel map[string]bool) error {
	res.Ran = map[string]time.Duration{}
	res.StepLoad = map[string]float64{}
	for _, name := range steps {
		if !sel[name] || ctx.Err() != nil {
			continue
		}
		res.StepLoad[name] = loadAverage()
		logfn("step %s (load average %.2f)", name, res.StepLoad[name])
		t0 := time.Now()
		if err := x.runStep(ctx, name, res); err != nil {
			logfn("step %s failed: %v", name, err)
			res.Problems = append(res.Problems, name+": "+err.Error())
		}
		res.Ran[name] = time.Since(t0)
	}
	return ctx.Err()
}

func (x *bench) runStep(ctx context.Context, name string, res *results) error {
	var err error
	switch name {
	case "selftest":
		var st selfTest
		st, err = runSelfTest()
		res.SelfTest = &st
	case "floor":
		res.Floors, err = runFloors(x.b, x.base, x.p.FloorN)
		logFloors(res.Floors)
	case "idle":
		var idle idleResults
		idle, err = x.runIdle(ctx)
		res.Idle = &idle
	case "blackout":
		res.Blackouts, err = x.runBlackouts(ctx)
	case "load":
		res.Loads, err = x.runLoads(ctx)
	case "stability":
		res.Stability, err = x.runStability(ctx)
	case "sizes":
		res.Sizes, err = x.runSizes(ctx)
	case "listeners":
		res.Listeners, err = x.runListeners(ctx)
	case "cli":
		res.CLI, err = x.runCLI(ctx)
	case "profile":
		res.Profile, err = x.runProfile(ctx)
	}
	return err
}

// loadAverage is the 1-minute load average (-1 if unknown).
func loadAverage() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return -1
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return -1
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return -1
	}
	return v
}
