package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/handoff-go/handoff/internal/testproc"
	"github.com/handoff-go/handoff/supervisor"
)

// demoLimit turns a hung demo into a failure; it is no timing threshold.
const demoLimit = 5 * time.Minute

// TestDemo_shortRunKeepsEveryInvariant runs the demo as `handoff demo
// --short` does (issue 5), in process, and checks its report: 3 swaps of
// which the middle one is a broken build that must roll back; under
// concurrent HTTP and RESP load no acknowledged write is lost, no read is
// stale and no request fails (DESIGN section 3, invariants 3, 4 and 6).
func TestDemo_shortRunKeepsEveryInvariant(t *testing.T) {
	fds := testproc.OpenFDs(t)
	ctx, cancel := context.WithTimeout(context.Background(), demoLimit)
	defer cancel()
	var out demoBuffer
	rep, code := demo(ctx, demoConfig{Short: true, Out: &out, Log: &out})
	t.Logf("demo output:\n%s", out.String())
	if code != exitOK || !rep.Passed {
		t.Fatalf("exit %d, passed %v, failures %q", code, rep.Passed, rep.Failures)
	}
	checkDemoCounts(t, rep)
	checkDemoSwaps(t, rep)
	checkDemoCleanedUp(t, rep)
	testproc.CheckFDs(t, fds) // invariant 6: nothing leaked over the demo
}

// checkDemoCounts asserts the report's counts.
func checkDemoCounts(t *testing.T, rep *demoReport) {
	t.Helper()
	for _, c := range []struct {
		name      string
		got, want int64
	}{
		{"handoffs planned", int64(rep.HandoffsPlanned), 3},
		{"committed", int64(rep.Committed), 2},
		{"rolled back", int64(rep.RolledBack), 1},
		{"lost writes", int64(rep.LostWrites), 0},
		{"stale reads", int64(rep.StaleReads), 0},
		{"unreadable writes", int64(rep.VerifyErrors), 0},
		{"HTTP failed", rep.HTTP.Failed, 0},
		{"unanswered writes that were applied", int64(rep.UnansweredApplied), 0},
		{"unanswered writes all read back", int64(rep.UnansweredApplied + rep.UnansweredNotApplied), int64(rep.UnansweredWrites)},
		{"RESP failed", rep.RESP.Failed, 0},
		{"refused", rep.HTTP.FailedBy["refused"] + rep.RESP.FailedBy["refused"], 0},
		{"incumbent crashes", int64(rep.Crashes), 0},
		{"acked writes = HTTP + RESP writes", int64(rep.AckedWrites), rep.HTTP.Writes + rep.RESP.Writes},
	} {
		if c.got != c.want {
			t.Errorf("%s: %d, want %d", c.name, c.got, c.want)
		}
	}
	if n := rep.HTTP.Unanswered + rep.RESP.Unanswered; n > 0 {
		t.Logf("%d requests unanswered at a seal (the keep-alive race; not failures unless --strict)", n)
	}
	if rep.HTTP.Writes == 0 || rep.HTTP.Reads == 0 || rep.RESP.Writes == 0 || rep.RESP.Reads == 0 {
		t.Errorf("load did not exercise every path: HTTP %+v, RESP %+v", rep.HTTP, rep.RESP)
	}
}

// checkDemoSwaps asserts how each swap ended and which build served after.
func checkDemoSwaps(t *testing.T, rep *demoReport) {
	t.Helper()
	if len(rep.Swaps) != 3 {
		t.Fatalf("%d swaps reported, want 3", len(rep.Swaps))
	}
	want := []struct {
		committed bool
		serving   string
	}{{true, "gen-1"}, {false, "gen-1"}, {true, "gen-3"}}
	for i, s := range rep.Swaps {
		if s.Committed != want[i].committed || s.ServingBuild != want[i].serving {
			t.Errorf("swap %d: committed %v serving %q, want %v serving %q (reason %q)",
				s.Index, s.Committed, s.ServingBuild, want[i].committed, want[i].serving, s.Reason)
		}
	}
	if bad := rep.Swaps[1]; bad.Reason != "successor-exited" || bad.BuildID != "gen-2-broken" {
		t.Errorf("the broken build rolled back with reason %q, build %q; want successor-exited, gen-2-broken", bad.Reason, bad.BuildID)
	}
	if rep.FinalBuild != "gen-3" || rep.ExpectedBuild != "gen-3" {
		t.Errorf("final build %q (expected %q), want gen-3", rep.FinalBuild, rep.ExpectedBuild)
	}
	if len(rep.Phases) == 0 || rep.Phases[0].Phase != "spawned" || rep.Phases[0].Count != 3 {
		t.Errorf("phase summary %+v, want spawned first, for 3 swaps", rep.Phases)
	}
}

// checkDemoCleanedUp asserts that every daemon generation was reaped and
// the temp dir removed.
func checkDemoCleanedUp(t *testing.T, rep *demoReport) {
	t.Helper()
	for _, pid := range demoPIDs(rep) {
		if err := unix.Kill(pid, 0); !errors.Is(err, unix.ESRCH) {
			t.Errorf("daemon pid %d still exists after the demo (kill 0: %v)", pid, err)
		}
	}
	if rep.dir == "" {
		t.Fatal("report names no temp dir")
	}
	if _, err := os.Stat(rep.dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temp dir %s not removed: %v", rep.dir, err)
	}
}

func demoPIDs(rep *demoReport) []int {
	pids := []int{rep.FinalPID}
	for _, s := range rep.Swaps {
		pids = append(pids, s.OldPID, s.NewPID)
	}
	return pids
}

// TestDemo_interruptCleansUp sends SIGINT to a running `handoff demo`
// (the built command) in the middle of its swaps: it must exit 130 and
// leave no daemon and no temp dir behind (issue 5: "cleans up after
// itself, also on Ctrl-C").
func TestDemo_interruptCleansUp(t *testing.T) {
	cmd := exec.Command(bins.handoff, "demo", "--handoffs", "50", "--kvd", demoKVD(t))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr demoBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	hang := time.AfterFunc(demoLimit, func() { _ = cmd.Process.Kill() })
	defer hang.Stop()
	dir, seen := demoWaitForSwap(stdout, "swap 2/50:")
	if !strings.Contains(seen, "swap 2/50:") {
		rest, _ := io.ReadAll(stdout)
		t.Fatalf("the demo ended before its second swap: %v\nstdout:\n%s%s\nstderr:\n%s", cmd.Wait(), seen, rest, stderr.String())
	}
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	rest, _ := io.ReadAll(stdout)
	err = cmd.Wait()
	output := seen + string(rest)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != exitInterrupted {
		t.Fatalf("exit %v, want %d\nstdout:\n%s\nstderr:\n%s", err, exitInterrupted, output, stderr.String())
	}
	if !strings.Contains(output, "INTERRUPTED") {
		t.Errorf("report does not say it was interrupted:\n%s", output)
	}
	checkNothingLeft(t, dir)
}

// demoWaitForSwap reads progress lines until one starts with marker and
// returns the temp dir the first lines name, and what it read.
func demoWaitForSwap(r io.Reader, marker string) (dir, seen string) {
	re := regexp.MustCompile(`temp dir (\S+) `)
	sc := bufio.NewScanner(r)
	var b strings.Builder
	for sc.Scan() {
		line := sc.Text()
		b.WriteString(line + "\n")
		if m := re.FindStringSubmatch(line); m != nil {
			dir = m[1]
		}
		if strings.Contains(line, marker) {
			break
		}
	}
	return dir, b.String()
}

// checkNothingLeft asserts that the temp dir is gone and that no process
// runs a binary from it.
func checkNothingLeft(t *testing.T, dir string) {
	t.Helper()
	if dir == "" {
		t.Fatal("the demo did not name its temp dir")
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temp dir %s not removed: %v", dir, err)
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err == nil && bytes.Contains(b, []byte(dir)) {
			t.Errorf("process %s still runs from the demo's temp dir: %q", filepath.Dir(p), b)
		}
	}
}

// demoKVD builds kvd once for the tests that run the handoff binary.
func demoKVD(t *testing.T) string {
	t.Helper()
	demoKVDOnce.Do(func() {
		out := filepath.Join(bins.dir, "kvd")
		cmd := exec.Command("go", "build", "-o", out, "../../examples/kvd")
		if b, err := cmd.CombinedOutput(); err != nil {
			demoKVDErr = errors.New(string(b))
			return
		}
		demoKVDPath = out
	})
	if demoKVDErr != nil {
		t.Fatalf("build kvd: %v", demoKVDErr)
	}
	return demoKVDPath
}

var (
	demoKVDOnce sync.Once
	demoKVDPath string
	demoKVDErr  error
)

// TestDemo_jsonReport runs the built command with --json and checks that
// stdout is exactly one JSON report that passed (the form tools read).
func TestDemo_jsonReport(t *testing.T) {
	cmd := exec.Command(bins.handoff, "demo", "--short", "--json", "--kvd", demoKVD(t))
	var stdout, stderr demoBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	hang := time.AfterFunc(demoLimit, func() { _ = cmd.Process.Kill() })
	defer hang.Stop()
	if err := cmd.Run(); err != nil {
		t.Fatalf("handoff demo --json: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	var rep struct {
		Passed     bool   `json:"passed"`
		Committed  int    `json:"committed"`
		RolledBack int    `json:"rolled_back"`
		LostWrites int    `json:"lost_writes"`
		FinalBuild string `json:"final_build_id"`
		HTTP       struct {
			Failed   int64            `json:"failed"`
			FailedBy map[string]int64 `json:"failed_by_class"`
		} `json:"http"`
	}
	if err := json.Unmarshal([]byte(stdout.String()), &rep); err != nil {
		t.Fatalf("stdout is not a JSON report: %v\n%s", err, stdout.String())
	}
	if !rep.Passed || rep.Committed != 2 || rep.RolledBack != 1 || rep.LostWrites != 0 || rep.FinalBuild != "gen-3" ||
		rep.HTTP.Failed != 0 || len(rep.HTTP.FailedBy) != int(numFailClasses) {
		t.Errorf("report %+v", rep)
	}
	if !strings.Contains(stderr.String(), "swap 2/3: ROLLED BACK") {
		t.Errorf("progress on stderr lacks the rollback line:\n%s", stderr.String())
	}
}

// TestDemo_plan checks how flags become a plan: the broken build sits in
// the middle so that a good swap follows the rollback.
func TestDemo_plan(t *testing.T) {
	for _, tc := range []struct {
		name          string
		cfg           demoConfig
		handoffs, bad int
		good          int
		failMode      string
	}{
		{"default", demoConfig{}, 5, 3, 4, "exit-before-ready"},
		{"short", demoConfig{Short: true}, 3, 2, 2, "exit-before-ready"},
		{"no rollback", demoConfig{FailMode: "none"}, 5, 0, 5, "none"},
		{"one swap cannot roll back", demoConfig{Handoffs: 1}, 1, 0, 1, "exit-before-ready"},
		{"ten, unhealthy", demoConfig{Handoffs: 10, FailMode: "unhealthy"}, 10, 5, 9, "unhealthy"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.cfg.plan()
			if p.handoffs != tc.handoffs || p.bad != tc.bad || p.goodSwaps() != tc.good || p.failMode != tc.failMode {
				t.Errorf("plan: %d swaps, bad #%d, %d good, mode %q; want %d, #%d, %d, %q",
					p.handoffs, p.bad, p.goodSwaps(), p.failMode, tc.handoffs, tc.bad, tc.good, tc.failMode)
			}
			if p.load.maxOps <= 0 || p.load.budget <= 0 {
				t.Errorf("load unbounded: %+v", p.load)
			}
		})
	}
}

// TestDemo_flags checks the command line: bad values are refused.
func TestDemo_flags(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		ok   bool
	}{
		{"none", nil, true},
		{"all", []string{"--handoffs", "7", "--short", "--fail", "unhealthy", "--keep", "--json", "-v", "--strict", "--kvd", "/bin/true"}, true},
		{"negative", []string{"--handoffs", "-1"}, false},
		{"argument", []string{"now"}, false},
		{"unknown flag", []string{"--fast"}, false},
		{"fail mode of the incumbent", []string{"--fail", "seal"}, false},
		{"no failing swap", []string{"--fail", "none"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseDemoFlags(tc.args, io.Discard)
			if (err == nil) != tc.ok {
				t.Errorf("parseDemoFlags(%q): %v, want ok %v", tc.args, err, tc.ok)
			}
		})
	}
}

// TestDemo_respCodec checks the RESP client's encoder and decoder against
// hand-written wire bytes.
func TestDemo_respCodec(t *testing.T) {
	if got := string(appendCommand(nil, "SET", "k", "")); got != "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n" {
		t.Errorf("appendCommand: %q", got)
	}
	for _, tc := range []struct {
		wire string
		want respReply
		err  bool
	}{
		{"+OK\r\n", respReply{kind: '+', text: "OK"}, false},
		{"-ERR sealed\r\n", respReply{kind: '-', text: "ERR sealed"}, false},
		{":42\r\n", respReply{kind: ':', text: "42"}, false},
		{"$5\r\nhello\r\n", respReply{kind: '$', text: "hello"}, false},
		{"$0\r\n\r\n", respReply{kind: '$'}, false},
		{"$-1\r\n", respReply{kind: '$', null: true}, false},
		{"$5\r\nhelloXX", respReply{}, true},
		{"$3\r\nab", respReply{}, true},
		{"*1\r\n", respReply{}, true},
		{"+OK\n", respReply{}, true},
		{"", respReply{}, true},
	} {
		got, err := readReply(bufio.NewReader(strings.NewReader(tc.wire)))
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("readReply(%q) = %+v, %v; want %+v, error %v", tc.wire, got, err, tc.want, tc.err)
		}
	}
}

// TestDemo_classifyFailure checks how request errors are sorted.
func TestDemo_classifyFailure(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want failClass
	}{
		{&os.SyscallError{Syscall: "connect", Err: syscall.ECONNREFUSED}, failRefused},
		{&os.SyscallError{Syscall: "read", Err: syscall.ECONNRESET}, failReset},
		{&os.SyscallError{Syscall: "write", Err: syscall.EPIPE}, failReset},
		{io.EOF, failEOF},
		{io.ErrUnexpectedEOF, failEOF},
		{errors.New("http: server closed idle connection"), failEOF},
		{context.DeadlineExceeded, failTimeout},
		{errors.New("something else"), failOther},
	} {
		if got := classifyFailure(tc.err); got != tc.want {
			t.Errorf("classifyFailure(%v) = %s, want %s", tc.err, failClassNames[got], failClassNames[tc.want])
		}
	}
}

// TestDemo_phaseSummary checks the median and max per phase.
func TestDemo_phaseSummary(t *testing.T) {
	r := &demoReport{}
	for _, d := range []time.Duration{3, 1, 2, 10} {
		r.Swaps = append(r.Swaps, &swapResult{phases: []supervisor.PhaseDuration{{Phase: "drained", Duration: d * time.Millisecond}}})
	}
	r.summarizePhases()
	want := []phaseSummary{{Phase: "drained", Count: 4, MedianMS: 2.5, MaxMS: 10}}
	if !slices.Equal(r.Phases, want) {
		t.Errorf("phases %+v, want %+v", r.Phases, want)
	}
}

// demoBuffer is a bytes.Buffer safe for concurrent writers.
type demoBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (b *demoBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns what was written.
func (b *demoBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
