package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"time"

	"github.com/handoff-go/handoff/supervisor"
)

// oursOpts describes a daemon run under the in-process supervisor.
type oursOpts struct {
	name      string
	binary    string
	extraArgs []string
	listeners []string // names, in fd order
	journal   bool     // the supervisor keeps a journal (as `handoff supervise` does)
	base      string   // directory for data, sockets and journal
	prefill   func(dataDir string) error
}

// ours is a daemon under an in-process supervisor (package supervisor):
// exact per-phase timings, and the supervisor's own resources are this
// process's.
type ours struct {
	o       oursOpts
	dir     string
	dataDir string
	sup     *supervisor.Supervisor
	spec    supervisor.SpawnSpec
	addrs   map[string]string
	logf    *os.File
}

func startOurs(ctx context.Context, o oursOpts) (*ours, error) {
	dir, err := os.MkdirTemp(o.base, o.name+"-")
	if err != nil {
		return nil, err
	}
	s := &ours{o: o, dir: dir, dataDir: filepath.Join(dir, "data"), addrs: map[string]string{}}
	if err := os.Mkdir(s.dataDir, 0o755); err != nil {
		return nil, err
	}
	if o.prefill != nil {
		if err := o.prefill(s.dataDir); err != nil {
			return nil, err
		}
	}
	if s.logf, err = os.Create(filepath.Join(dir, "log")); err != nil {
		return nil, err
	}
	if err := s.startSupervisor(ctx); err != nil {
		s.logf.Close()
		return nil, err
	}
	return s, nil
}

func (s *ours) startSupervisor(ctx context.Context) error {
	var ls []supervisor.Listener
	for _, name := range s.o.listeners {
		f, addr, err := listenDup(name)
		if err != nil {
			return err
		}
		ls = append(ls, supervisor.Listener{Name: name, File: f})
		s.addrs[name] = addr
	}
	ctrl := filepath.Join(s.dir, "control.sock")
	opts := []supervisor.Option{
		supervisor.WithListeners(ls...), supervisor.WithStdio(s.logf, s.logf),
		supervisor.WithLogger(slog.New(slog.NewTextHandler(s.logf, nil))),
		supervisor.WithDataDir(s.dataDir),
	}
	if s.o.journal {
		opts = append(opts, supervisor.WithJournal(filepath.Join(s.dir, "journal")))
	}
	sup, err := supervisor.New(ctrl, opts...)
	if err != nil {
		return err
	}
	s.sup = sup
	args := append([]string{"--data", s.dataDir, "--control", ctrl}, s.o.extraArgs...)
	s.spec = supervisor.SpawnSpec{Binary: s.o.binary, Args: args, Deadline: 60 * time.Second, DrainGrace: 25 * time.Second}
	cctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := sup.Start(cctx, s.spec); err != nil {
		sup.Close()
		return fmt.Errorf("bench: %s: cold start: %w", s.o.name, err)
	}
	if addr := s.HTTPAddr(); addr != "" {
		return waitHealthy(addr, 30*time.Second)
	}
	return nil
}

func (s *ours) Name() string     { return "handoff" }
func (s *ours) HTTPAddr() string { return s.addrs["http"] }
func (s *ours) RESPAddr() string { return s.addrs["resp"] }

// Swap runs one handoff and waits until the old incumbent has exited.
func (s *ours) Swap(ctx context.Context) swapRec {
	old := s.sup.Incumbent()
	pfd := pidfd(old)
	rec := swapRec{Start: time.Now()}
	out, err := s.sup.PerformHandoff(ctx, s.spec)
	rec.Ready = time.Since(rec.Start)
	rec.Total = out.Total
	for _, p := range out.Phases {
		rec.Phases = append(rec.Phases, phaseDur{Name: p.Phase, D: p.Duration})
	}
	rec.OK = err == nil && out.Committed
	if !rec.OK {
		rec.Err = fmt.Sprintf("%v (reason %s)", err, out.Reason)
		if pfd >= 0 {
			closeFD(pfd)
		}
		return rec
	}
	if werr := waitPidfd(pfd, 30*time.Second); werr != nil {
		rec.Err = fmt.Sprintf("old incumbent %d: %v", old, werr)
	}
	rec.OldGone = time.Since(rec.Start)
	return rec
}

// incumbentRes is the current incumbent's resource use.
func (s *ours) incumbentRes() (int, procRes) {
	pid := s.sup.Incumbent()
	return pid, readProcRes(pid)
}

// Close stops the incumbent gracefully (drain, seal, exit) and releases the
// listening sockets.
func (s *ours) Close() error {
	s.sup.Stop(30 * time.Second)
	err := s.sup.Close()
	for i := 0; i < 100 && len(s.sup.Draining()) > 0; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	s.logf.Close()
	return err
}

// selfRes is this process's resource use: the in-process supervisor's
// (plus the harness's own, which is idle when it is sampled).
func selfRes() procRes {
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	r := readProcRes(os.Getpid())
	r.Goroutines = runtime.NumGoroutine()
	r.HeapKiB = int64(ms.HeapAlloc / 1024)
	return r
}

var errTooManyFailures = errors.New("bench: too many failed swaps in a row")
