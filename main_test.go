package handoff

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
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/handoff-go/handoff/internal/listenenv"
)

// roleEnv selects a helper role when the test binary re-executes itself:
// the test binary is the daemon.
const roleEnv = "HANDOFF_TEST_ROLE"

// roles is the registry of helper processes, by name. A role runs instead
// of the tests and its result is the exit code. Roles report on stdout, one
// line at a time, so the parent waits on real output rather than on time.
var roles = map[string]func() int{
	// detect-echo: DetectRole, then serve an echo on every inherited
	// listener (stream or datagram), print "ready", run until stdin closes.
	"detect-echo": roleDetectEcho,
	// detect-report: DetectRole, then print one detectReport line and exit.
	"detect-report": roleDetectReport,
}

// usedRoles records which roles were started, for the unused-role check.
var usedRoles sync.Map

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

// warmUpPoller makes the runtime open its lazily created descriptors (the
// epoll instance and its wake-up eventfd) before a test takes an fd
// baseline.
func warmUpPoller() {
	r, w, err := os.Pipe()
	if err == nil {
		_ = r.SetReadDeadline(time.Now())
		r.Close()
		w.Close()
	}
}

// checkAfterRun fails the run on leaked goroutines and, when every test ran,
// on roles no test used.
func checkAfterRun() int {
	if err := goleak.Find(); err != nil {
		fmt.Fprintln(os.Stderr, "goroutine leak:", err)
		return 1
	}
	if f := flag.Lookup("test.run"); f == nil || f.Value.String() != "" || testing.Short() {
		return 0
	}
	for name := range roles {
		if _, ok := usedRoles.Load(name); !ok {
			fmt.Fprintf(os.Stderr, "test role %q is never used\n", name)
			return 1
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

// startRole starts the named role with env appended to this process's
// environment (stripped of the listener contract) and extra at fd 3, 4, …;
// a cleanup kills and reaps it. The caller still owns extra.
func startRole(t *testing.T, role string, env []string, extra []*os.File) *child {
	t.Helper()
	usedRoles.Store(role, true)
	cmd := exec.Command(os.Args[0])
	// atexit_sleep_ms=0: a child built with -race exits at once instead of
	// pausing a second for late race reports; its reports still reach stderr.
	gorace := strings.TrimSpace(os.Getenv("GORACE") + " atexit_sleep_ms=0")
	cmd.Env = append(listenenv.Strip(os.Environ()), roleEnv+"="+role, "GORACE="+gorace)
	cmd.Env = append(cmd.Env, env...)
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

// line reads the child's next line of output; the deadline only turns a
// hang into a failure.
func (c *child) line(t *testing.T) string {
	t.Helper()
	_ = c.outR.SetReadDeadline(time.Now().Add(30 * time.Second))
	s, err := c.stdout.ReadString('\n')
	if err != nil {
		t.Fatalf("reading from child %d: %v (got %q)", c.cmd.Process.Pid, err, s)
	}
	return strings.TrimSuffix(s, "\n")
}

// wait closes the child's stdin, reaps it and returns its exit code.
func (c *child) wait(t *testing.T) int {
	t.Helper()
	c.stdin.Close()
	timer := time.AfterFunc(30*time.Second, func() { _ = c.cmd.Process.Kill() })
	defer timer.Stop()
	err := c.cmd.Wait()
	c.waited = true
	c.outR.Close()
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		t.Fatalf("wait for child: %v", err)
	}
	return c.cmd.ProcessState.ExitCode()
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

// checkFDs records the open descriptors now and, at cleanup (after the
// children and sockets registered later are gone), fails if the set
// changed: DESIGN invariant 6, no leaked resource.
func checkFDs(t *testing.T) {
	t.Helper()
	before := openFDs(t)
	t.Cleanup(func() {
		if after := openFDs(t); !slices.Equal(before, after) {
			t.Errorf("descriptor set changed: before %v, after %v", before, after)
		}
	})
}

// openFDs lists this process's descriptors as "fd->target".
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
