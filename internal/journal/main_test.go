package journal

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

// Environment of helper processes: the role to play and the journal path.
const (
	roleEnv = "HANDOFF_JOURNAL_TEST_ROLE"
	pathEnv = "HANDOFF_JOURNAL_TEST_PATH"
)

// roles is the registry of helper processes.
var roles = map[string]func(path string) int{
	// write-journal: write testRecord, print "written", block until stdin
	// closes (the test kills it with SIGKILL before that).
	"write-journal": func(path string) int {
		if err := Write(path, testRecord()); err != nil {
			fmt.Println("error:", err)
			return 1
		}
		fmt.Println("written")
		_, _ = io.Copy(io.Discard, os.Stdin)
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
		os.Exit(role(os.Getenv(pathEnv)))
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

// startRole starts a helper on path; the cleanup kills and reaps it. It
// returns once the helper printed want.
func startRole(t *testing.T, role, path, want string) *exec.Cmd {
	t.Helper()
	usedRoles[role] = true
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), roleEnv+"="+role, pathEnv+"="+path, "GORACE=atexit_sleep_ms=0")
	cmd.Stderr = os.Stderr
	if _, err := cmd.StdinPipe(); err != nil {
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
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		outR.Close()
	})
	_ = outR.SetReadDeadline(time.Now().Add(30 * time.Second)) // turns a hang into a failure
	line, err := bufio.NewReader(outR).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != want {
		t.Fatalf("child said %q (%v), want %q", line, err, want)
	}
	return cmd
}

// sigkillAndReap crashes the child (no deferred cleanup, no flush) and reaps it.
func sigkillAndReap(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	var exitErr *exec.ExitError
	if err := cmd.Wait(); !errors.As(err, &exitErr) {
		t.Fatalf("wait: %v, want an *exec.ExitError", err)
	}
	if ws := cmd.ProcessState.Sys().(syscall.WaitStatus); !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child status %v, want killed by SIGKILL", ws)
	}
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
