package crashpoint

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	"go.uber.org/goleak"
	"golang.org/x/sys/unix"
)

// Environment of helper processes: the role to play and the point to hit.
const (
	roleEnv  = "HANDOFF_CRASHPOINT_TEST_ROLE"
	pointEnv = "HANDOFF_CRASHPOINT_TEST_POINT"
)

// roles is the registry of helper processes.
var roles = map[string]func() int{
	// hit: call Hit at the point named in pointEnv, then say "survived".
	"hit": func() int {
		Hit(Point(os.Getenv(pointEnv)))
		fmt.Println("survived")
		return 0
	},
}

var usedRoles = map[string]bool{}

func TestMain(m *testing.M) {
	if name := os.Getenv(roleEnv); name != "" {
		role, ok := roles[name]
		if !ok {
			fmt.Fprintf(os.Stderr, "unknown test role %q\n", name)
			os.Exit(2)
		}
		os.Exit(role())
	}
	code := m.Run()
	if code == 0 {
		code = checkAfterRun()
	}
	os.Exit(code)
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

// hitCommand prepares the hit role at point p with extra environment. The
// cleanup kills and reaps it in case the test fails before it does.
func hitCommand(t *testing.T, p Point, env ...string) *exec.Cmd {
	t.Helper()
	usedRoles["hit"] = true
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), roleEnv+"=hit", pointEnv+"="+string(p), "GORACE=atexit_sleep_ms=0")
	cmd.Env = append(cmd.Env, env...)
	cmd.Stderr = os.Stderr
	t.Cleanup(func() {
		if cmd.Process != nil && cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	return cmd
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
