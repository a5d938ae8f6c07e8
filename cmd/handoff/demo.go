package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"
)

const demoUsage = `Usage: handoff demo [--handoffs N] [--short] [--fail MODE] [--keep] [--json] [-v] [--strict] [--kvd PATH]

Runs the example key-value daemon (examples/kvd) under an in-process
supervisor on loopback ports, in a temp dir, and drives concurrent HTTP and
RESP readers and writers against it while it swaps the daemon's binary N
times. One swap goes to a build that fails on purpose, so the supervisor
rolls it back. Then it reads back every acknowledged write and prints a
report. It needs the Go toolchain and a checkout of the repository (it
builds kvd from examples/kvd), unless --kvd names a built kvd binary.

Exit status: 0 every invariant held (no lost write, no stale read, no
failed request, every swap ended as planned); 1 an invariant failed;
2 the demo could not run; 130 interrupted (everything is cleaned up).

Unanswered requests are counted apart: a seal closes idle keep-alive
connections, and a request sent at that very instant gets no answer
(neither HTTP/1.1 nor RESP can warn the client). The server processes
none of them, so none takes effect: the demo reads back every unanswered
write and fails if one was applied. --strict fails on any unanswered
request.

Example:

  go run ./cmd/handoff demo
  go run ./cmd/handoff demo --handoffs 10 --fail unhealthy --json > report.json

Flags:
`

// Exit status of the demo besides exitOK and exitError.
const (
	exitInvariant   = 1   // an invariant failed
	exitInterrupted = 130 // interrupted (the shell's 128+SIGINT)
)

// defaultFailMode makes the bad build exit after Begin, before Ready:
// after the incumbent sealed and released the lock, the hardest moment
// for a rollback.
const defaultFailMode = "exit-before-ready"

// demoConfig is what the flags of `handoff demo` say.
type demoConfig struct {
	Handoffs int    // swaps to perform, including the one planned to fail
	FailMode string // kvd --fail mode of the planned bad swap; "" is defaultFailMode, "none" plans none
	Short    bool   // less load time, 3 swaps by default (for the test suite)
	Keep     bool   // keep the temp dir
	JSON     bool   // print the report as JSON on Out, progress on Log
	Verbose  bool   // daemon and supervisor logs on Log instead of a file
	KVD      string // a built kvd binary to use instead of building one
	Strict   bool   // fail on unanswered requests too

	Out io.Writer // the report (and progress, unless JSON)
	Log io.Writer // progress when JSON; logs when Verbose
}

// runDemo is `handoff demo`: it owns the process-wide parts (flags,
// signals, the exit status) and leaves the work to demo.
func runDemo(args []string) int {
	cfg, err := parseDemoFlags(args, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return exitError
	}
	cfg.Out, cfg.Log = os.Stdout, os.Stderr
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	_, code := demo(ctx, cfg)
	return code
}

// parseDemoFlags reads the command line of `handoff demo`.
func parseDemoFlags(args []string, stderr io.Writer) (demoConfig, error) {
	var cfg demoConfig
	fs := flag.NewFlagSet("handoff demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, demoUsage); fs.PrintDefaults() }
	fs.IntVar(&cfg.Handoffs, "handoffs", 0, "swaps to perform, one of them planned to fail (default 5, 3 with --short)")
	fs.StringVar(&cfg.FailMode, "fail", defaultFailMode, "how the build planned to fail fails: "+strings.Join(demoFailModes, ", ")+" (none: no such swap)")
	fs.BoolVar(&cfg.Short, "short", false, "3 swaps and less load time, for test suites")
	fs.BoolVar(&cfg.Keep, "keep", false, "keep the temp dir (binaries, data, logs)")
	fs.BoolVar(&cfg.JSON, "json", false, "print the report as JSON on stdout (progress goes to stderr)")
	fs.BoolVar(&cfg.Verbose, "v", false, "show daemon and supervisor logs on stderr (default: a log file in the temp dir, shown on failure)")
	fs.StringVar(&cfg.KVD, "kvd", "", "use this built kvd binary instead of building examples/kvd")
	fs.BoolVar(&cfg.Strict, "strict", false, "also fail on unanswered requests (the keep-alive race at a seal, see above)")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("handoff: demo: unexpected argument %q", fs.Arg(0))
	}
	if cfg.Handoffs < 0 || cfg.Handoffs > 1000 {
		return cfg, fmt.Errorf("handoff: demo: --handoffs %d: want 1 to 1000", cfg.Handoffs)
	}
	if cfg.FailMode != "none" && !slices.Contains(demoFailModes, cfg.FailMode) {
		return cfg, fmt.Errorf("handoff: demo: --fail %q: want one of %s, or none", cfg.FailMode, strings.Join(demoFailModes, ", "))
	}
	return cfg, nil
}

// demoFailModes are the kvd --fail modes that make a successor fail its
// own swap (a mode such as seal would fail the next swap instead, once
// the build is the incumbent). never-ready rolls back at the swap
// deadline (30 s).
var demoFailModes = []string{"exit-before-ready", "unhealthy", "exit-at-start", "never-ready"}

// demoPlan is what one run does, derived from the config.
type demoPlan struct {
	handoffs int           // swaps in all
	bad      int           // 1-based index of the swap planned to fail; 0: none
	failMode string        // kvd --fail mode of that swap
	warmup   time.Duration // load before the first swap
	pause    time.Duration // load between swaps, and after the last
	load     loadConfig
}

// plan derives the run's plan. The bad swap sits in the middle, so that
// a good swap follows the rollback and shows that the next swap succeeds.
func (c demoConfig) plan() demoPlan {
	p := demoPlan{handoffs: 5, failMode: c.FailMode, warmup: 500 * time.Millisecond,
		pause: 500 * time.Millisecond, load: defaultLoad()}
	if c.Short {
		p.handoffs, p.warmup, p.pause = 3, 300*time.Millisecond, 300*time.Millisecond
		p.load = shortLoad()
	}
	if c.Handoffs > 0 {
		p.handoffs = c.Handoffs
	}
	if p.failMode == "" {
		p.failMode = defaultFailMode
	}
	if p.failMode != "none" && p.handoffs >= 2 {
		p.bad = (p.handoffs + 1) / 2
	}
	p.load.budget = p.warmup + time.Duration(p.handoffs)*(p.pause+swapDeadline) + time.Minute
	return p
}

// goodSwaps is how many swaps are planned to commit.
func (p demoPlan) goodSwaps() int {
	if p.bad > 0 {
		return p.handoffs - 1
	}
	return p.handoffs
}

// demo runs the whole demo and returns its report and exit status. It
// installs no signal handler and never exits: ctx carries an interrupt.
func demo(ctx context.Context, cfg demoConfig) (*demoReport, int) {
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	d := newDemoRun(cfg)
	err := d.run(ctx)
	code := d.verdict(ctx, err)
	d.printReport()
	return d.rep, code
}

// run sets up, runs the load and the swaps, verifies, and always cleans up.
func (d *demoRun) run(ctx context.Context) (err error) {
	defer func() { err = errors.Join(err, d.cleanup()) }()
	if err := d.setup(ctx); err != nil {
		return err
	}
	if err := d.exercise(ctx); err != nil {
		return err
	}
	return d.verify(ctx)
}

// exercise runs the load while the swaps happen, then stops the load.
func (d *demoRun) exercise(ctx context.Context) error {
	d.load = startLoad(ctx, d.plan.load, d.httpURL, d.respAddr)
	d.p.linef("load: %d HTTP writers, %d HTTP readers, %d RESP clients", d.plan.load.writers, d.plan.load.readers, d.plan.load.resp)
	err := d.swaps(ctx)
	d.load.stop()
	d.p.linef("load stopped: %s", d.load.summary())
	return err
}

// swaps performs the planned swaps with load pauses around them.
func (d *demoRun) swaps(ctx context.Context) error {
	if err := demoSleep(ctx, d.plan.warmup); err != nil {
		return err
	}
	for i := 1; i <= d.plan.handoffs; i++ {
		if err := d.handoff(ctx, i); err != nil {
			return err
		}
		d.p.linef("load: %s", d.load.summary())
		if err := demoSleep(ctx, d.plan.pause); err != nil {
			return err
		}
	}
	return nil
}

// demoSleep waits d or until ctx ends.
func demoSleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("handoff: demo: %w", ctx.Err())
	}
}
