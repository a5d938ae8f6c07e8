package supervisor

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/handoff-go/handoff/internal/sysx"
)

// The supervisor's self-upgrade (issue 6): Reexec keeps the pid, the very
// same listening socket and the incumbent; a binary that fails its
// pre-flight run replaces nothing; a binary that rejects the carried state
// execs the previous one back.

const (
	envReexecReject    = "TESTX_REJECT"         // the exec'd image rejects the carried state once
	envReexecPreflight = "TESTX_PREFLIGHT_FAIL" // the pre-flight run refuses
)

func init() {
	roles["supervisor-reexec"] = roleSupervisorReexec
}

// roleSupervisorReexec is a supervisor that upgrades itself on command. It
// reports "listen ADDR", then "state PID INCUMBENT INODE" after every start
// (fresh or carried), and answers stdin lines: "reexec", "reexec-false",
// "reexec-reject", "reexec-reject-late", "swap".
func roleSupervisorReexec() int {
	if IsPreflight() {
		if os.Getenv(envReexecPreflight) == "1" {
			fmt.Fprintln(os.Stderr, "pre-flight refused")
			return 1
		}
		return 0
	}
	logf, _ := os.OpenFile(os.Getenv(envSupLog), os.O_WRONLY|os.O_APPEND, 0)
	log := slog.New(slog.NewTextHandler(logf, nil)).With("proc", "supervisor-reexec", "pid", os.Getpid())
	opts := []Option{WithJournal(os.Getenv(envSupJournal)), WithLogger(log), WithStdio(logf, logf)}
	s, err := reexecSupervisor(log, opts)
	if err != nil {
		fmt.Printf("error %v\n", err)
		return 2
	}
	reportState(s)
	return reexecCommands(s, log)
}

func reexecSupervisor(log *slog.Logger, opts []Option) (*Supervisor, error) {
	c, err := InheritedState()
	if c != nil && (err != nil || os.Getenv(envReexecReject) == "1") {
		os.Unsetenv(envReexecReject)
		fmt.Println("rejecting")
		return nil, c.ExecBack(os.Args, fmt.Errorf("test asked to reject: %v", err))
	}
	if c != nil && os.Getenv(envReexecReject) == "late" {
		// Rebuild from the state first (claiming every carried
		// descriptor), then reject it, as a binary does that fails later
		// in its start-up.
		os.Unsetenv(envReexecReject)
		if _, err := c.Supervisor(opts...); err != nil {
			return nil, err
		}
		fmt.Println("rejecting late")
		return nil, c.ExecBack(os.Args, errors.New("test asked to reject after taking the state"))
	}
	if c != nil {
		return c.Supervisor(opts...)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	f, err := sysx.DupFile(ln.(*net.TCPListener), "http")
	ln.Close()
	if err != nil {
		return nil, err
	}
	fmt.Printf("listen %s\n", ln.Addr())
	s, err := New(os.Getenv(envControl), append(opts, WithListeners(Listener{Name: "http", File: f}))...)
	if err != nil {
		return nil, err
	}
	return s, s.Start(context.Background(), reexecDaemonSpec())
}

func reexecDaemonSpec() SpawnSpec {
	self, _ := os.Executable()
	return SpawnSpec{Binary: self, Env: []string{roleEnv + "=daemon", envBuild + "=reexec"}}
}

func reportState(s *Supervisor) {
	var ino uint64
	if fi, err := s.ListenerFile("http").Stat(); err == nil {
		ino = fi.Sys().(*syscall.Stat_t).Ino
	}
	fmt.Printf("state %d %d %d\n", os.Getpid(), s.Incumbent(), ino)
}

func reexecCommands(s *Supervisor, log *slog.Logger) int {
	self, _ := os.Executable()
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		switch sc.Text() {
		case "reexec":
			fmt.Printf("reexec-error %v\n", s.Reexec(self, os.Args, os.Environ(), nil))
		case "reexec-false":
			fmt.Printf("reexec-error %v\n", s.Reexec(self, os.Args, append(os.Environ(), envReexecPreflight+"=1"), nil))
		case "reexec-reject":
			fmt.Printf("reexec-error %v\n", s.Reexec(self, os.Args, append(os.Environ(), envReexecReject+"=1"), nil))
		case "reexec-reject-late":
			fmt.Printf("reexec-error %v\n", s.Reexec(self, os.Args, append(os.Environ(), envReexecReject+"=late"), nil))
		case "swap":
			out, err := s.PerformHandoff(context.Background(), reexecDaemonSpec())
			fmt.Printf("outcome committed=%v pid=%d err=%v\n", out.Committed, out.NewPID, err)
		}
	}
	s.Stop(10 * time.Second)
	return 0
}

func TestReexec_samePIDSocketAndIncumbent(t *testing.T) {
	e := newTestEnv(t, envOptions{noListener: true})
	c := e.startChild("supervisor-reexec")
	var pid, inc, ino int
	mustScan(t, c.expect("state"), &pid, &inc, &ino)
	e.addPID(inc)
	l := e.startLoad("reexec", 4)
	p := startProber(e.addr)

	// A binary that fails its pre-flight run replaces nothing.
	c.send("reexec-false")
	if got := c.expect("reexec-error"); got == "<nil>" {
		t.Fatalf("Reexec into a failing binary reported success")
	}
	// The upgrade proper, then one whose new image rejects the state and
	// execs the previous binary back, and one whose new image rejects it
	// only after taking it over: each time the same pid, the same socket,
	// the same incumbent.
	for _, cmd := range []string{"reexec", "reexec-reject", "reexec-reject-late"} {
		c.send(cmd)
		var pid2, inc2, ino2 int
		mustScan(t, c.expect("state"), &pid2, &inc2, &ino2)
		if pid2 != pid || inc2 != inc || ino2 != ino {
			t.Fatalf("%s: supervisor pid/incumbent/socket inode %d/%d/%d, want %d/%d/%d", cmd, pid2, inc2, ino2, pid, inc, ino)
		}
		e.expectServedBy(inc)
	}
	// The carried supervisor still swaps.
	c.send("swap")
	out := c.expect("outcome")
	var newPID int
	if _, err := fmt.Sscanf(out, "committed=true pid=%d", &newPID); err != nil {
		t.Fatalf("swap after self-upgrade: %s", out)
	}
	e.addPID(newPID)
	e.expectServedBy(newPID)
	e.expectClean(l)
	e.expectNeverRefused(p)
	e.checkAcked()
	c.stdin.Close()
	if err := c.cmd.Wait(); err != nil {
		t.Errorf("supervisor exit: %v", err)
	}
}

func (c *supChild) send(line string) {
	if _, err := fmt.Fprintln(c.stdin, line); err != nil {
		c.e.t.Fatalf("supervisor child: %v", err)
	}
}

func mustScan(t *testing.T, s string, ptrs ...any) {
	t.Helper()
	format := ""
	for range ptrs {
		format += "%d "
	}
	if _, err := fmt.Sscanf(s, format, ptrs...); err != nil {
		t.Fatalf("parse %q: %v", s, err)
	}
}
