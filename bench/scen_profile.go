package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// profileResult says where the time of a no-op swap goes.
type profileResult struct {
	Swaps     int
	FsyncBy   []fsyncGroup // fsync-family calls per swap, by file, on disk, under strace
	FsyncErr  string
	Series    series // the strace'd series (slower than normal: strace)
	CPUSwaps  int
	SelfCPU   time.Duration // supervisor (this process) CPU per swap, tmpfs series
	ChildCPU  time.Duration // CPU of the daemon generations reaped, per swap
	PprofTop  []string
	PprofErr  string
	TmpSeries series
}

// fsyncGroup is the fsync-family calls on one kind of file.
type fsyncGroup struct {
	What    string
	PerSwap float64
	Total   time.Duration // wall time of the calls, all swaps
}

func (x *bench) runProfile(ctx context.Context) (*profileResult, error) {
	res := &profileResult{Swaps: x.p.ProfileSwaps}
	if err := x.profileFsync(ctx, res); err != nil {
		res.FsyncErr = err.Error()
	}
	if err := x.profileCPU(ctx, res); err != nil {
		res.PprofErr = err.Error()
	}
	return res, nil
}

// profileFsync traces every fsync, fdatasync and sync_file_range of this
// process and its children (strace -f -y -T) while no-op swaps run with the
// journal on disk, and sums them by file.
func (x *bench) profileFsync(ctx context.Context, res *profileResult) error {
	sys, err := startOurs(ctx, x.nopd("nopd-strace", true, x.base, 1))
	if err != nil {
		return err
	}
	defer sys.Close()
	out := filepath.Join(sys.dir, "strace.txt")
	st := exec.Command("strace", "-f", "-y", "-T", "-e", "trace=fsync,fdatasync,sync_file_range",
		"-o", out, "-p", strconv.Itoa(os.Getpid()))
	st.Stderr = nil // strace reports every attach and detach there
	if err := st.Start(); err != nil {
		return fmt.Errorf("strace: %w", err)
	}
	time.Sleep(time.Second) // strace attaches to every thread
	res.Series = series{System: "handoff", Config: "nopd, no-op hooks, journal on disk, under strace",
		Recs: runSwaps(ctx, sys, res.Swaps, swapLimit(res.Swaps), nil)}
	_ = st.Process.Signal(syscall.SIGINT)
	_ = st.Wait()
	groups, err := parseFsyncs(out, sys.dir, len(res.Series.Recs))
	res.FsyncBy = groups
	return err
}

var fsyncLine = regexp.MustCompile(`(fsync|fdatasync|sync_file_range)\(\d+<([^>]*)>.*<([0-9.]+)>\s*$`)

func parseFsyncs(path, dir string, swaps int) ([]fsyncGroup, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	byWhat := map[string]*fsyncGroup{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		m := fsyncLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		what := fsyncTarget(strings.TrimPrefix(m[2], dir))
		g := byWhat[what]
		if g == nil {
			g = &fsyncGroup{What: what}
			byWhat[what] = g
		}
		secs, _ := strconv.ParseFloat(m[3], 64)
		g.Total += time.Duration(secs * float64(time.Second))
		g.PerSwap++
	}
	var out []fsyncGroup
	for _, g := range byWhat {
		g.PerSwap /= float64(max(1, swaps))
		out = append(out, *g)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Total > out[j].Total })
	return out, sc.Err()
}

// fsyncTarget names a synced file by its role; p is relative to the
// system's directory.
func fsyncTarget(p string) string {
	base := filepath.Base(p)
	switch {
	case strings.HasPrefix(base, ".journal.tmp-"):
		return "supervisor journal: temp file"
	case p == "":
		return "supervisor journal: directory, after the rename"
	case strings.HasPrefix(base, "..handoff.pid.tmp-"):
		return "data-dir lock pid file: temp file"
	case p == "/data":
		return "data-dir lock pid file: directory, after the rename"
	case base == "kvd.log":
		return "kvd log"
	}
	return p
}

// profileCPU runs no-op swaps on tmpfs (no fsync cost) under the Go CPU
// profiler and measures the CPU used per swap by the supervisor and by the
// daemon generations.
func (x *bench) profileCPU(ctx context.Context, res *profileResult) error {
	sys, err := startOurs(ctx, x.nopd("nopd-pprof", true, x.shm, 1))
	if err != nil {
		return err
	}
	pf, err := os.Create(filepath.Join(x.base, "cpu.pprof"))
	if err != nil {
		sys.Close()
		return err
	}
	self0, child0 := cpuTimes()
	if err := pprof.StartCPUProfile(pf); err != nil {
		sys.Close()
		return err
	}
	recs := runSwaps(ctx, sys, res.Swaps, swapLimit(res.Swaps), nil)
	pprof.StopCPUProfile()
	pf.Close()
	self1, child1 := cpuTimes()
	sys.Close()
	n := time.Duration(max(1, len(recs)))
	res.CPUSwaps = len(recs)
	res.SelfCPU, res.ChildCPU = (self1-self0)/n, (child1-child0)/n
	res.TmpSeries = series{System: "handoff", Config: "nopd, no-op hooks, tmpfs, CPU profile", Recs: recs}
	out, err := exec.Command("go", "tool", "pprof", "-top", "-nodecount=12", pf.Name()).Output()
	if err != nil {
		return fmt.Errorf("go tool pprof: %w", err)
	}
	res.PprofTop = pprofLines(string(out))
	return nil
}

func cpuTimes() (self, children time.Duration) {
	var s, c syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &s)
	_ = syscall.Getrusage(syscall.RUSAGE_CHILDREN, &c)
	tv := func(r syscall.Rusage) time.Duration {
		return time.Duration(r.Utime.Nano() + r.Stime.Nano())
	}
	return tv(s), tv(c)
}

func pprofLines(out string) []string {
	var keep []string
	for _, l := range strings.Split(out, "\n") {
		if strings.TrimSpace(l) != "" && !strings.HasPrefix(l, "File:") && !strings.HasPrefix(l, "Build ID:") {
			keep = append(keep, l)
		}
	}
	return keep
}
