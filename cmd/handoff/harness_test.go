package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/handoff-go/handoff/internal/sysx"
)

// waitLimit turns a hang into a failure; no test waits on it otherwise.
const waitLimit = 60 * time.Second

// fixture is one supervised service in its own directory: config, daemon
// binaries (variants are copies, see testdata/daemon), a stand-in for
// systemd's notify socket, and the `handoff supervise` process.
type fixture struct {
	t       *testing.T
	dir     string
	config  string
	trigger string
	control string
	data    string
	notify  *notifySocket
	sup     *exec.Cmd
	supDone chan struct{}
	stderr  *logFile
	pids    map[int]bool // daemon pids seen: all must be gone after the stop
}

// options shape a fixture's config and supervisor process.
type options struct {
	extra      string   // TOML keys added at the top level
	listeners  string   // [[listener]] tables; default one tcp "http" on 127.0.0.1:0
	env        []string // added to the supervisor's environment
	extraFiles []*os.File
	binary     string // default "daemon"
}

const tcpListener = `
[[listener]]
name = "http"
network = "tcp"
address = "127.0.0.1:0"
`

func newFixture(t *testing.T) *fixture {
	t.Helper()
	dir, err := os.MkdirTemp("", "ho-") // short: unix socket paths are limited to 107 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	f := &fixture{t: t, dir: dir, config: filepath.Join(dir, "handoff.toml"),
		trigger: filepath.Join(dir, "trigger.sock"), control: filepath.Join(dir, "control.sock"),
		data: filepath.Join(dir, "data"), pids: map[int]bool{}}
	if err := os.Mkdir(f.data, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"daemon", "daemon-next", "daemon-broken", "daemon-gated", "daemon-other"} {
		copyFile(t, bins.daemon, f.bin(name))
	}
	f.notify = listenNotify(t, filepath.Join(dir, "notify.sock"))
	f.stderr = openLog(t, filepath.Join(dir, "supervisor.log"))
	t.Cleanup(f.reapDaemons) // registered first: runs after every process cleanup
	return f
}

// bin is the path of a daemon variant.
func (f *fixture) bin(name string) string { return filepath.Join(f.dir, name) }

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, data, 0o755); err != nil {
		t.Fatal(err)
	}
}

// writeConfig writes the config: every variant but daemon-other is allowed.
func (f *fixture) writeConfig(o options) {
	f.t.Helper()
	listeners, binary := o.listeners, o.binary
	if listeners == "" {
		listeners = tcpListener
	}
	if binary == "" {
		binary = "daemon"
	}
	text := fmt.Sprintf(`control_socket = "control.sock"
trigger_socket = "trigger.sock"
binary = %q
args = ["--control", %q, "--data", %q]
allowed_binaries = ["daemon-next", "daemon-broken", "daemon-gated", "absent"]
stop_grace = "20s"
%s
%s`, binary, f.control, f.data, o.extra, listeners)
	if err := os.WriteFile(f.config, []byte(text), 0o644); err != nil {
		f.t.Fatal(err)
	}
}

// launch starts `handoff supervise` and returns without waiting. Its
// stderr (and so every daemon's) goes to a file, shown when the test
// fails: a pipe would keep Wait hanging while a daemon outlives the
// supervisor, which one test causes on purpose.
func (f *fixture) launch(o options) {
	f.t.Helper()
	f.writeConfig(o)
	cmd := exec.Command(bins.supervise, "supervise", "--config", f.config)
	cmd.Env = append(append(os.Environ(), "NOTIFY_SOCKET="+f.notify.path), o.env...)
	cmd.ExtraFiles = o.extraFiles
	cmd.Stderr = f.stderr.file
	if err := cmd.Start(); err != nil {
		f.t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	f.sup, f.supDone = cmd, done
	f.t.Cleanup(func() { stopProcess(cmd, done) })
}

// start launches the supervisor and waits for READY=1: the first incumbent
// serves.
func (f *fixture) start(o options) {
	f.t.Helper()
	f.launch(o)
	f.notify.waitFor(f.t, "READY=1", f.supDone)
	f.track(f.status().Incumbent.PID)
}

func (f *fixture) track(pid int) {
	if pid > 0 {
		f.pids[pid] = true
	}
}

// stop sends SIGTERM and checks a clean exit: status 0, STOPPING=1, no
// daemon left.
func (f *fixture) stop() {
	f.t.Helper()
	if err := f.sup.Process.Signal(syscall.SIGTERM); err != nil {
		f.t.Fatal(err)
	}
	f.notify.waitFor(f.t, "STOPPING=1", nil)
	f.waitExit()
	if code := f.sup.ProcessState.ExitCode(); code != 0 {
		f.t.Fatalf("supervise exited %d after SIGTERM; stderr:\n%s", code, f.stderr)
	}
	f.checkNoDaemonLeft()
}

func (f *fixture) waitExit() {
	f.t.Helper()
	select {
	case <-f.supDone:
	case <-time.After(waitLimit):
		f.t.Fatalf("supervise did not exit; stderr:\n%s", f.stderr)
	}
}

func (f *fixture) checkNoDaemonLeft() {
	f.t.Helper()
	for pid := range f.pids {
		if sysx.Alive(pid) {
			f.t.Errorf("daemon pid %d outlived its supervisor", pid)
		}
	}
}

// stopProcess stops a supervisor a failed test left running.
func stopProcess(cmd *exec.Cmd, done <-chan struct{}) {
	select {
	case <-done:
		return
	default:
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(waitLimit):
		_ = cmd.Process.Kill()
		<-done
	}
}

// reapDaemons kills and reaps every daemon a failed test left (daemons
// whose supervisor died are re-parented to this process, a subreaper),
// and shows the supervisor's log when the test failed.
func (f *fixture) reapDaemons() {
	for pid := range f.pids {
		if sysx.Alive(pid) {
			_ = unix.Kill(pid, unix.SIGKILL)
		}
		var ws unix.WaitStatus
		_, _ = unix.Wait4(pid, &ws, 0, nil) // ECHILD when its supervisor reaped it
	}
	if f.t.Failed() {
		f.t.Logf("supervisor log:\n%s", f.stderr)
	}
}

// result is one run of the handoff command.
type result struct {
	stdout, stderr string
	code           int
}

// handoff runs the handoff command to completion.
func (f *fixture) handoff(args ...string) result {
	f.t.Helper()
	return runHandoff(f.t, nil, args...)
}

func runHandoff(t *testing.T, attr *syscall.SysProcAttr, args ...string) result {
	t.Helper()
	return runCmd(t, bins.handoff, attr, args...)
}

func runCmd(t *testing.T, bin string, attr *syscall.SysProcAttr, args ...string) result {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.SysProcAttr = attr
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatal(err)
	}
	return result{stdout: out.String(), stderr: errb.String(), code: cmd.ProcessState.ExitCode()}
}

// upgrade runs `handoff upgrade --config … args`, tracking the new pid.
func (f *fixture) upgrade(args ...string) result {
	f.t.Helper()
	r := f.handoff(append([]string{"upgrade", "--config", f.config}, args...)...)
	if st := f.status(); st.Incumbent != nil {
		f.track(st.Incumbent.PID)
	}
	return r
}

// status runs `handoff status --json`.
func (f *fixture) status() statusEvent {
	f.t.Helper()
	r := f.handoff("status", "--config", f.config, "--json")
	var st statusEvent
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
		f.t.Fatalf("status: %v (exit %d)\nstdout: %s\nstderr: %s", err, r.code, r.stdout, r.stderr)
	}
	return st
}

// incumbent is the serving daemon's pid.
func (f *fixture) incumbent() int {
	f.t.Helper()
	st := f.status()
	if st.Incumbent == nil {
		f.t.Fatal("no incumbent")
	}
	return st.Incumbent.PID
}

// listenerAddr is the address the supervisor's listener name is bound to.
func (f *fixture) listenerAddr(name string) string {
	f.t.Helper()
	for _, l := range f.status().Listeners {
		if l.Name == name {
			return l.Address
		}
	}
	f.t.Fatalf("no listener %q", name)
	return ""
}

// get sends one request to the daemon and returns its pid and build id.
func get(t *testing.T, network, addr string) (pid int, build string) {
	t.Helper()
	c, err := net.DialTimeout(network, addr, waitLimit)
	if err != nil {
		t.Fatalf("connect %s: %v", addr, err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: test\r\n\r\n")
	return readResponse(t, c)
}

// readResponse reads the daemon's answer: "<pid> <build> <revision>".
func readResponse(t *testing.T, c net.Conn) (pid int, build string) {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(waitLimit))
	body, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("read %s: %v", c.RemoteAddr(), err)
	}
	_, payload, ok := strings.Cut(string(body), "\r\n\r\n")
	var rev int
	if _, err := fmt.Sscanf(payload, "%d %s %d", &pid, &build, &rev); !ok || err != nil {
		t.Fatalf("bad response from %s: %q", c.RemoteAddr(), body)
	}
	return pid, build
}

func readPID(t *testing.T, c net.Conn) int {
	t.Helper()
	pid, _ := readResponse(t, c)
	return pid
}

// notifySocket stands in for systemd's notify socket.
type notifySocket struct {
	path string
	conn *net.UnixConn
	seen []string
}

func listenNotify(t *testing.T, path string) *notifySocket {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &notifySocket{path: path, conn: c}
}

// waitFor reads datagrams until one equals (or starts with) want and
// returns it; it fails if exited closes first or nothing matches in time.
func (n *notifySocket) waitFor(t *testing.T, want string, exited <-chan struct{}) string {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	buf := make([]byte, 4096)
	for time.Now().Before(deadline) {
		_ = n.conn.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		k, err := n.conn.Read(buf)
		if err == nil {
			msg := string(buf[:k])
			n.seen = append(n.seen, msg)
			if strings.HasPrefix(msg, want) {
				return msg
			}
			continue
		}
		select {
		case <-exited:
			t.Fatalf("supervise exited before sending %q (got %q)", want, n.seen)
		default:
		}
	}
	t.Fatalf("no %q notification in %v (got %q)", want, waitLimit, n.seen)
	return ""
}

// logFile collects a supervisor's stderr.
type logFile struct {
	file *os.File
}

func openLog(t *testing.T, path string) *logFile {
	t.Helper()
	file, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { file.Close() })
	return &logFile{file: file}
}

// String returns everything logged so far.
func (l *logFile) String() string {
	b, err := os.ReadFile(l.file.Name())
	if err != nil {
		return err.Error()
	}
	return string(b)
}

// alive reports whether pid runs (a zombie does not).
func alive(pid int) bool { return sysx.Alive(pid) }
