package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cliSys is kvd under the real program: `handoff supervise --config F`,
// swapped by running `handoff upgrade --json --config F`.
type cliSys struct {
	handoff string
	dir     string
	cfgPath string
	dataDir string
	addrs   map[string]string
	metrics string
	cmd     *exec.Cmd
	logf    *os.File
	incPID  int
	exited  chan struct{}
}

func writeCLIConfig(path, kvd, dir string, addrs map[string]string, metrics string) error {
	data := filepath.Join(dir, "data")
	ctrl := filepath.Join(dir, "control.sock")
	cfg := fmt.Sprintf(`control_socket = %q
trigger_socket = %q
binary = %q
args = ["--data", %q, "--control", %q, "--build-id", "bench-kvd"]
data_dir = %q
journal = %q
metrics_addr = %q

[[listener]]
name = "http"
network = "tcp"
address = %q

[[listener]]
name = "resp"
network = "tcp"
address = %q
`, ctrl, filepath.Join(dir, "trigger.sock"), kvd, data, ctrl, data, filepath.Join(dir, "journal"),
		metrics, addrs["http"], addrs["resp"])
	return os.WriteFile(path, []byte(cfg), 0o644)
}

func startCLI(b binaries, base string) (*cliSys, error) {
	dir, err := os.MkdirTemp(base, "cli-")
	if err != nil {
		return nil, err
	}
	s := &cliSys{handoff: b.Handoff, dir: dir, cfgPath: filepath.Join(dir, "handoff.toml"),
		dataDir: filepath.Join(dir, "data"), addrs: map[string]string{}, exited: make(chan struct{})}
	if err := os.Mkdir(s.dataDir, 0o755); err != nil {
		return nil, err
	}
	for _, name := range []string{"http", "resp", "metrics"} {
		if s.addrs[name], err = freeAddr(); err != nil {
			return nil, err
		}
	}
	s.metrics = s.addrs["metrics"]
	if err := writeCLIConfig(s.cfgPath, b.KVD, dir, s.addrs, s.metrics); err != nil {
		return nil, err
	}
	if s.logf, err = os.Create(filepath.Join(dir, "log")); err != nil {
		return nil, err
	}
	s.cmd = exec.Command(b.Handoff, "supervise", "--config", s.cfgPath)
	s.cmd.Stdout, s.cmd.Stderr = s.logf, s.logf
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { _ = s.cmd.Wait(); close(s.exited) }()
	if err := waitHealthy(s.HTTPAddr(), 30*time.Second); err != nil {
		s.Close()
		return nil, err
	}
	s.incPID = kvdPID(s.HTTPAddr())
	return s, nil
}

func (s *cliSys) Name() string     { return "handoff (CLI)" }
func (s *cliSys) HTTPAddr() string { return s.addrs["http"] }
func (s *cliSys) RESPAddr() string { return s.addrs["resp"] }

// kvdPID asks kvd's /stats for its pid.
func kvdPID(addr string) int {
	c := oneShotClient(2 * time.Second)
	resp, err := c.Get("http://" + addr + "/stats")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	var v struct{ PID int }
	if json.NewDecoder(resp.Body).Decode(&v) != nil {
		return 0
	}
	return v.PID
}

// cliOutcome is the last line `handoff upgrade --json` prints.
type cliOutcome struct {
	Event     string  `json:"event"`
	Committed bool    `json:"committed"`
	NewPID    int     `json:"new_pid"`
	Reason    string  `json:"reason"`
	Cause     string  `json:"cause"`
	Error     string  `json:"error"`
	TotalMS   float64 `json:"total_ms"`
	Phases    []struct {
		Phase  string  `json:"phase"`
		TookMS float64 `json:"took_ms"`
	} `json:"phases"`
}

// Swap runs `handoff upgrade --json`; Ready is measured around the whole
// command (its own start-up included), the phases come from its output.
func (s *cliSys) Swap(ctx context.Context) swapRec {
	old := s.incPID
	pfd := pidfd(old)
	rec := swapRec{Start: time.Now()}
	cctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(cctx, s.handoff, "upgrade", "--json", "--config", s.cfgPath).Output()
	rec.Ready = time.Since(rec.Start)
	o, perr := lastOutcome(out)
	rec.Total = time.Duration(o.TotalMS * float64(time.Millisecond))
	for _, p := range o.Phases {
		rec.Phases = append(rec.Phases, phaseDur{Name: p.Phase, D: time.Duration(p.TookMS * float64(time.Millisecond))})
	}
	if err != nil || perr != nil || !o.Committed {
		rec.Err = fmt.Sprintf("upgrade: %v %v %s %s %s", err, perr, o.Reason, o.Cause, o.Error)
		closeFD(pfd)
		return rec
	}
	if werr := waitPidfd(pfd, 30*time.Second); werr != nil {
		rec.Err = fmt.Sprintf("old incumbent %d: %v", old, werr)
		return rec
	}
	rec.OldGone = time.Since(rec.Start)
	s.incPID = o.NewPID
	rec.OK = true
	return rec
}

func lastOutcome(out []byte) (cliOutcome, error) {
	var o cliOutcome
	lines := bytes.Split(bytes.TrimSpace(out), []byte("\n"))
	if len(lines) == 0 {
		return o, fmt.Errorf("bench: no output from handoff upgrade")
	}
	err := json.Unmarshal(lines[len(lines)-1], &o)
	return o, err
}

// supRes is the supervisor program's resources: /proc for RSS and fds, its
// /metrics for goroutines.
func (s *cliSys) supRes() procRes {
	r := readProcRes(s.cmd.Process.Pid)
	if v, ok := scrapeMetric(s.metrics, "go_goroutines"); ok {
		r.Goroutines = int(v)
	}
	return r
}

const cliWarmSwaps = 3

// scrapeMetric reads one unlabelled metric from a /metrics endpoint,
// retrying for up to 2 s.
func scrapeMetric(addr, name string) (float64, bool) {
	c := oneShotClient(2 * time.Second)
	resp, err := c.Get("http://" + addr + "/metrics")
	for i := 0; err != nil && i < 20; i++ {
		time.Sleep(100 * time.Millisecond)
		resp, err = c.Get("http://" + addr + "/metrics")
	}
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			return v, err == nil
		}
	}
	return 0, false
}

// Close stops the supervisor with SIGTERM (it stops kvd gracefully first).
func (s *cliSys) Close() error {
	defer s.logf.Close()
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
		return nil
	case <-time.After(45 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
		return fmt.Errorf("bench: handoff supervise did not stop within 45 s")
	}
}

// cliResult is the run through the real program.
type cliResult struct {
	Load       loadResult
	SupStart   procRes
	SupEnd     procRes
	ClientCost summary // spawn of `handoff upgrade` and its trigger round trip: client time − supervisor's total
}

func (x *bench) runCLI(ctx context.Context) (*cliResult, error) {
	s, err := startCLI(x.b, x.base)
	if err != nil {
		return nil, err
	}
	// A few swaps before the first sample, so that start and end compare a
	// supervisor that has already run swaps (and served /metrics).
	for i := 0; i < cliWarmSwaps; i++ {
		if r := s.Swap(ctx); !r.OK {
			s.Close()
			return nil, fmt.Errorf("bench: warm-up swap through the CLI: %s", r.Err)
		}
	}
	res := &cliResult{SupStart: s.supRes()}
	sys := &cliProbe{cliSys: s, res: res}
	res.Load = x.runLoad(ctx, sys, modeKeepAlive, x.p.CLISwaps, s.dataDir)
	var cost []time.Duration
	for _, r := range res.Load.Series.ok() {
		cost = append(cost, r.Ready-r.Total)
	}
	res.ClientCost = summarize(cost)
	return res, nil
}

// cliProbe samples the supervisor's resources before it is stopped.
type cliProbe struct {
	*cliSys
	res *cliResult
}

func (c *cliProbe) Close() error {
	time.Sleep(100 * time.Millisecond)
	c.res.SupEnd = c.supRes()
	return c.cliSys.Close()
}
