package sysx

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

// roleEnv selects a helper role when the test binary re-executes itself.
const roleEnv = "HANDOFF_SYSX_TEST_ROLE"

// roles is the registry of helper processes. Each prints one line when it is
// ready and then blocks until its stdin closes, so a test controls its life
// without sleeping.
var roles = map[string]func() int{
	// sleep: do nothing but be alive.
	"sleep": func() int { return readyThenBlock("ready") },
	// print-start: report the start time the child reads for itself.
	"print-start": func() int {
		st, err := ProcStartTime(os.Getpid())
		if err != nil {
			fmt.Println("error:", err)
			return 1
		}
		return readyThenBlock(fmt.Sprint(st))
	},
	// fd3-nonblock: report O_NONBLOCK of the inherited fd 3.
	"fd3-nonblock": func() int {
		f := os.NewFile(3, "inherited")
		nb, err := IsNonblock(f)
		if err != nil {
			fmt.Println("error:", err)
			return 1
		}
		return readyThenBlock(fmt.Sprintf("nonblock=%v", nb))
	},
}

var usedRoles = map[string]bool{}

func readyThenBlock(line string) int {
	fmt.Println(line)
	_, _ = io.Copy(io.Discard, os.Stdin)
	return 0
}

func TestMain(m *testing.M) {
	if name := os.Getenv(roleEnv); name != "" {
		role, ok := roles[name]
		if !ok {
			fmt.Fprintf(os.Stderr, "unknown test role %q\n", name)
			os.Exit(2)
		}
		os.Exit(role())
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

// startRole starts the named role with extra files at fd 3, ... and registers
// a cleanup that kills and reaps it.
func startRole(t *testing.T, role string, extra ...*os.File) *child {
	t.Helper()
	usedRoles[role] = true
	cmd := exec.Command(os.Args[0])
	// atexit_sleep_ms=0: a race-enabled child would otherwise linger 1 s at exit.
	cmd.Env = append(os.Environ(), roleEnv+"="+role, "GORACE=atexit_sleep_ms=0")
	cmd.ExtraFiles = extra
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

// line reads the child's next line of output; the deadline only turns a hang
// into a failure.
func (c *child) line(t *testing.T) string {
	t.Helper()
	_ = c.outR.SetReadDeadline(time.Now().Add(30 * time.Second))
	s, err := c.stdout.ReadString('\n')
	if err != nil {
		t.Fatalf("reading from child %d: %v (got %q)", c.cmd.Process.Pid, err, s)
	}
	return strings.TrimSuffix(s, "\n")
}

func (c *child) pid() int { return c.cmd.Process.Pid }

// wait reaps the child and returns its wait status.
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
