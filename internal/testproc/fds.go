package testproc

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"golang.org/x/sys/unix"
)

// OpenFDs lists this process's open descriptors as "fd->target", read from
// /proc/self/fd. The runtime's lazily opened descriptors (the poller's epoll
// instance and eventfd) are there from the start because [Roles.Main] opens
// them before the tests run, and the descriptor that reads the directory is
// left out.
func OpenFDs(t testing.TB) []string {
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

// CheckFDs fails t (without stopping it) if the open descriptors differ from
// baseline, taken earlier with [OpenFDs].
func CheckFDs(t testing.TB, baseline []string) {
	t.Helper()
	if now := OpenFDs(t); !slices.Equal(baseline, now) {
		t.Errorf("descriptor set changed: before %v, after %v", baseline, now)
	}
}

// CheckNoChildren fails t (without stopping it) if any child process of this
// one is left, running or unreaped. It sees every child of the process, so
// only serial tests may use it.
func CheckNoChildren(t testing.TB) {
	t.Helper()
	var info unix.Siginfo
	err := unix.Waitid(unix.P_ALL, 0, &info, unix.WEXITED|unix.WNOHANG|unix.WNOWAIT, nil)
	if !errors.Is(err, unix.ECHILD) {
		t.Errorf("a child process is left behind (waitid: %v)", err)
	}
}

// CheckLeaks records the open descriptors now and, at cleanup (after the
// children and files registered later are killed, reaped and closed), runs
// [CheckFDs] and [CheckNoChildren]. Tests using it must not run in parallel.
func CheckLeaks(t testing.TB) {
	t.Helper()
	before := OpenFDs(t)
	t.Cleanup(func() {
		CheckFDs(t, before)
		CheckNoChildren(t)
	})
}
