package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/handoff-go/handoff/internal/sysx"
	"github.com/handoff-go/handoff/supervisor"
)

// Budgets of the demo's swaps and of its supervisor's shutdown.
const (
	swapDeadline   = 30 * time.Second
	swapDrainGrace = 10 * time.Second
	stopGrace      = 10 * time.Second
	startBudget    = 30 * time.Second
)

// demoRun is one run of the demo: its plan, what it set up, and the
// report it fills in.
type demoRun struct {
	cfg  demoConfig
	plan demoPlan
	p    *demoPrinter
	rep  *demoReport

	dir      string // the temp dir
	kvd      string // the built kvd binary
	dataDir  string
	logPath  string
	logFile  *os.File
	httpURL  string
	respAddr string

	sup     *supervisor.Supervisor
	crashes *demoCrashCounter
	runStop context.CancelFunc // ends sup.Run
	runDone chan struct{}
	load    *demoLoad

	lastCommitted string // build id of the last committed generation
}

func newDemoRun(cfg demoConfig) *demoRun {
	progress := cfg.Out
	if cfg.JSON {
		progress = cfg.Log
	}
	plan := cfg.plan()
	return &demoRun{cfg: cfg, plan: plan, p: newDemoPrinter(progress),
		rep: newDemoReport(plan), crashes: &demoCrashCounter{}}
}

// setup makes the temp dir, builds kvd, binds the listeners and cold-starts
// generation 0 under a supervisor.
func (d *demoRun) setup(ctx context.Context) error {
	dir, err := os.MkdirTemp("", "handoff-demo-")
	if err != nil {
		return fmt.Errorf("handoff: demo: temp dir: %w", err)
	}
	d.dir, d.rep.TempDir, d.rep.dir = dir, dir, dir
	d.dataDir = filepath.Join(dir, "data")
	if err := os.Mkdir(d.dataDir, 0o700); err != nil {
		return fmt.Errorf("handoff: demo: %w", err)
	}
	d.p.linef("temp dir %s (%s)", dir, demoKeepNote(d.cfg.Keep))
	if err := d.prepareKVD(ctx); err != nil {
		return err
	}
	if err := d.openLog(); err != nil {
		return err
	}
	if err := d.startSupervisor(); err != nil {
		return err
	}
	return d.coldStart(ctx)
}

func demoKeepNote(keep bool) string {
	if keep {
		return "kept at the end"
	}
	return "removed at the end; --keep keeps it"
}

// openLog opens the file the daemons and the supervisor log to (unless
// -v sends their logs to the terminal).
func (d *demoRun) openLog() error {
	d.logPath = filepath.Join(d.dir, "daemon.log")
	f, err := os.OpenFile(d.logPath, os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("handoff: demo: log file: %w", err)
	}
	d.logFile = f
	return nil
}

// logSinks returns where the supervisor logs and where daemons write.
func (d *demoRun) logSinks() (io.Writer, *os.File) {
	if d.cfg.Verbose {
		if f, ok := d.cfg.Log.(*os.File); ok {
			return f, f
		}
		return io.MultiWriter(d.logFile, d.cfg.Log), d.logFile
	}
	return d.logFile, d.logFile
}

// startSupervisor binds the two loopback listeners and creates the
// in-process supervisor that owns them.
func (d *demoRun) startSupervisor() error {
	httpL, err := demoBindListener("http")
	if err != nil {
		return err
	}
	respL, err := demoBindListener("resp")
	if err != nil {
		httpL.l.File.Close()
		return err
	}
	d.httpURL, d.respAddr = "http://"+httpL.addr, respL.addr
	logW, stdio := d.logSinks()
	logger := slog.New(d.crashes.wrap(slog.NewTextHandler(logW, nil)))
	d.sup, err = supervisor.New(filepath.Join(d.dir, "control.sock"),
		supervisor.WithListeners(httpL.l, respL.l),
		supervisor.WithLogger(logger),
		supervisor.WithStdio(stdio, stdio),
		supervisor.WithJournal(filepath.Join(d.dir, "handoff.journal")),
		supervisor.WithDataDir(d.dataDir))
	if err != nil {
		httpL.l.File.Close()
		respL.l.File.Close()
		return fmt.Errorf("handoff: demo: %w", err)
	}
	return nil
}

// demoListener is a supervisor listener and its address.
type demoListener struct {
	l    supervisor.Listener
	addr string
}

// demoBindListener binds 127.0.0.1:0 and keeps only a duplicate of the socket
// made by sysx.DupFile: net's File and Fd would switch the socket to
// blocking mode under every daemon that inherits it.
func demoBindListener(name string) (demoListener, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return demoListener{}, fmt.Errorf("handoff: demo: listen for %s: %w", name, err)
	}
	defer ln.Close()
	f, err := sysx.DupFile(ln.(*net.TCPListener), name)
	if err != nil {
		return demoListener{}, fmt.Errorf("handoff: demo: listener %s: %w", name, err)
	}
	return demoListener{supervisor.Listener{Name: name, File: f}, ln.Addr().String()}, nil
}

// coldStart starts generation 0, keeps the supervisor running it (restarts
// after a crash, which the report counts), and waits until it serves.
func (d *demoRun) coldStart(ctx context.Context) error {
	bin, err := d.genBinary(0)
	if err != nil {
		return err
	}
	build := demoBuildID(0, false)
	if err := d.sup.Start(ctx, supervisor.SpawnSpec{Binary: bin, Args: d.kvdArgs(build, "")}); err != nil {
		return fmt.Errorf("handoff: demo: cold start of kvd: %w", err)
	}
	runCtx, cancel := context.WithCancel(ctx) // an interrupt ends restarts at once
	d.runStop, d.runDone = cancel, make(chan struct{})
	go func() {
		defer close(d.runDone)
		_ = d.sup.Run(runCtx)
	}()
	st, err := demoWaitServing(ctx, d.httpURL, build, startBudget)
	if err != nil {
		return err
	}
	d.lastCommitted = build
	d.p.linef("kvd pid %d (build %s) serves HTTP on %s and RESP on %s", st.PID, st.BuildID, d.httpURL, d.respAddr)
	return nil
}

// kvdArgs are kvd's arguments for one generation.
func (d *demoRun) kvdArgs(build, fail string) []string {
	args := []string{"--data", d.dataDir, "--control", d.sup.ControlSocket(), "--build-id", build}
	if fail != "" {
		args = append(args, "--fail", fail)
	}
	return args
}

// demoBuildID names generation n; a build planned to fail says so.
func demoBuildID(n int, bad bool) string {
	if bad {
		return fmt.Sprintf("gen-%d-broken", n)
	}
	return fmt.Sprintf("gen-%d", n)
}

// cleanup stops the load, the supervisor and every daemon, closes the
// sockets, and removes the temp dir (unless --keep). It is safe to call
// after a partial setup.
func (d *demoRun) cleanup() error {
	if d.load != nil {
		d.load.stop()
	}
	d.stopSupervisor()
	if d.logFile != nil {
		d.rep.logTail = demoTail(d.logPath, 40)
		d.logFile.Close()
	}
	if d.dir == "" || d.cfg.Keep {
		return nil
	}
	if err := os.RemoveAll(d.dir); err != nil {
		return fmt.Errorf("handoff: demo: remove temp dir: %w", err)
	}
	d.rep.TempDir = ""
	return nil
}

// stopSupervisor ends Run (no restart from here on), stops the incumbent
// and any old generation (SIGTERM, then SIGKILL), and closes the sockets.
func (d *demoRun) stopSupervisor() {
	if d.sup == nil {
		return
	}
	if d.runStop != nil {
		d.runStop()
		<-d.runDone
	}
	d.sup.Stop(stopGrace)
	_ = d.sup.Close()
	d.sup = nil
}

// demoCrashCounter records the supervisor's crash events (an incumbent
// that exited on its own): the demo expects none.
type demoCrashCounter struct {
	mu   sync.Mutex
	pids []int64
}

// count returns the crash events, leaving out those of incumbents that a
// committed swap replaced: they exit on Commit, and the supervisor may
// see that exit before it has promoted the successor.
func (c *demoCrashCounter) count(replaced map[int]bool) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, pid := range c.pids {
		if !replaced[int(pid)] {
			n++
		}
	}
	return n
}

func (c *demoCrashCounter) wrap(h slog.Handler) slog.Handler { return demoCrashHandler{h, c} }

// demoCrashHandler passes records on and records handoff.crash warnings.
type demoCrashHandler struct {
	slog.Handler
	c *demoCrashCounter
}

// Handle records a crash event's pid and logs the record.
func (h demoCrashHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == "handoff.crash" && r.Level == slog.LevelWarn {
		pid := int64(-1)
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "pid" {
				pid = a.Value.Int64()
			}
			return a.Key != "pid"
		})
		h.c.mu.Lock()
		h.c.pids = append(h.c.pids, pid)
		h.c.mu.Unlock()
	}
	return h.Handler.Handle(ctx, r)
}

// WithAttrs keeps recording on the derived handler.
func (h demoCrashHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return demoCrashHandler{h.Handler.WithAttrs(as), h.c}
}

// WithGroup keeps recording on the derived handler.
func (h demoCrashHandler) WithGroup(name string) slog.Handler {
	return demoCrashHandler{h.Handler.WithGroup(name), h.c}
}

// demoTail returns the last n lines of a file ("" if unreadable).
func demoTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
