package supervisor

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/handoff-go/handoff/internal/journal"
	"github.com/handoff-go/handoff/internal/sysx"
)

// testEnv is one test's world: a short directory for sockets (Unix socket
// paths are limited to 108 bytes), the data directory, the control socket
// path, the journal, one log file every process of the test appends to, the
// event server, the listening socket, and the checks run at the end.
type testEnv struct {
	t       *testing.T
	dir     string
	data    string
	ctl     string
	journal string
	logPath string
	logFile *os.File
	events  *eventServer
	tag     string
	self    string // the test binary

	lnFile  *os.File // the test's own copy, closed once a supervisor owns a dup
	addr    string
	lnInode uint64

	holders *holderMonitor
	client  *kvClient

	mu   sync.Mutex
	pids []int // every daemon pid the test learned about
	sups []*Supervisor
}

type envOptions struct {
	// noListener: the listening socket is bound by a supervisor child, not
	// by the test (the test must hold no copy of it).
	noListener bool
}

func newTestEnv(t *testing.T, o envOptions) *testEnv {
	t.Helper()
	dir, err := os.MkdirTemp("", "hs")
	if err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	e := &testEnv{t: t, dir: dir, data: filepath.Join(dir, "data"), ctl: filepath.Join(dir, "ctl.sock"),
		journal: filepath.Join(dir, "journal"), logPath: filepath.Join(dir, "test.log"),
		tag: fmt.Sprintf("%s-%d", filepath.Base(dir), time.Now().UnixNano()), self: self}
	if err := os.Mkdir(e.data, 0o700); err != nil {
		t.Fatal(err)
	}
	e.logFile, err = os.OpenFile(e.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	t.Cleanup(e.finalChecks)
	e.events = newEventServer(t, filepath.Join(dir, "ev.sock"))
	if !o.noListener {
		e.bindListener()
	}
	e.holders = startHolderMonitor(e.data)
	return e
}

func (e *testEnv) bindListener() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		e.t.Fatal(err)
	}
	f, err := sysx.DupFile(ln.(*net.TCPListener), "http")
	ln.Close() // the dup keeps the kernel socket; its owner is the supervisor
	if err != nil {
		e.t.Fatal(err)
	}
	e.lnFile, e.addr = f, ln.Addr().String()
	if fi, err := f.Stat(); err == nil {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			e.lnInode = st.Ino
		}
	}
	e.client = newKVClient(e.addr)
}

// setAddr is for tests whose listener a supervisor child bound.
func (e *testEnv) setAddr(addr string) {
	e.addr = addr
	e.client = newKVClient(addr)
}

// logger is the in-process supervisor's logger, into the test's log file.
func (e *testEnv) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(e.logFile, &slog.HandlerOptions{Level: slog.LevelDebug})).
		With("proc", "supervisor", "pid", os.Getpid())
}

// commonEnv is what every process of the test gets.
func (e *testEnv) commonEnv() []string {
	return []string{envData + "=" + e.data, envControl + "=" + e.ctl, envNotify + "=" + e.events.ln.Addr().String(),
		envTag + "=" + e.tag}
}

// daemonSpec spawns the test daemon with build id build and extra env.
func (e *testEnv) daemonSpec(build string, extra ...string) SpawnSpec {
	env := append(e.commonEnv(), useRole("daemon"), envBuild+"="+build)
	return SpawnSpec{Binary: e.self, Env: append(env, extra...), OnEvent: e.onEvent}
}

// rawSuccessorSpec spawns a successor that breaks the protocol as mode says.
func (e *testEnv) rawSuccessorSpec(mode string) SpawnSpec {
	env := append(e.commonEnv(), useRole("raw-successor"), envRawMode+"="+mode)
	return SpawnSpec{Binary: e.self, Env: env, OnEvent: e.onEvent}
}

// onEvent records the pid of every spawned successor, so the end checks
// can prove it is gone.
func (e *testEnv) onEvent(p Progress) {
	if p.Step != "spawned" {
		return
	}
	var pid int
	if _, err := fmt.Sscanf(p.Detail, "pid %d", &pid); err == nil {
		e.addPID(pid)
	}
}

func (e *testEnv) addPID(pids ...int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, pid := range pids {
		if pid > 0 && !slices.Contains(e.pids, pid) {
			e.pids = append(e.pids, pid)
		}
	}
}

// newSupervisor makes an in-process supervisor over the test's listener.
// The supervisor gets its own duplicate; the test keeps none.
func (e *testEnv) newSupervisor(opts ...Option) *Supervisor {
	e.t.Helper()
	base := []Option{WithJournal(e.journal), WithLogger(e.logger()), WithStdio(e.logFile, e.logFile),
		WithDataDir(e.data)}
	if e.lnFile != nil {
		base = append(base, WithListeners(Listener{Name: "http", File: e.lnFile}))
		e.lnFile = nil
	}
	s, err := New(e.ctl, append(base, opts...)...)
	if err != nil {
		e.t.Fatal(err)
	}
	e.mu.Lock()
	e.sups = append(e.sups, s)
	e.mu.Unlock()
	return s
}

// coldStart starts the first incumbent and returns its pid.
func (e *testEnv) coldStart(s *Supervisor, build string, extra ...string) int {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if err := s.Start(ctx, e.daemonSpec(build, extra...)); err != nil {
		e.t.Fatalf("cold start: %v", err)
	}
	pid := s.Incumbent()
	e.addPID(pid)
	e.events.wait(e.t, "serving", pid)
	e.expectHolderNow(pid)
	return pid
}

// handoff runs one handoff to the test daemon.
func (e *testEnv) handoff(s *Supervisor, spec SpawnSpec) (Outcome, error) {
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	out, err := s.PerformHandoff(ctx, spec)
	e.addPID(out.OldPID, out.NewPID)
	return out, err
}

// mustCommit runs a handoff that must commit, and returns the new pid.
func (e *testEnv) mustCommit(s *Supervisor, spec SpawnSpec) int {
	e.t.Helper()
	out, err := e.handoff(s, spec)
	if err != nil || !out.Committed {
		e.t.Fatalf("handoff did not commit: %v (outcome %+v)", err, out)
	}
	if s.Incumbent() != out.NewPID {
		e.t.Fatalf("supervisor's incumbent is %d, committed successor %d", s.Incumbent(), out.NewPID)
	}
	e.expectHolderNow(out.NewPID) // N holds the lock from Begin on (step 6)
	return out.NewPID
}

// finalChecks runs after the test: every supervisor stopped, every process
// of the test gone, no temporary file left, no descriptor of the test still
// open in this process, and nothing alarming in the logs.
func (e *testEnv) finalChecks() {
	t := e.t
	e.mu.Lock()
	sups := e.sups
	e.mu.Unlock()
	for _, s := range sups {
		s.Stop(5 * time.Second)
		s.Close()
	}
	if e.lnFile != nil {
		e.lnFile.Close()
	}
	e.events.close()
	e.holders.stop()
	if e.client != nil {
		e.client.close()
	}
	e.checkProcessesGone()
	if e.client != nil {
		e.checkAckedOnDisk()
	}
	e.checkNoTempFiles()
	e.logFile.Close()
	e.checkFDs()
	e.checkLog()
	if t.Failed() || os.Getenv("SUPERVISOR_TEST_DUMP_LOGS") != "" {
		e.dumpLog()
	}
}

// checkProcessesGone proves no process of this test outlives it: neither a
// pid it learned nor any process carrying its tag (orphans of a killed
// supervisor included). Zombies of other parents count as gone.
func (e *testEnv) checkProcessesGone() {
	deadline := time.Now().Add(30 * time.Second)
	for {
		left := e.liveProcesses()
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			e.t.Errorf("processes of the test still alive after it: %v", left)
			for _, pid := range left {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
			return
		}
		time.Sleep(20 * time.Millisecond) // polling /proc: no event says a non-child exited
	}
}

func (e *testEnv) liveProcesses() []int {
	e.mu.Lock()
	var left []int
	for _, pid := range e.pids {
		if sysx.Alive(pid) && !slices.Contains(left, pid) {
			left = append(left, pid)
		}
	}
	e.mu.Unlock()
	for _, pid := range taggedPIDs(e.tag) {
		if !slices.Contains(left, pid) {
			left = append(left, pid)
		}
	}
	return left
}

// taggedPIDs lists live processes whose environment carries tag.
func taggedPIDs(tag string) []int {
	ents, _ := os.ReadDir("/proc")
	var pids []int
	needle := []byte(envTag + "=" + tag + "\x00")
	for _, ent := range ents {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		data, err := os.ReadFile("/proc/" + ent.Name() + "/environ")
		if err != nil || !strings.Contains(string(data), string(needle)) {
			continue
		}
		if sysx.Alive(pid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// checkNoTempFiles: atomic writes (journal, pid file, control socket) leave
// no temporary name behind (invariant 6).
func (e *testEnv) checkNoTempFiles() {
	_ = filepath.WalkDir(e.dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		name := d.Name()
		if strings.Contains(name, "tmp") || strings.HasSuffix(name, ".broken") {
			e.t.Errorf("temporary file left behind: %s", path)
		}
		return nil
	})
}

// checkFDs proves this process holds no descriptor of the test any more: no
// file under its directory, no pidfd of its processes, not its listening
// socket. (The exact fd set is compared with its baseline once all tests
// ran, in TestMain, because parallel tests share the process.)
func (e *testEnv) checkFDs() {
	e.mu.Lock()
	pids := slices.Clone(e.pids)
	e.mu.Unlock()
	for fd, target := range openFDs() {
		switch {
		case strings.HasPrefix(target, e.dir):
			e.t.Errorf("descriptor %s still open on %s", fd, target)
		case e.lnInode != 0 && target == fmt.Sprintf("socket:[%d]", e.lnInode):
			e.t.Errorf("descriptor %s still open on the test's listening socket", fd)
		case target == "anon_inode:[pidfd]" && slices.Contains(pids, pidfdPID(fd)):
			e.t.Errorf("descriptor %s is a pidfd of pid %d, still open", fd, pidfdPID(fd))
		}
	}
}

func pidfdPID(fd string) int {
	data, err := os.ReadFile("/proc/self/fdinfo/" + fd)
	if err != nil {
		return -1
	}
	for line := range strings.Lines(string(data)) {
		if v, ok := strings.CutPrefix(line, "Pid:"); ok {
			pid, _ := strconv.Atoi(strings.TrimSpace(v))
			return pid
		}
	}
	return -1
}

// checkLog fails the test on a data race or an invariant violation reported
// by any process of the test.
func (e *testEnv) checkLog() {
	data, _ := os.ReadFile(e.logPath)
	for _, bad := range []string{"WARNING: DATA RACE", "testd.INVARIANT", "panic:"} {
		if strings.Contains(string(data), bad) {
			e.t.Errorf("log contains %q", bad)
		}
	}
}

func (e *testEnv) dumpLog() {
	data, _ := os.ReadFile(e.logPath)
	lines := strings.Split(string(data), "\n")
	if len(lines) > 600 {
		lines = lines[len(lines)-600:]
	}
	e.t.Logf("log of the test's processes (%s):\n%s", e.logPath, strings.Join(lines, "\n"))
}

// logHas reports whether the test log has a line containing every part.
func (e *testEnv) logHas(parts ...string) bool {
	data, _ := os.ReadFile(e.logPath)
	for line := range strings.Lines(string(data)) {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(line, p)
		}
		if all {
			return true
		}
	}
	return false
}

// logCount counts the lines containing every part.
func (e *testEnv) logCount(parts ...string) int {
	data, _ := os.ReadFile(e.logPath)
	n := 0
	for line := range strings.Lines(string(data)) {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(line, p)
		}
		if all {
			n++
		}
	}
	return n
}

// waitLogCount waits until the log has n lines with every part (the log is
// the only report of some internal steps, e.g. an incumbent waiting for the
// lock).
func (e *testEnv) waitLogCount(n int, parts ...string) {
	e.t.Helper()
	deadline := time.Now().Add(waitLimit)
	for e.logCount(parts...) < n {
		if time.Now().After(deadline) {
			e.t.Fatalf("log never had %d lines with %q", n, parts)
		}
		time.Sleep(10 * time.Millisecond) // polling a file: no event to wait on
	}
}

// waitGone waits until pid has exited, and has been reaped if it is a child
// of this process (a zombie of another parent counts as gone: it holds
// nothing, and its parent is not ours to test).
func (e *testEnv) waitGone(pid int) {
	e.t.Helper()
	deadline := time.Now().Add(waitLimit)
	for sysx.Alive(pid) || isOurChild(pid) {
		if time.Now().After(deadline) {
			e.t.Fatalf("pid %d still alive", pid)
		}
		time.Sleep(5 * time.Millisecond) // polling /proc: no event for a non-child
	}
}

func isOurChild(pid int) bool {
	ppid, _, ok := procParent(pid)
	return ok && ppid == os.Getpid()
}

// expectJournalAtRest asserts the journal is Idle and names incumbent: the
// journal records the right pid (DESIGN pitfall) and is at rest after every
// handoff, committed or not.
func (e *testEnv) expectJournalAtRest(incumbent int) {
	e.t.Helper()
	rec, err := journal.Read(e.journal)
	if err != nil || rec.Phase != journal.Idle || rec.IncumbentPID != incumbent {
		e.t.Errorf("journal %+v, %v; want Idle naming incumbent %d", rec, err, incumbent)
	}
	if incumbent > 0 {
		if start, err := sysx.ProcStartTime(incumbent); err == nil && rec.IncumbentStart != start {
			e.t.Errorf("journal names incumbent start time %d, the process started at %d", rec.IncumbentStart, start)
		}
	}
}

// holderMonitor samples the data-dir lock holder from /proc/locks (never by
// taking the lock) and keeps the sequence of holders it saw.
type holderMonitor struct {
	dir  string
	done chan struct{}
	end  chan struct{}

	// sampling serializes readings: the monitor goroutine and the test
	// both sample, and a slow reading (the fdinfo fallback) appended after
	// a newer one would record a holder change that never happened.
	sampling sync.Mutex

	mu      sync.Mutex
	seq     []int // distinct consecutive holders, 0 for "free"
	errs    []error
	stopped bool
}

func startHolderMonitor(dir string) *holderMonitor {
	m := &holderMonitor{dir: dir, done: make(chan struct{}), end: make(chan struct{})}
	go m.run()
	return m
}

func (m *holderMonitor) run() {
	defer close(m.end)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for {
		m.sample()
		select {
		case <-m.done:
			return
		case <-tick.C:
		}
	}
}

func (m *holderMonitor) sample() {
	m.sampling.Lock()
	defer m.sampling.Unlock()
	pid, err := lockHolder(m.dir)
	m.mu.Lock()
	defer m.mu.Unlock()
	if err != nil {
		if len(m.errs) < 5 {
			m.errs = append(m.errs, err)
		}
		return
	}
	if len(m.seq) == 0 || m.seq[len(m.seq)-1] != pid {
		m.seq = append(m.seq, pid)
	}
}

// sequence returns the distinct holders seen so far, in order, without the
// free gaps.
func (m *holderMonitor) sequence() []int {
	m.sample()
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []int
	for _, pid := range m.seq {
		if pid != 0 && (len(out) == 0 || out[len(out)-1] != pid) {
			out = append(out, pid)
		}
	}
	return out
}

// sawFree reports whether the lock was ever seen free after its first
// holder took it.
func (m *holderMonitor) sawFree() bool {
	m.sample()
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Contains(m.seq[min(1, len(m.seq)):], 0)
}

// raw returns every sample transition, 0 for free.
func (m *holderMonitor) raw() []int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.seq)
}

// current returns the holder now (0: free).
func (m *holderMonitor) current() int {
	pid, _ := lockHolder(m.dir)
	return pid
}

func (m *holderMonitor) stop() {
	m.mu.Lock()
	if m.stopped {
		m.mu.Unlock()
		return
	}
	m.stopped = true
	m.mu.Unlock()
	close(m.done)
	<-m.end
}

// expectHolderNow asserts who holds the lock at this instant and records it
// in the monitor's sequence.
func (e *testEnv) expectHolderNow(pid int) {
	e.t.Helper()
	e.holders.sample()
	if now := e.holders.current(); now != pid {
		e.t.Errorf("data-dir lock held by %d now, want %d", now, pid)
	}
}

// expectHolders asserts the lock passed through exactly these holders, in
// order (invariants 1 and 2: one holder at a time, handed on only at a seal).
func (e *testEnv) expectHolders(want ...int) {
	e.t.Helper()
	if got := e.holders.sequence(); !slices.Equal(got, want) {
		e.t.Errorf("data-dir lock holders were %v (samples %v), want %v", got, e.holders.raw(), want)
	}
	if now := e.holders.current(); len(want) > 0 && now != want[len(want)-1] {
		e.t.Errorf("data-dir lock held by %d now, want %d", now, want[len(want)-1])
	}
	e.holders.mu.Lock()
	errs := e.holders.errs
	e.holders.mu.Unlock()
	if len(errs) > 0 {
		e.t.Errorf("lock holder lookups failed: %v", errs)
	}
}
