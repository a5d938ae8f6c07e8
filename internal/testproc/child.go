package testproc

import (
	"bufio"
	"errors"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Deadline bounds every wait on a child. It is generous: its only job is to
// turn a hang into a failure, never to synchronise.
const Deadline = 30 * time.Second

// Spec is what a child gets besides its role.
type Spec struct {
	// Env is appended to the child's environment, after the role variable
	// and GORACE. Nil adds nothing.
	Env []string
	// ExtraFiles become the child's fd 3, 4, … as in [exec.Cmd.ExtraFiles].
	// The caller still owns them. Nil passes none.
	ExtraFiles []*os.File
}

// Child is a running (or reaped) helper role. Its stdin is a pipe that
// [Child.Wait] closes, so a role that blocks reading stdin lives exactly as
// long as the test wants; its stderr is the test's. Use it from the test
// goroutine only.
type Child struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout *bufio.Reader
	outR   *os.File
	status syscall.WaitStatus
	reaped bool
}

// Start starts the named role of r: this test binary re-executed with the
// role variable, GORACE=atexit_sleep_ms=0 (a child built with -race exits at
// once instead of pausing a second for late race reports, which still reach
// stderr) and spec. A cleanup kills and reaps the child and closes the read
// end of its stdout, so a test that fails early leaves nothing behind.
func (r *Roles) Start(t testing.TB, role string, spec Spec) *Child {
	t.Helper()
	if !r.lookup(role) {
		t.Fatalf("unknown test role %q", role)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	environ := os.Environ
	if r.Environ != nil {
		environ = r.Environ
	}
	cmd := exec.Command(self)
	gorace := strings.TrimSpace(os.Getenv("GORACE") + " atexit_sleep_ms=0")
	cmd.Env = append(environ(), r.envVar+"="+role, "GORACE="+gorace)
	cmd.Env = append(cmd.Env, spec.Env...)
	cmd.ExtraFiles = spec.ExtraFiles
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
	c := &Child{cmd: cmd, stdin: stdin, stdout: bufio.NewReader(outR), outR: outR}
	t.Cleanup(func() {
		c.Kill()
		c.outR.Close()
	})
	return c
}

// Pid returns the child's process id, which stays valid (as a number) after
// the child is reaped.
func (c *Child) Pid() int { return c.cmd.Process.Pid }

// Signal sends sig to the child; it fails the test if the child is already
// reaped.
func (c *Child) Signal(t testing.TB, sig os.Signal) {
	t.Helper()
	if err := c.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal %v to child %d: %v", sig, c.Pid(), err)
	}
}

// Line returns the child's next line of output without its newline; it fails
// the test at EOF or after [Deadline].
func (c *Child) Line(t testing.TB) string {
	t.Helper()
	_ = c.outR.SetReadDeadline(time.Now().Add(Deadline))
	s, err := c.stdout.ReadString('\n')
	if err != nil {
		t.Fatalf("reading from child %d: %v (got %q)", c.Pid(), err, s)
	}
	return strings.TrimSuffix(s, "\n")
}

// Expect reads the child's next line and fails the test unless it is want.
func (c *Child) Expect(t testing.TB, want string) {
	t.Helper()
	if got := c.Line(t); got != want {
		t.Fatalf("child %d said %q, want %q", c.Pid(), got, want)
	}
}

// Output returns the rest of the child's output, up to EOF: everything it
// wrote and nobody read yet once it is dead, whether or not it is reaped. It
// fails the test if EOF does not come within [Deadline].
func (c *Child) Output(t testing.TB) string {
	t.Helper()
	_ = c.outR.SetReadDeadline(time.Now().Add(Deadline))
	b, err := io.ReadAll(c.stdout)
	if err != nil {
		t.Fatalf("reading the output of child %d: %v (got %q)", c.Pid(), err, b)
	}
	return string(b)
}

// Wait closes the child's stdin, reaps it and returns its wait status. A
// child that is still alive after [Deadline] is killed, so a hang ends as a
// failure.
func (c *Child) Wait(t testing.TB) syscall.WaitStatus {
	t.Helper()
	if c.reaped {
		return c.status
	}
	c.stdin.Close()
	timer := time.AfterFunc(Deadline, func() { _ = c.cmd.Process.Kill() })
	defer timer.Stop()
	err := c.reap()
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		t.Fatalf("wait for child %d: %v", c.Pid(), err)
	}
	return c.status
}

// Kill kills the child with SIGKILL, unless it is reaped already, reaps it
// and returns its wait status. It always reaps, so it is what the cleanup
// runs; the child's unread output stays readable with [Child.Output].
func (c *Child) Kill() syscall.WaitStatus {
	if !c.reaped {
		_ = c.cmd.Process.Kill()
		_ = c.reap()
	}
	return c.status
}

// Crash kills the child with SIGKILL (a crash: no deferred cleanup, no
// flush, no release), reaps it and fails the test unless SIGKILL is what
// ended it.
func (c *Child) Crash(t testing.TB) {
	t.Helper()
	c.Signal(t, syscall.SIGKILL)
	if ws := c.Wait(t); !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child %d wait status %v, want killed by SIGKILL", c.Pid(), ws)
	}
}

// reap waits for the child and records its status.
func (c *Child) reap() error {
	err := c.cmd.Wait()
	c.reaped = true
	if c.cmd.ProcessState != nil {
		c.status = c.cmd.ProcessState.Sys().(syscall.WaitStatus)
	}
	return err
}
