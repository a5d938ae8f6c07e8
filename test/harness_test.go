package test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/handoff-go/handoff/internal/sysx"
)

// Generous deadlines whose only job is to turn a hang into a failure.
const (
	startWait   = 60 * time.Second // a driver or daemon starting under -race on a busy machine
	outcomeWait = 90 * time.Second // a swap that dies somewhere and is sorted out
	settleWait  = 90 * time.Second // processes converging after a crash
	swapBudget  = 10 * time.Second // SpawnSpec.Deadline of every swap the tests trigger
)

// world is one supervised kvd in its own directory, with its own ports and
// processes: the unit of isolation of every end-to-end test.
type world struct {
	t       testing.TB
	name    string
	dir     string // short: Unix socket paths must fit in 108 bytes
	data    string
	control string
	journal string

	cold    spec    // how the first incumbent starts (also what a restart runs)
	drv     *driver // the supervisor driver running now
	drivers []*driver
	addr    map[string]string // listener name -> address
	inode   map[string]uint64 // listener name -> socket inode, from the first driver

	mu   sync.Mutex
	seen map[int]uint64 // every daemon pid seen -> its start time
}

// spec is a SpawnSpec as the driver reads it.
type spec struct {
	Binary       string   `json:"binary"`
	Args         []string `json:"args"`
	Env          []string `json:"env,omitempty"`
	DeadlineMS   int      `json:"deadline_ms,omitempty"`
	DrainGraceMS int      `json:"drain_grace_ms,omitempty"`
}

// newWorld makes the directory of one world; nothing runs yet.
func newWorld(t testing.TB, name string) *world {
	dir, err := os.MkdirTemp("", "hx")
	if err != nil {
		t.Fatal(err)
	}
	w := &world{t: t, name: name, dir: dir, data: filepath.Join(dir, "data"),
		control: filepath.Join(dir, "c.sock"), journal: filepath.Join(dir, "journal"),
		addr: map[string]string{}, inode: map[string]uint64{}, seen: map[int]uint64{}}
	if err := os.Mkdir(w.data, 0o700); err != nil {
		t.Fatal(err)
	}
	w.cold = w.kvdSpec("gen0")
	t.Cleanup(w.teardown)
	return w
}

// kvdSpec runs kvd on this world's data dir under a build id naming the
// generation, so the tests can tell which binary serves.
func (w *world) kvdSpec(buildID string, extra ...string) spec {
	args := append([]string{"--data", w.data, "--control", w.control, "--build-id", buildID}, extra...)
	return spec{Binary: bin.kvd, Args: args, DeadlineMS: int(swapBudget / time.Millisecond)}
}

// start runs the first driver, which cold-starts w.cold.
func (w *world) start(env ...string) *driver {
	d := w.startDriver(env...)
	ev, err := d.ready()
	if err != nil {
		w.t.Fatalf("%v\n%s", err, w.logTail())
	}
	if ev.Adopted {
		w.t.Fatalf("the first driver adopted an incumbent (pid %d)", ev.Incumbent)
	}
	for _, l := range ev.Listeners {
		w.addr[l.Name], w.inode[l.Name] = l.Addr, l.Inode
	}
	if err := checkHeldSockets(d.pid, w.inode); err != nil {
		w.t.Fatal(err)
	}
	w.noteDaemon(ev.Incumbent)
	return d
}

// restartDriver starts a new driver after the previous one died: it must
// adopt the live incumbent and hold the very same listening sockets.
func (w *world) restartDriver() (*driver, error) {
	d := w.startDriver()
	return d, w.adoptedBy(d)
}

// adoptedBy waits until the restarted driver d is ready and checks that it
// adopted the live incumbent with the very same listening sockets.
func (w *world) adoptedBy(d *driver) error {
	ev, err := d.ready()
	if err != nil {
		return err
	}
	if !ev.Adopted {
		return fmt.Errorf("the restarted supervisor adopted no incumbent (it cold-started pid %d)", ev.Incumbent)
	}
	w.noteDaemon(ev.Incumbent)
	for _, l := range ev.Listeners {
		if w.inode[l.Name] != l.Inode {
			return fmt.Errorf("listener %s: the restarted supervisor holds socket inode %d, before the crash it was %d",
				l.Name, l.Inode, w.inode[l.Name])
		}
	}
	if len(ev.Listeners) != len(w.inode) {
		return fmt.Errorf("the restarted supervisor holds %d listeners, want %d", len(ev.Listeners), len(w.inode))
	}
	return checkHeldSockets(d.pid, w.inode)
}

// logged waits until the world's log has a line that contains every one
// of parts (a process announcing that it reached a step).
func (w *world) logged(limit time.Duration, parts ...string) error {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		for line := range strings.Lines(w.fullLog()) {
			if containsAll(line, parts) {
				return nil
			}
		}
		time.Sleep(10 * time.Millisecond) // polling a file other processes append to
	}
	return fmt.Errorf("no log line with %q within %v: %w", parts, limit, errTimeout)
}

func containsAll(s string, parts []string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}

// checkHeldSockets verifies from /proc, not from what the driver says,
// that process pid holds each listening socket (by inode).
func checkHeldSockets(pid int, inodes map[string]uint64) error {
	held := map[string]bool{}
	fds, _ := filepath.Glob(fmt.Sprintf("/proc/%d/fd/*", pid))
	for _, fd := range fds {
		if target, err := os.Readlink(fd); err == nil {
			held[target] = true
		}
	}
	for name, ino := range inodes {
		if !held[fmt.Sprintf("socket:[%d]", ino)] {
			return fmt.Errorf("supervisor pid %d holds no descriptor of listener %s (socket:[%d])", pid, name, ino)
		}
	}
	return nil
}

func (w *world) startDriver(env ...string) *driver {
	coldJSON, err := json.Marshal(w.cold)
	if err != nil {
		w.t.Fatal(err)
	}
	logf, err := os.OpenFile(filepath.Join(w.dir, "log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		w.t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(bin.supervisor, "-control", w.control, "-journal", w.journal, "-data", w.data,
		"-listen", "http,resp", "-coldstart", string(coldJSON))
	cmd.Env = childEnv(env...)
	cmd.Stderr = logf
	d, err := startDriverCmd(w.t, cmd)
	if err != nil {
		w.t.Fatal(err)
	}
	w.drv = d
	w.drivers = append(w.drivers, d)
	return d
}

// noteDaemon records a daemon pid (with its start time, against pid reuse)
// for the leak check and the teardown.
func (w *world) noteDaemon(pid int) {
	if pid <= 0 {
		return
	}
	start, err := sysx.ProcStartTime(pid)
	if err != nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, ok := w.seen[pid]; !ok {
		w.seen[pid] = start
	}
}

// swapRequest is the driver's "swap" request: the spec, and whether the
// driver holds the swap after Ready.
type swapRequest struct {
	Op string `json:"op"`
	spec
	Hold bool `json:"hold,omitempty"`
}

// requestSwap asks the driver for a swap to sp and returns the mark from
// which to wait for its events.
func (d *driver) requestSwap(sp spec, hold bool) (int, error) {
	from := d.mark()
	return from, d.send(swapRequest{Op: "swap", spec: sp, Hold: hold})
}

// swap asks the running driver for a swap and waits for its outcome.
func (w *world) swap(sp spec) (event, error) {
	from, err := w.drv.requestSwap(sp, false)
	if err != nil {
		return event{}, err
	}
	return w.drv.waitFor(from, outcomeWait, func(e event) bool { return e.Event == "outcome" })
}

// logTail returns the end of the world's log (driver and daemons), for
// failure messages.
func (w *world) logTail() string {
	s := w.fullLog()
	if len(s) > 6000 {
		s = s[len(s)-6000:]
	}
	return s
}

// fullLog is the whole log of the world's processes so far.
func (w *world) fullLog() string {
	b, _ := os.ReadFile(filepath.Join(w.dir, "log"))
	return string(b)
}

// teardown kills whatever of this world still runs (drivers first, so
// nothing restarts a daemon), reaps it and removes the directory.
func (w *world) teardown() {
	for _, d := range w.drivers {
		d.kill()
	}
	w.killAll()
	os.RemoveAll(w.dir)
}

// killAll SIGKILLs every live process of this world (found by its directory
// on the command line, or recorded as seen) and waits until all are gone.
func (w *world) killAll() {
	deadline := time.Now().Add(settleWait)
	for time.Now().Before(deadline) {
		procs := w.processes()
		if len(procs) == 0 {
			return
		}
		for pid, start := range procs {
			if cur, err := sysx.ProcStartTime(pid); err == nil && cur == start {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		reapOrphans()
		time.Sleep(5 * time.Millisecond) // polling the process table: there is no event for a stranger's exit
	}
	w.t.Errorf("processes of %s still alive after teardown: %v", w.dir, w.processes())
}

// processes returns the live (non-zombie) processes that belong to this
// world, with their start times.
func (w *world) processes() map[int]uint64 {
	out := map[int]uint64{}
	for pid, start := range scanProcesses(w.dir) {
		out[pid] = start
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for pid, start := range w.seen {
		if alive(pid, start) {
			out[pid] = start
		}
	}
	return out
}

// scanProcesses finds the live processes whose command line mentions dir.
func scanProcesses(dir string) map[int]uint64 {
	out := map[int]uint64{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !bytes.Contains(cmdline, []byte(dir)) {
			continue
		}
		if start, ok := liveStart(pid); ok {
			out[pid] = start
		}
	}
	return out
}

// liveStart returns the start time of pid if it runs (a zombie is dead).
func liveStart(pid int) (uint64, bool) {
	start, err := sysx.ProcStartTime(pid)
	return start, err == nil && sysx.Alive(pid)
}

// alive reports whether the process pid that started at start still runs.
func alive(pid int, start uint64) bool {
	cur, ok := liveStart(pid)
	return ok && cur == start
}

// event is one line the driver prints.
type event struct {
	Event      string         `json:"event"`
	PID        int            `json:"pid"`
	Adopted    bool           `json:"adopted"`
	Incumbent  int            `json:"incumbent"`
	Listeners  []listenerInfo `json:"listeners"`
	Step       string         `json:"step"`
	Detail     string         `json:"detail"`
	Committed  bool           `json:"committed"`
	OldPID     int            `json:"old_pid"`
	NewPID     int            `json:"new_pid"`
	Reason     string         `json:"reason"`
	Cause      string         `json:"cause"`
	Error      string         `json:"error"`
	InProgress bool           `json:"in_progress"`
	TotalMS    int64          `json:"total_ms"`
	Draining   []int          `json:"draining"`
}

type listenerInfo struct {
	Name  string `json:"name"`
	Addr  string `json:"addr"`
	Inode uint64 `json:"inode"`
}

// driver is one run of the supervisor driver program.
type driver struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	pid   int
	done  chan struct{} // closed when the process exited and was reaped

	mu      sync.Mutex
	events  []event
	changed chan struct{} // closed and replaced on every new event or exit
}

func startDriverCmd(t testing.TB, cmd *exec.Cmd) (*driver, error) {
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := startTracked(cmd); err != nil {
		return nil, err
	}
	d := &driver{cmd: cmd, stdin: stdin, pid: cmd.Process.Pid, done: make(chan struct{}), changed: make(chan struct{})}
	go d.read(stdout)
	t.Cleanup(d.kill)
	return d, nil
}

// read collects events until stdout closes, then reaps the process.
func (d *driver) read(stdout io.Reader) {
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var e event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			e = event{Event: "garbled", Error: sc.Text()}
		}
		d.mu.Lock()
		d.events = append(d.events, e)
		d.notifyLocked()
		d.mu.Unlock()
	}
	_ = waitTracked(d.cmd)
	d.mu.Lock()
	close(d.done)
	d.notifyLocked()
	d.mu.Unlock()
}

func (d *driver) notifyLocked() {
	close(d.changed)
	d.changed = make(chan struct{})
}

func (d *driver) exited() bool {
	select {
	case <-d.done:
		return true
	default:
		return false
	}
}

// mark is the index of the next event, for waitFor.
func (d *driver) mark() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.events)
}

// waitFor returns the first event at index from or later that matches, or
// an error when the driver exits first or nothing matches within limit.
func (d *driver) waitFor(from int, limit time.Duration, match func(event) bool) (event, error) {
	timeout := time.After(limit)
	for i := from; ; {
		d.mu.Lock()
		evs, ch, exited := d.events[i:], d.changed, d.exited()
		d.mu.Unlock()
		for _, e := range evs {
			i++
			if match(e) {
				return e, nil
			}
			if e.Event == "fatal" {
				return e, fmt.Errorf("driver pid %d failed: %s", d.pid, e.Error)
			}
		}
		if exited {
			return event{}, fmt.Errorf("driver pid %d exited (%v)", d.pid, d.cmd.ProcessState)
		}
		select {
		case <-ch:
		case <-timeout:
			return event{}, fmt.Errorf("driver pid %d: no matching event within %v", d.pid, limit)
		}
	}
}

// ready waits for the driver's ready event.
func (d *driver) ready() (event, error) {
	e, err := d.waitFor(0, startWait, func(e event) bool { return e.Event == "ready" })
	if err != nil {
		return e, fmt.Errorf("supervisor driver did not get ready: %w", err)
	}
	return e, nil
}

// all returns every event so far.
func (d *driver) all() []event {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]event(nil), d.events...)
}

func (d *driver) send(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if _, err := d.stdin.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("driver pid %d: %w", d.pid, err)
	}
	return nil
}

// kill SIGKILLs the driver if it still runs and waits until it is reaped.
func (d *driver) kill() {
	if !d.exited() {
		_ = d.cmd.Process.Kill()
	}
	<-d.done
	d.stdin.Close()
}

// errTimeout marks a wait that ran out of time.
var errTimeout = errors.New("timed out")
