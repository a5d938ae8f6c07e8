package main

import (
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestUpgradeSupervisor_inPlace: `handoff upgrade --supervisor` replaces the
// supervisor's binary with the same pid, the very same listening socket
// (the incumbent and the supervisor share its inode before and after), the
// incumbent untouched, and no client refused meanwhile; a swap still
// commits afterwards. A new binary that fails its pre-flight run replaces
// nothing. The metrics socket is carried as well (same port, no connection
// refused), and the metrics (and the status counters) carry on from where
// they were instead of starting again at zero.
func TestUpgradeSupervisor_inPlace(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.start(options{extra: `metrics_addr = "127.0.0.1:0"`})
	addr := f.listenerAddr("http")
	if r := f.upgrade("--binary", f.bin("daemon-next")); r.code != exitOK {
		t.Fatalf("swap before the supervisor upgrade: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := f.upgrade("--binary", f.bin("daemon-broken")); r.code != exitRolledBack {
		t.Fatalf("rollback before the supervisor upgrade: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	before := f.status()
	metricsBefore := handoffSeries(t, before.MetricsAddr)
	shared := sharedSockets(t, before.SupervisorPID, before.Incumbent.PID)
	if len(shared) == 0 {
		t.Fatal("supervisor and incumbent share no socket before the upgrade")
	}
	p := startDialer(addr)
	mp := startDialer(before.MetricsAddr) // the metrics socket is carried too: never refused

	// The daemon's configured binary is no supervisor binary: only this
	// program and allowed_binaries are.
	r := f.upgrade("--supervisor", "--binary", f.bin("daemon"))
	if r.code != exitError || !strings.Contains(r.stderr, "[not-allowed]") {
		t.Fatalf("upgrade --supervisor to the daemon's binary: exit %d, want %d with [not-allowed]\n%s%s", r.code, exitError, r.stdout, r.stderr)
	}
	r = f.upgrade("--supervisor", "--binary", f.bin("daemon-broken"))
	if r.code != exitError || !strings.Contains(r.stderr, "reexec-failed") {
		t.Fatalf("upgrade to a broken supervisor binary: exit %d, want %d with reexec-failed\n%s%s", r.code, exitError, r.stdout, r.stderr)
	}
	r = f.upgrade("--supervisor")
	if r.code != exitOK || !strings.Contains(r.stdout, "supervisor upgraded in place") {
		t.Fatalf("upgrade --supervisor: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	after := f.status()
	if after.SupervisorPID != before.SupervisorPID || after.Incumbent == nil || after.Incumbent.PID != before.Incumbent.PID {
		t.Fatalf("after: supervisor %d incumbent %v, want supervisor %d incumbent %d",
			after.SupervisorPID, after.Incumbent, before.SupervisorPID, before.Incumbent.PID)
	}
	if now := sharedSockets(t, after.SupervisorPID, after.Incumbent.PID); !equalSets(now, shared) {
		t.Fatalf("shared socket inodes changed: %v, before %v", now, shared)
	}
	if after.SupervisorUpMS < before.SupervisorUpMS {
		t.Errorf("supervisor uptime %v ms after the upgrade, %v ms before: it counts from the process's start, which the exec keeps", after.SupervisorUpMS, before.SupervisorUpMS)
	}
	if after.MetricsAddr != before.MetricsAddr {
		t.Errorf("metrics served on %s after the supervisor upgrade, %s before: the socket was not carried", after.MetricsAddr, before.MetricsAddr)
	}
	if n, failed := mp.stop(); n == 0 || len(failed) > 0 {
		t.Errorf("%d of %d connections to the metrics socket failed across the upgrade: %v", len(failed), n, failed)
	}
	if after.Counters != before.Counters {
		t.Errorf("status counters %+v after the supervisor upgrade, %+v before", after.Counters, before.Counters)
	}
	if got := handoffSeries(t, after.MetricsAddr); !slices.Equal(got, metricsBefore) {
		t.Errorf("handoff_* metrics after the supervisor upgrade:\n%s\nbefore:\n%s", strings.Join(got, "\n"), strings.Join(metricsBefore, "\n"))
	}
	if r := f.upgrade("--binary", f.bin("daemon-next")); r.code != exitOK {
		t.Fatalf("swap after the supervisor upgrade: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if n, failed := p.stop(); n == 0 || len(failed) > 0 {
		t.Fatalf("%d of %d connections failed: %v", len(failed), n, failed)
	}
	f.stop()
}

// handoffSeries returns the handoff_* samples of a /metrics page, one
// line each, in the exposition's order.
func handoffSeries(t *testing.T, addr string) []string {
	t.Helper()
	if addr == "" {
		t.Fatal("status names no metrics address")
	}
	var out []string
	for line := range strings.Lines(scrape(t, "http://"+addr+"/metrics")) {
		if strings.HasPrefix(line, "handoff_") {
			out = append(out, strings.TrimSpace(line))
		}
	}
	if len(out) == 0 {
		t.Fatal("no handoff_* metrics on /metrics")
	}
	return out
}

// sharedSockets lists the socket inodes both processes hold.
func sharedSockets(t *testing.T, a, b int) map[string]bool {
	t.Helper()
	sa, sb := socketInodes(t, a), socketInodes(t, b)
	out := map[string]bool{}
	for ino := range sa {
		if sb[ino] {
			out[ino] = true
		}
	}
	return out
}

func socketInodes(t *testing.T, pid int) map[string]bool {
	t.Helper()
	dir := filepath.Join("/proc", strconv.Itoa(pid), "fd")
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, e := range ents {
		if link, err := os.Readlink(filepath.Join(dir, e.Name())); err == nil && strings.HasPrefix(link, "socket:") {
			out[link] = true
		}
	}
	return out
}

func equalSets(a, b map[string]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if !b[k] {
			return false
		}
	}
	return true
}

// dialer connects to addr every few milliseconds and counts failures (a
// listening socket that closed would refuse).
type dialer struct {
	stopc chan struct{}
	done  sync.WaitGroup
	mu    sync.Mutex
	n     int
	fails []string
}

func startDialer(addr string) *dialer {
	d := &dialer{stopc: make(chan struct{})}
	d.done.Add(1)
	go func() {
		defer d.done.Done()
		for {
			c, err := net.DialTimeout("tcp", addr, 10*time.Second)
			d.mu.Lock()
			d.n++
			if err != nil {
				d.fails = append(d.fails, err.Error())
			} else {
				c.Close()
			}
			d.mu.Unlock()
			select {
			case <-d.stopc:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	return d
}

func (d *dialer) stop() (int, []string) {
	close(d.stopc)
	d.done.Wait()
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.n, d.fails
}
