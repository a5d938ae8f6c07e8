package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"go.uber.org/goleak"
	"golang.org/x/sys/unix"
)

// bins are the programs the end-to-end tests run, built once per package
// run: the handoff command (twice: the supervisor is built with the race
// detector when the tests run with it, so the supervisor's own code runs
// under it end to end; the short-lived clients are not, because a
// race-enabled binary can take a second just to start) and the test daemon
// of testdata/daemon.
var bins struct {
	dir       string
	handoff   string // clients: upgrade, status, supervise --check
	supervise string // the long-running supervisor
	daemon    string
}

func TestMain(m *testing.M) {
	code, err := buildAndRun(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	os.Exit(code)
}

func buildAndRun(m *testing.M) (int, error) {
	dir, err := os.MkdirTemp("", "handoff-cmd-bin-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	// Traversable by every uid: the foreign-uid test runs handoff as nobody.
	if err := os.Chmod(dir, 0o755); err != nil {
		return 0, err
	}
	bins.dir = dir
	bins.handoff = filepath.Join(dir, "handoff")
	bins.supervise = filepath.Join(dir, "handoff-supervise")
	bins.daemon = filepath.Join(dir, "daemon")
	builds := []struct {
		out, pkg string
		race     bool
	}{{bins.handoff, ".", false}, {bins.supervise, ".", raceEnabled}, {bins.daemon, "./testdata/daemon", false}}
	for _, b := range builds {
		if err := goBuild(b.out, b.pkg, b.race); err != nil {
			return 0, err
		}
	}
	// Orphans of a supervisor that a failing test had to kill become our
	// children, so the cleanup can reap them.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return 0, fmt.Errorf("prctl: %w", err)
	}
	// goleak reports the code instead of exiting, so the deferred removal
	// of the build directory runs.
	before, err := openFDs()
	if err != nil {
		return 0, err
	}
	var code int
	goleak.VerifyTestMain(m, goleak.Cleanup(func(c int) { code = c }))
	if leaked := fdLeaks(before); code == 0 && leaked != "" {
		fmt.Fprintf(os.Stderr, "descriptors leaked by the tests: %s\n", leaked)
		code = 1
	}
	return code, nil
}

// openFDs lists this process's descriptors and what they point to.
func openFDs() (map[string]string, error) {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return nil, err
	}
	fds := make(map[string]string, len(entries))
	for _, e := range entries {
		target, _ := os.Readlink(filepath.Join("/proc/self/fd", e.Name()))
		fds[e.Name()] = target
	}
	return fds, nil
}

// fdLeaks describes descriptors open now that were not open before.
func fdLeaks(before map[string]string) string {
	now, err := openFDs()
	if err != nil {
		return err.Error()
	}
	var leaked []string
	for fd, target := range now {
		if before[fd] != target && !strings.HasSuffix(target, "/fd") {
			leaked = append(leaked, fd+" -> "+target)
		}
	}
	sort.Strings(leaked)
	return strings.Join(leaked, ", ")
}

// goBuild builds pkg into out.
func goBuild(out, pkg string, race bool) error {
	args := []string{"build", "-o", out}
	if race {
		args = append(args, "-race")
	}
	cmd := exec.Command("go", append(args, pkg)...)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %w\n%s", pkg, err, b)
	}
	return nil
}
