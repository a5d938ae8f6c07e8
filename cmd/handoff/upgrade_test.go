package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/handoff-go/handoff/internal/sysx"
)

// TestUpgrade_commitsOverTheTriggerSocket is the operator's path: upgrade
// prints each phase with its duration as it happens, then the outcome, and
// the new binary serves on the same socket (DESIGN section 2).
func TestUpgrade_commitsOverTheTriggerSocket(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.start(options{})
	addr := f.listenerAddr("http")
	old := f.incumbent()
	if pid, build := get(t, "tcp", addr); pid != old || build != "daemon" {
		t.Fatalf("before: served by %d (%s), incumbent %d", pid, build, old)
	}
	r := f.upgrade("--binary", f.bin("daemon-next"))
	if r.code != 0 {
		t.Fatalf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, step := range []string{"spawned", "hello", "drained", "sealed", "ready", "committed"} {
		line := regexp.MustCompile(`(?m)^  ` + step + ` +\S.*   [0-9.]+(µs|ms|s)$`)
		if !line.MatchString(r.stdout) {
			t.Errorf("no %q line with a duration in:\n%s", step, r.stdout)
		}
	}
	now := f.incumbent()
	want := fmt.Sprintf("committed: pid %d (build daemon-next, %s) serves, replacing pid %d", now, f.bin("daemon-next"), old)
	if now == old || !strings.Contains(r.stdout, want) {
		t.Fatalf("want %q in:\n%s", want, r.stdout)
	}
	if pid, build := get(t, "tcp", addr); pid != now || build != "daemon-next" {
		t.Fatalf("after: served by %d (%s), want %d (daemon-next)", pid, build, now)
	}
	f.stop()
}

// TestUpgrade_jsonPrintsEveryEvent: --json passes each event line through,
// in order, ending with the outcome.
func TestUpgrade_jsonPrintsEveryEvent(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.start(options{})
	r := f.upgrade("--json")
	if r.code != 0 {
		t.Fatalf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	var steps []string
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	for _, l := range lines[:len(lines)-1] {
		var ev progressEvent
		if err := json.Unmarshal([]byte(l), &ev); err != nil || ev.Event != "progress" {
			t.Fatalf("bad progress line %q: %v", l, err)
		}
		steps = append(steps, ev.Step)
	}
	if got := strings.Join(steps, " "); got != "spawned hello drained sealed ready committed" {
		t.Errorf("steps %q", got)
	}
	var o outcomeJSON
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &o); err != nil || o.Event != "outcome" || !o.Committed || len(o.Phases) != 6 || o.NewPID != f.incumbent() {
		t.Fatalf("outcome %+v (%v)", o, err)
	}
	f.stop()
}

// TestUpgrade_sighupSwapsToTheConfiguredBinary: SIGHUP to the supervisor
// is a swap to the configured binary; RELOADING=1 then READY=1 bracket it.
func TestUpgrade_sighupSwapsToTheConfiguredBinary(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.start(options{})
	old := f.incumbent()
	if err := f.sup.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	f.notify.waitFor(t, "RELOADING=1", f.supDone)
	f.notify.waitFor(t, "READY=1", f.supDone)
	st := f.status()
	f.track(st.Incumbent.PID)
	if st.Incumbent.PID == old || st.LastOutcome == nil || !st.LastOutcome.Committed || st.LastOutcome.Binary != f.bin("daemon") {
		t.Fatalf("after SIGHUP: incumbent %+v (was %d), last %+v", st.Incumbent, old, st.LastOutcome)
	}
	f.stop()
}

// TestUpgrade_dryRunLeavesTheIncumbentUntouched: the canary starts,
// handshakes and is stopped; the incumbent keeps serving.
func TestUpgrade_dryRunLeavesTheIncumbentUntouched(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.start(options{})
	addr := f.listenerAddr("http")
	old := f.incumbent()
	r := f.upgrade("--dry-run", "--binary", f.bin("daemon-next"), "--json")
	var o outcomeJSON
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &o); err != nil || r.code != 0 {
		t.Fatalf("exit %d, %v:\n%s%s", r.code, err, r.stdout, r.stderr)
	}
	f.track(o.NewPID)
	if !o.DryRun || o.Committed || o.OldPID != old || o.NewPID == old || o.BuildID != "daemon-next" {
		t.Fatalf("outcome %+v", o)
	}
	if sysx.Alive(o.NewPID) {
		t.Errorf("canary pid %d still alive after the dry run", o.NewPID)
	}
	if pid, _ := get(t, "tcp", addr); pid != old || f.incumbent() != old {
		t.Fatalf("incumbent changed: served by %d, want %d", pid, old)
	}
	human := f.upgrade("--dry-run")
	if human.code != 0 || !strings.Contains(human.stdout, "dry run passed") {
		t.Fatalf("exit %d:\n%s%s", human.code, human.stdout, human.stderr)
	}
	f.stop()
}

// TestUpgrade_rollbackExitsOne: a successor that dies before Hello rolls
// the swap back; upgrade says why and exits 1; the incumbent serves on.
func TestUpgrade_rollbackExitsOne(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.start(options{})
	old := f.incumbent()
	r := f.upgrade("--binary", f.bin("daemon-broken"))
	want := []string{"rolled back (successor-exited): successor pid", "went away before Hello", fmt.Sprintf("pid %d still serves", old)}
	for _, w := range want {
		if r.code != 1 || !strings.Contains(r.stdout, w) {
			t.Fatalf("exit %d, want 1 and %q in:\n%s%s", r.code, w, r.stdout, r.stderr)
		}
	}
	if pid, _ := get(t, "tcp", f.listenerAddr("http")); pid != old {
		t.Fatalf("served by %d, want %d", pid, old)
	}
	f.stop()
}

// TestUpgrade_refusals: each refusal exits 2 with the real cause and
// leaves the incumbent alone.
func TestUpgrade_refusals(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.start(options{})
	old := f.incumbent()
	cases := []struct {
		name string
		args []string
		want []string
	}{
		{"not on the allow-list", []string{"--binary", f.bin("daemon-other")}, []string{"[not-allowed]", "daemon-other", "allowed_binaries of " + f.config}},
		{"allowed but missing", []string{"--binary", f.bin("absent")}, []string{"[bad-binary]", "no such file or directory"}},
		{"not executable", []string{"--binary", f.bin("daemon-next")}, []string{"[bad-binary]", "chmod +x"}},
		{"both config and socket", []string{"--socket", f.trigger}, []string{"not both"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "not executable" {
				chmod(t, f.bin("daemon-next"), 0o644)
				defer chmod(t, f.bin("daemon-next"), 0o755)
			}
			r := f.upgrade(tc.args...)
			for _, w := range tc.want {
				if r.code != 2 || !strings.Contains(r.stderr, w) {
					t.Fatalf("exit %d, want 2 and %q in stderr:\n%s%s", r.code, w, r.stdout, r.stderr)
				}
			}
			if f.incumbent() != old {
				t.Fatal("the incumbent changed")
			}
		})
	}
	f.stop()
}

func chmod(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

// TestUpgrade_allowListFollowsLinks: a link to an allowed binary is
// allowed; the resolved file is what runs.
func TestUpgrade_allowListFollowsLinks(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.start(options{})
	link := filepath.Join(f.dir, "current")
	if err := os.Symlink(f.bin("daemon-next"), link); err != nil {
		t.Fatal(err)
	}
	r := f.upgrade("--binary", link)
	if r.code != 0 || !strings.Contains(r.stdout, "serves") {
		t.Fatalf("exit %d:\n%s%s", r.code, r.stdout, r.stderr)
	}
	if st := f.status(); st.Incumbent.Binary != f.bin("daemon-next") {
		t.Fatalf("incumbent binary %q, want the resolved %q", st.Incumbent.Binary, f.bin("daemon-next"))
	}
	f.stop()
}

// TestUpgrade_unreachableSupervisor: no supervisor: exit 2 naming the
// socket and saying the supervisor does not run.
func TestUpgrade_unreachableSupervisor(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	stale := filepath.Join(dir, "stale.sock")
	staleSocket(t, stale)
	cases := []struct{ socket, want string }{
		{filepath.Join(dir, "absent.sock"), "is `handoff supervise` running"},
		{stale, "the supervisor is not running"},
	}
	for _, tc := range cases {
		r := runHandoff(t, nil, "upgrade", "--socket", tc.socket)
		if r.code != 2 || !strings.Contains(r.stderr, tc.socket) || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("exit %d, stderr %q; want 2, the path and %q", r.code, r.stderr, tc.want)
		}
	}
}

// TestUpgrade_anotherSwapInProgress: a second swap while one runs is
// refused at once (exit 2, in-progress); the first one still commits.
func TestUpgrade_anotherSwapInProgress(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	gate := filepath.Join(f.dir, "gate")
	f.start(options{extra: fmt.Sprintf("env = { DAEMON_GATE = %q }", gate)})
	if err := unix.Mkfifo(gate, 0o600); err != nil { // after the cold start, which would wait at it
		t.Fatal(err)
	}
	first := exec.Command(bins.handoff, "upgrade", "--config", f.config, "--binary", f.bin("daemon-gated"), "--json")
	out, err := first.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	defer first.Wait()
	events := bufio.NewReader(out)
	waitStep(t, events, "spawned") // the gated successor now blocks before Hello
	r := f.upgrade()
	if r.code != 2 || !strings.Contains(r.stderr, "[in-progress]") {
		t.Fatalf("second upgrade: exit %d, stderr:\n%s", r.code, r.stderr)
	}
	openGate(t, gate)
	rest, _ := io.ReadAll(events)
	if err := first.Wait(); err != nil || !strings.Contains(string(rest), `"committed":true`) {
		t.Fatalf("first upgrade: %v\n%s", err, rest)
	}
	f.track(f.incumbent())
	f.stop()
}

// waitStep reads JSON lines until a progress event of step.
func waitStep(t *testing.T, r *bufio.Reader, step string) {
	t.Helper()
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("no %q event: %v", step, err)
		}
		var ev progressEvent
		if json.Unmarshal([]byte(line), &ev) == nil && ev.Step == step {
			return
		}
	}
}

// openGate lets a gated successor go on: opening the FIFO for writing
// waits for its reader, closing it gives the reader EOF.
func openGate(t *testing.T, gate string) {
	t.Helper()
	w, err := os.OpenFile(gate, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
}

// TestTrigger_badRequestIsRefused: the trigger protocol refuses unknown
// fields (a misspelt "dry_run" must not become a real swap) and ops.
func TestTrigger_badRequestIsRefused(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.start(options{})
	old := f.incumbent()
	for _, req := range []string{`{"op":"upgrade","dryrun":true}`, `{"op":"reboot"}`, `{"op":"upgrade","binary":"relative/kvd"}`, `not json`} {
		ev := rawTrigger(t, f.trigger, req)
		if ev.Event != "error" || ev.Code != "bad-request" {
			t.Errorf("%s: got %+v, want a bad-request error", req, ev)
		}
	}
	if f.incumbent() != old {
		t.Fatal("a bad request changed the incumbent")
	}
	f.stop()
}

// rawTrigger sends one request line and returns the final event.
func rawTrigger(t *testing.T, path, req string) errorEvent {
	t.Helper()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintln(c, req)
	var ev errorEvent
	if err := json.NewDecoder(c).Decode(&ev); err != nil {
		t.Fatal(err)
	}
	return ev
}

// TestTrigger_refusesAForeignUID: the trigger socket admits root, the
// supervisor's uid and allowed_uids (DESIGN section 8); a client of any
// other uid gets a clear refusal. Needs root to run a client as another
// uid.
func TestTrigger_refusesAForeignUID(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a trigger client under another uid")
	}
	f := newFixture(t)
	chmod(t, f.dir, 0o755) // the socket's directory must be reachable by the other uids
	f.start(options{extra: "allowed_uids = [4242]"})
	if fi, err := os.Stat(f.trigger); err != nil || fi.Mode().Perm() != 0o666 {
		t.Fatalf("trigger socket mode %v (%v), want 0666 with allowed_uids (the kernel's peer uid decides)", fi.Mode().Perm(), err)
	}
	as := func(uid uint32) *syscall.SysProcAttr {
		return &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}}
	}
	r := runHandoff(t, as(65534), "status", "--socket", f.trigger)
	for _, w := range []string{"uid 65534", "may not use this trigger socket", "allowed_uids of " + f.config, "[not-allowed]"} {
		if r.code != 2 || !strings.Contains(r.stderr, w) {
			t.Fatalf("foreign uid: exit %d, want 2 and %q in:\n%s", r.code, w, r.stderr)
		}
	}
	if r := runHandoff(t, as(4242), "status", "--socket", f.trigger); r.code != 0 {
		t.Fatalf("allowed uid: exit %d:\n%s", r.code, r.stderr)
	}
	f.stop()
}

// TestTrigger_silentFloodDoesNotLockOutTheOperator: twice as many silent
// connections as the trigger socket holds. Each one beyond the limit
// evicts the oldest connection that has not sent a request (long before
// the 30 s request timeout), and `handoff status` and `handoff upgrade`
// still work while the flood is open.
func TestTrigger_silentFloodDoesNotLockOutTheOperator(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.start(options{})
	const n = 2 * maxTriggerConns
	flood := make([]net.Conn, 0, n)
	for range n {
		c, err := net.Dial("unix", f.trigger)
		if err != nil {
			t.Fatalf("connection %d of the flood: %v", len(flood), err)
		}
		t.Cleanup(func() { c.Close() })
		flood = append(flood, c)
	}
	if st := f.status(); st.Incumbent == nil {
		t.Fatal("status during the flood: no incumbent")
	}
	evicted := 0
	for _, c := range flood {
		// Less than the request timeout: only an eviction closes it in time.
		_ = c.SetReadDeadline(time.Now().Add(requestTimeout / 3))
		if _, err := io.Copy(io.Discard, c); err == nil {
			evicted++
		}
	}
	if evicted < n-maxTriggerConns {
		t.Errorf("%d of %d silent connections were closed before the request timeout, want at least %d", evicted, n, n-maxTriggerConns)
	}
	if r := f.upgrade(); r.code != 0 {
		t.Fatalf("upgrade during the flood: exit %d\n%s", r.code, r.stderr)
	}
	f.stop()
}

// TestTrigger_busyWhenEverySlotHoldsARequest: when every connection slot
// holds a request in progress, a further client is told "busy" at once
// instead of waiting or being dropped silently.
func TestTrigger_busyWhenEverySlotHoldsARequest(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ts, err := listenTrigger(filepath.Join(dir, "trigger.sock"), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	entered := make(chan struct{}, maxTriggerConns)
	release := make(chan struct{})
	ts.admit = func(*unix.Ucred) error { return nil }
	ts.log = slog.New(slog.DiscardHandler)
	ts.handle = func(ctx context.Context, w *eventWriter, req request) {
		entered <- struct{}{}
		<-release
		w.finish(errorFor(errBadRequest))
	}
	ts.serve(context.Background())
	for range maxTriggerConns {
		c, err := net.Dial("unix", ts.path)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintln(c, `{"op":"status"}`)
	}
	for i := range maxTriggerConns {
		select {
		case <-entered:
		case <-time.After(time.Minute):
			t.Fatalf("only %d of %d requests reached the handler", i, maxTriggerConns)
		}
	}
	ev := rawTrigger(t, ts.path, `{"op":"status"}`)
	if ev.Event != "error" || ev.Code != codeBusy {
		t.Errorf("a client beyond %d requests in progress got %+v, want a %q error", maxTriggerConns, ev, codeBusy)
	}
	close(release)
	if err := ts.close(); err != nil {
		t.Fatal(err)
	}
}

// TestUpgrade_sha256Pin: `--sha256` refuses a binary whose content does
// not match (exit 2, bad-binary, the incumbent untouched) and swaps to one
// that does.
func TestUpgrade_sha256Pin(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.start(options{})
	old := f.incumbent()
	next := f.bin("daemon-next")
	r := f.upgrade("--binary", next, "--sha256", strings.Repeat("ab", 32))
	if r.code != exitError || !strings.Contains(r.stderr, "[bad-binary]") || !strings.Contains(r.stderr, "SHA-256") {
		t.Fatalf("mismatched pin: exit %d, want %d with [bad-binary] and the digests\n%s%s", r.code, exitError, r.stdout, r.stderr)
	}
	if f.incumbent() != old {
		t.Fatal("a refused pin changed the incumbent")
	}
	data, err := os.ReadFile(next)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	r = f.upgrade("--binary", next, "--sha256", hex.EncodeToString(sum[:]))
	if r.code != exitOK || !strings.Contains(r.stdout, "sha256 as pinned") {
		t.Fatalf("matching pin: exit %d, want %d and the pin in the spawned line\n%s%s", r.code, exitOK, r.stdout, r.stderr)
	}
	if f.incumbent() == old {
		t.Fatal("the pinned swap left the old incumbent serving")
	}
	f.stop()
}
