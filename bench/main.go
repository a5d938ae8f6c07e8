// Command bench measures handoff against the physical floor and against
// cloudflare/tableflip v1.2.3, and writes BENCHMARKS.md from what it
// measured in this run.
//
//	cd bench && go run . -out ../BENCHMARKS.md         # quick: a few minutes (make bench)
//	cd bench && go run . -full -out ../BENCHMARKS.md   # the full counts (make bench-full)
//
// Everything runs on loopback. Every loop is bounded in count and in time.
package main

import (
	"context"
	"flag"
	"fmt"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

var logStart = time.Now()

// logfn prints progress to stderr.
func logfn(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "[%6.1fs] %s\n", time.Since(logStart).Seconds(), fmt.Sprintf(format, args...))
}

// steps are the measurements, in the order they run.
var steps = []string{"selftest", "floor", "idle", "blackout", "load", "stability", "sizes", "listeners", "cli", "profile"}

func main() {
	out := flag.String("out", "", "write the report to this `file` (default: stdout)")
	full := flag.Bool("full", false, "run the full counts (≥ 200 swaps per load mode, ≥ 1000 for stability, 1 GiB of data)")
	only := flag.String("only", "", "comma-separated `steps` to run (default all: "+strings.Join(steps, ",")+")")
	scale := flag.Float64("scale", 1, "multiply every count by this `factor` (for trying the harness; the report says so)")
	repo := flag.String("repo", "..", "the handoff repository `dir`")
	keep := flag.Bool("keep", false, "keep the temporary directory (logs of every process)")
	flag.Parse()
	if err := run(*out, *full, *only, *scale, *repo, *keep); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(out string, full bool, only string, scale float64, repo string, keep bool) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := becomeSubreaper(); err != nil {
		return err
	}
	p := quickPlan()
	if full {
		p = fullPlan()
	}
	p = p.scaled(scale)
	x, cleanup, err := setup(p, repo, keep)
	if err != nil {
		return err
	}
	defer cleanup()
	res := &results{Plan: p, Scale: scale, Machine: describeMachine(x.base), Bins: x.b, Started: time.Now()}
	res.Machine.Command = commandLine()
	res.LoadStart = loadAverage()
	if err := x.runSteps(ctx, res, selected(only)); err != nil {
		return err
	}
	res.Finished = time.Now()
	res.LoadEnd = loadAverage()
	return writeReport(out, res)
}

func selected(only string) map[string]bool {
	sel := map[string]bool{}
	for _, s := range steps {
		sel[s] = only == ""
	}
	for _, s := range strings.Split(only, ",") {
		if s = strings.TrimSpace(s); s != "" {
			sel[s] = true
		}
	}
	return sel
}

// setup builds the binaries and makes the working directories.
func setup(p plan, repo string, keep bool) (*bench, func(), error) {
	base, err := os.MkdirTemp("", "handoff-bench-")
	if err != nil {
		return nil, nil, err
	}
	shm, err := os.MkdirTemp("/dev/shm", "handoff-bench-")
	if err != nil {
		shm = base // no tmpfs: the tmpfs configuration then runs on disk (the report shows the path)
	}
	cleanup := func() {
		if keep {
			logfn("kept %s and %s", base, shm)
			return
		}
		os.RemoveAll(base)
		os.RemoveAll(shm)
	}
	repoAbs, err := filepath.Abs(repo)
	if err != nil {
		cleanup()
		return nil, nil, err
	}
	wd, _ := os.Getwd()
	logfn("building kvd, handoff, nopd, bare, tfpeer into %s", base)
	b, err := buildAll(repoAbs, wd, filepath.Join(base, "bin"))
	if err != nil {
		cleanup()
		return nil, nil, err
	}
	return &bench{p: p, b: b, base: base, shm: shm}, cleanup, nil
}

func commandLine() string {
	args := slices.Clone(os.Args[1:])
	return "go run . " + strings.Join(args, " ")
}

// scaled multiplies every count by f (at least 1 each).
func (p plan) scaled(f float64) plan {
	if f == 1 {
		return p
	}
	sc := func(n *int) { *n = max(1, int(math.Round(float64(*n)*f))) }
	for _, n := range []*int{&p.FloorN, &p.IdleSwaps, &p.BlackoutSwaps, &p.LoadSwaps, &p.StabilitySwaps,
		&p.SizeSwaps, &p.ListenerSwaps, &p.CLISwaps, &p.ProfileSwaps} {
		sc(n)
	}
	p.Steady = time.Duration(float64(p.Steady) * math.Max(f, 0.25))
	return p
}
