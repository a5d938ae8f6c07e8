package supervisor

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/handoff-go/handoff/internal/sysx"
)

// Environment of the supervisor child (role "supervisor"). The TESTD_*
// variables of the test are inherited by it and by its daemons.
const (
	envSupOEnv     = "TESTS_O_ENV"    // '|'-separated env of the cold-started incumbent
	envSupNEnv     = "TESTS_N_ENV"    // '|'-separated env of the successor
	envSupHold     = "TESTS_HOLD"     // handoff step (Progress.Step) to hold at
	envSupDeadline = "TESTS_DEADLINE" // SpawnSpec.Deadline
	envSupJournal  = "TESTS_JOURNAL"
	envSupLog      = "TESTS_LOG"
)

// roleSupervisor is a supervisor in its own process, so that a test can
// SIGKILL it at an exact step. It binds the listener itself (the test holds
// no copy), cold-starts an incumbent, runs one handoff, and reports on
// stdout: "listen ADDR", "incumbent PID", "event STEP DETAIL" per step,
// "outcome committed=BOOL reason=R". Before the handoff it holds at "s-go"
// (see supChild.start); at TESTS_HOLD it reports a hold "s-STEP" to the
// test's event socket and waits there. It then waits for stdin to close.
func roleSupervisor() int {
	logf, err := os.OpenFile(os.Getenv(envSupLog), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		fmt.Fprintln(os.Stderr, "supervisor child:", err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(logf, &slog.HandlerOptions{Level: slog.LevelDebug})).
		With("proc", "supervisor-child", "pid", os.Getpid())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Error("listen", "err", err)
		return 2
	}
	f, err := sysx.DupFile(ln.(*net.TCPListener), "http")
	ln.Close()
	if err != nil {
		log.Error("dup", "err", err)
		return 2
	}
	fmt.Printf("listen %s\n", ln.Addr())
	s, err := New(os.Getenv(envControl), WithListeners(Listener{Name: "http", File: f}),
		WithJournal(os.Getenv(envSupJournal)), WithLogger(log), WithStdio(logf, logf), WithDataDir(os.Getenv(envData)))
	if err != nil {
		log.Error("new", "err", err)
		return 2
	}
	return superviseOnce(s, log)
}

func superviseOnce(s *Supervisor, log *slog.Logger) int {
	self, _ := os.Executable()
	ctx := context.Background()
	cold := SpawnSpec{Binary: self, Env: append([]string{roleEnv + "=daemon"}, splitEnv(os.Getenv(envSupOEnv))...)}
	if err := s.Start(ctx, cold); err != nil {
		log.Error("start", "err", err)
		return 2
	}
	fmt.Printf("incumbent %d\n", s.Incumbent())
	hold := &daemonConfig{notify: os.Getenv(envNotify), holdSet: map[string]bool{"s-go": true}, log: log}
	if step := os.Getenv(envSupHold); step != "" {
		hold.holdSet["s-"+step] = true
	}
	hold.hold("s-go") // the test writes to the incumbent, then lets the handoff start
	deadline, _ := time.ParseDuration(os.Getenv(envSupDeadline))
	spec := SpawnSpec{Binary: self, Env: append([]string{roleEnv + "=daemon"}, splitEnv(os.Getenv(envSupNEnv))...),
		Deadline: deadline, OnEvent: func(p Progress) {
			fmt.Printf("event %s %s\n", p.Step, p.Detail)
			hold.hold("s-" + p.Step)
		}}
	out, err := s.PerformHandoff(ctx, spec)
	fmt.Printf("outcome committed=%v reason=%s err=%v\n", out.Committed, out.Reason, err)
	_, _ = io.Copy(io.Discard, os.Stdin)
	return 0
}

func splitEnv(s string) []string {
	var out []string
	for _, kv := range strings.Split(s, "|") {
		if kv != "" {
			out = append(out, kv)
		}
	}
	return out
}

// supChild is a running supervisor child, seen from the test.
type supChild struct {
	e     *testEnv
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string // closed when its stdout ends
}

type supChildOptions struct {
	oEnv, nEnv []string
	hold       string
	deadline   time.Duration
}

// startSupervisorChild starts the child and waits for its incumbent.
func (e *testEnv) startSupervisorChild(o supChildOptions) (*supChild, int) {
	e.t.Helper()
	c := e.startChild("supervisor", envSupOEnv+"="+strings.Join(o.oEnv, "|"), envSupNEnv+"="+strings.Join(o.nEnv, "|"),
		envSupHold+"="+o.hold, envSupDeadline+"="+o.deadline.String())
	var pid int
	if _, err := fmt.Sscanf(c.expect("incumbent"), "%d", &pid); err != nil {
		e.t.Fatalf("supervisor child: incumbent line: %v", err)
	}
	e.addPID(pid)
	e.events.wait(e.t, "serving", pid)
	e.expectHolderNow(pid)
	return c, pid
}

// startChild starts the test binary as a supervisor role (with the test's
// common environment, journal and log) and waits for its "listen" line.
func (e *testEnv) startChild(role string, env ...string) *supChild {
	e.t.Helper()
	cmd := exec.Command(e.self)
	cmd.Env = append(os.Environ(), append(append(e.commonEnv(), useRole(role),
		envSupJournal+"="+e.journal, envSupLog+"="+e.logPath), env...)...)
	cmd.Stderr = e.logFile
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		e.t.Fatal(err)
	}
	c := &supChild{e: e, cmd: cmd, lines: make(chan string, 100)}
	if c.stdin, err = cmd.StdinPipe(); err != nil {
		e.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	e.addPID(cmd.Process.Pid)
	go c.read(stdout)
	e.t.Cleanup(c.kill)
	e.setAddr(c.expect("listen"))
	return c
}

func (c *supChild) read(r io.Reader) {
	defer close(c.lines)
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "event spawned "); ok {
			var pid int
			if _, err := fmt.Sscanf(rest, "pid %d", &pid); err == nil {
				c.e.addPID(pid)
			}
		}
		c.lines <- line
	}
}

// expect returns the rest of the next line that starts with word.
func (c *supChild) expect(word string) string {
	c.e.t.Helper()
	timeout := time.After(waitLimit)
	for {
		select {
		case line, ok := <-c.lines:
			if !ok {
				c.e.t.Fatalf("supervisor child ended before saying %q", word)
			}
			if rest, ok := strings.CutPrefix(line, word+" "); ok {
				return rest
			}
		case <-timeout:
			c.e.t.Fatalf("supervisor child never said %q", word)
		}
	}
}

// start lets the child's handoff begin.
func (c *supChild) start() {
	c.e.events.wait(c.e.t, "s-go", c.cmd.Process.Pid).release()
}

// kill SIGKILLs the supervisor child and reaps it: a crash, nothing runs.
func (c *supChild) kill() {
	_ = c.cmd.Process.Signal(syscall.SIGKILL)
	c.stdin.Close()
	for range c.lines { // drain what it said until its stdout closes
	}
	_ = c.cmd.Wait()
}
