package flock

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/sys/unix"
)

// Environment of helper processes: the role to play and the data directory.
const (
	roleEnv = "HANDOFF_FLOCK_TEST_ROLE"
	dirEnv  = "HANDOFF_FLOCK_TEST_DIR"
)

// roles is the registry of helper processes. Each prints one line and, where
// it keeps running, blocks until its stdin closes, so a test controls its
// life without sleeping.
var roles = map[string]func(dir string) int{
	// hold-lock: acquire, print "locked", hold until stdin closes, release.
	"hold-lock": func(dir string) int {
		l, err := Acquire(dir)
		if err != nil {
			fmt.Println("error:", err)
			return 1
		}
		fmt.Println("locked")
		_, _ = io.Copy(io.Discard, os.Stdin)
		return exitCode(l.Release())
	},
	// try-lock: print "locked" (then release) or "held", and exit.
	"try-lock": func(dir string) int {
		l, err := Acquire(dir)
		switch {
		case errors.Is(err, ErrLockHeld):
			fmt.Println("held")
			return 0
		case err != nil:
			fmt.Println("error:", err)
			return 1
		}
		fmt.Println("locked")
		return exitCode(l.Release())
	},
	// sleep: print "ready" and live until stdin closes.
	"sleep": func(string) int {
		fmt.Println("ready")
		_, _ = io.Copy(io.Discard, os.Stdin)
		return 0
	},
}

var usedRoles = map[string]bool{}

func exitCode(err error) int {
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

func TestMain(m *testing.M) {
	if name := os.Getenv(roleEnv); name != "" {
		role, ok := roles[name]
		if !ok {
			fmt.Fprintf(os.Stderr, "unknown test role %q\n", name)
			os.Exit(2)
		}
		os.Exit(role(os.Getenv(dirEnv)))
	}
	warmUpPoller()
	code := m.Run()
	if code == 0 {
		code = checkAfterRun()
	}
	os.Exit(code)
}

// warmUpPoller makes the runtime create its lazily opened descriptors (the
// epoll instance and its wake-up eventfd) before any test takes an fd baseline.
func warmUpPoller() {
	r, w, err := os.Pipe()
	if err == nil {
		_ = r.SetReadDeadline(time.Now())
		r.Close()
		w.Close()
	}
}

func checkAfterRun() int {
	if err := goleak.Find(); err != nil {
		fmt.Fprintln(os.Stderr, "goroutine leak:", err)
		return 1
	}
	if f := flag.Lookup("test.run"); f != nil && f.Value.String() == "" {
		for name := range roles {
			if !usedRoles[name] {
				fmt.Fprintf(os.Stderr, "test role %q is never used\n", name)
				return 1
			}
		}
	}
	return 0
}

// child is a running helper role.
type child struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout *bufio.Reader
	outR   *os.File
	waited bool
}

// startRole starts the named role on dir and registers a cleanup that kills
// and reaps it.
func startRole(t *testing.T, role, dir string) *child {
	t.Helper()
	usedRoles[role] = true
	cmd := exec.Command(os.Args[0])
	// atexit_sleep_ms=0: a race-enabled child would otherwise linger 1 s at exit.
	cmd.Env = append(os.Environ(), roleEnv+"="+role, dirEnv+"="+dir, "GORACE=atexit_sleep_ms=0")
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = outW
	err = cmd.Start()
	outW.Close()
	if err != nil {
		outR.Close()
		t.Fatal(err)
	}
	c := &child{cmd: cmd, stdin: stdin, stdout: bufio.NewReader(outR), outR: outR}
	t.Cleanup(c.kill)
	return c
}

// expect reads the child's next line and fails unless it is want; the
// deadline only turns a hang into a failure.
func (c *child) expect(t *testing.T, want string) {
	t.Helper()
	_ = c.outR.SetReadDeadline(time.Now().Add(30 * time.Second))
	s, err := c.stdout.ReadString('\n')
	if err != nil {
		t.Fatalf("reading from child %d: %v (got %q, want %q)", c.pid(), err, s, want)
	}
	if got := strings.TrimSuffix(s, "\n"); got != want {
		t.Fatalf("child %d said %q, want %q", c.pid(), got, want)
	}
}

func (c *child) pid() int { return c.cmd.Process.Pid }

// wait closes the child's stdin, reaps it and returns its wait status.
func (c *child) wait(t *testing.T) syscall.WaitStatus {
	t.Helper()
	c.stdin.Close()
	err := c.cmd.Wait()
	c.waited = true
	c.outR.Close()
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		t.Fatalf("wait for child: %v", err)
	}
	return c.cmd.ProcessState.Sys().(syscall.WaitStatus)
}

// sigkill kills the child with SIGKILL (a crash: no release, no cleanup) and
// reaps it.
func (c *child) sigkill(t *testing.T) {
	t.Helper()
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if ws := c.wait(t); !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child wait status %v, want killed by SIGKILL", ws)
	}
}

func (c *child) kill() {
	if c.waited {
		return
	}
	_ = c.cmd.Process.Kill()
	_ = c.cmd.Wait()
	c.waited = true
	c.outR.Close()
}

// checkLeaks records the open descriptors now and, at cleanup (after the
// children registered later are killed and reaped), fails if the set changed
// or if any child process is left, running or unreaped. Tests using it must
// not run in parallel.
func checkLeaks(t *testing.T) {
	t.Helper()
	before := openFDs(t)
	t.Cleanup(func() {
		if after := openFDs(t); !slices.Equal(before, after) {
			t.Errorf("descriptor set changed: before %v, after %v", before, after)
		}
		var info unix.Siginfo
		err := unix.Waitid(unix.P_ALL, 0, &info, unix.WEXITED|unix.WNOHANG|unix.WNOWAIT, nil)
		if !errors.Is(err, unix.ECHILD) {
			t.Errorf("a child process is left behind (waitid: %v)", err)
		}
	})
}

func openFDs(t *testing.T) []string {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	var fds []string
	for _, e := range ents {
		target, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name()))
		if err != nil {
			continue // the descriptor ReadDir itself used
		}
		fds = append(fds, e.Name()+"->"+target)
	}
	return fds
}
