package test

import (
	"bufio"
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
	"sync"
	"syscall"
	"testing"
	"time"
)

// triggerTimeout is how long `handoff supervise` waits for a request line
// (requestTimeout in cmd/handoff/trigger.go): a silent trigger client is
// dropped after it.
const triggerTimeout = 30 * time.Second

// cliWorld is kvd under the real `handoff supervise`, attacked on its
// trigger socket (newline-delimited JSON, docs/operating.md).
type cliWorld struct {
	t       *testing.T
	dir     string
	data    string
	control string
	trigger string
	cmd     *exec.Cmd
	done    chan struct{}
	addr    map[string]string
	ld      *load
	lw      *lockWatch
}

// triggerEvent is one line the supervisor answers on the trigger socket.
type triggerEvent struct {
	Event     string `json:"event"`
	Code      string `json:"code"`
	Error     string `json:"error"`
	Committed bool   `json:"committed"`
	NewPID    int    `json:"new_pid"`
	Reason    string `json:"reason"`
	Cause     string `json:"cause"`
	Incumbent *struct {
		PID int `json:"pid"`
	} `json:"incumbent"`
	Listeners []struct {
		Name    string `json:"name"`
		Address string `json:"address"`
	} `json:"listeners"`
}

// startCLI runs `handoff supervise` with kvd on two loopback listeners and
// clients on both. It skips when cmd/handoff does not build.
func startCLI(t *testing.T) *cliWorld {
	if bin.handoff == "" {
		t.Skipf("cmd/handoff does not build: %s", bin.handoffErr)
	}
	t.Parallel()
	dir, err := os.MkdirTemp("", "hx")
	if err != nil {
		t.Fatal(err)
	}
	c := &cliWorld{t: t, dir: dir, data: filepath.Join(dir, "data"), control: filepath.Join(dir, "c.sock"),
		trigger: filepath.Join(dir, "t.sock"), addr: map[string]string{}}
	t.Cleanup(c.teardown)
	if err := os.Mkdir(c.data, 0o700); err != nil {
		t.Fatal(err)
	}
	c.launch()
	c.awaitIncumbent()
	lw, stop := watchLock(c.data)
	t.Cleanup(stop)
	c.lw = lw
	c.ld = startLoad(c.addr["http"], c.addr["resp"])
	t.Cleanup(c.ld.stop)
	c.serving("at start")
	return c
}

func (c *cliWorld) launch() {
	cfg := filepath.Join(c.dir, "handoff.toml")
	text := fmt.Sprintf(`control_socket = %q
trigger_socket = %q
binary = %q
args = ["--data", %q, "--control", %q, "--build-id", "cli"]
data_dir = %q
deadline = "10s"
drain_grace = "5s"

[[listener]]
name = "http"
network = "tcp"
address = "127.0.0.1:0"

[[listener]]
name = "resp"
network = "tcp"
address = "127.0.0.1:0"
`, c.control, c.trigger, bin.kvd, c.data, c.control, c.data)
	if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
		c.t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(c.dir, "log"))
	if err != nil {
		c.t.Fatal(err)
	}
	defer logf.Close()
	c.cmd = exec.Command(bin.handoff, "supervise", "--config", cfg)
	c.cmd.Env = childEnv()
	c.cmd.Stdout, c.cmd.Stderr = logf, logf
	if err := startTracked(c.cmd); err != nil {
		c.t.Fatal(err)
	}
	c.done = make(chan struct{})
	go func() { _ = waitTracked(c.cmd); close(c.done) }()
}

// awaitIncumbent polls the trigger socket until the supervisor reports a
// serving incumbent and its listeners' addresses.
func (c *cliWorld) awaitIncumbent() {
	deadline := time.Now().Add(startWait)
	for time.Now().Before(deadline) {
		evs, err := c.request(`{"op":"status"}`)
		if err == nil && len(evs) == 1 && evs[0].Incumbent != nil && evs[0].Incumbent.PID > 0 {
			for _, l := range evs[0].Listeners {
				c.addr[l.Name] = l.Address
			}
			return
		}
		select {
		case <-c.done:
			c.t.Fatalf("handoff supervise exited: %v\n%s", c.cmd.ProcessState, c.log())
		case <-time.After(10 * time.Millisecond): // polling: the supervisor announces readiness only to systemd
		}
	}
	c.t.Fatalf("handoff supervise reported no incumbent within %v\n%s", startWait, c.log())
}

// request sends one request line and returns every event line until the
// supervisor closes the connection.
func (c *cliWorld) request(line string) ([]triggerEvent, error) {
	conn, err := net.DialTimeout("unix", c.trigger, 5*time.Second)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(outcomeWait))
	if _, err := io.WriteString(conn, line+"\n"); err != nil {
		return nil, err
	}
	return readEvents(conn)
}

func readEvents(conn net.Conn) ([]triggerEvent, error) {
	var evs []triggerEvent
	sc := bufio.NewScanner(conn)
	for sc.Scan() {
		var e triggerEvent
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return evs, fmt.Errorf("event line %q: %w", sc.Text(), err)
		}
		evs = append(evs, e)
	}
	return evs, sc.Err()
}

// incumbentPID asks the supervisor for the serving incumbent's pid.
func (c *cliWorld) incumbentPID() int {
	evs, err := c.request(`{"op":"status"}`)
	if err != nil || len(evs) != 1 || evs[0].Incumbent == nil {
		c.t.Fatalf("status: %v %+v", err, evs)
	}
	return evs[0].Incumbent.PID
}

// serving checks that both listeners acknowledge writes and that the
// supervisor answers a well-behaved status request.
func (c *cliWorld) serving(when string) {
	c.t.Helper()
	if err := c.ld.waitAcked(5, settleWait); err != nil {
		c.t.Fatalf("%s: the daemon does not serve its clients: %v\n%s", when, err, c.log())
	}
	if evs, err := c.request(`{"op":"status"}`); err != nil || len(evs) != 1 || evs[0].Event != "status" {
		c.t.Fatalf("%s: a well-behaved status request got %+v (%v)", when, evs, err)
	}
}

// finish checks that the daemon can still be handed off through the
// trigger socket, then the clients' and the lock's invariants.
func (c *cliWorld) finish() {
	c.t.Helper()
	c.serving("before the final swap")
	old := c.incumbentPID()
	evs, err := c.request(`{"op":"upgrade"}`)
	if err != nil || len(evs) == 0 || !evs[len(evs)-1].Committed {
		c.t.Fatalf("the upgrade after the attack did not commit: %v %+v\n%s", err, evs, c.log())
	}
	if pid := c.incumbentPID(); pid == old {
		c.t.Fatalf("after a committed upgrade the incumbent is still pid %d", old)
	}
	if err := c.ld.waitAcked(5, settleWait); err != nil {
		c.t.Fatal(err)
	}
	c.ld.stop()
	var res rowResult
	checkLoad(&res, c.ld, expectation{})
	checkLock(&res, c.lw)
	for _, p := range res.problems {
		c.t.Error(p)
	}
}

// expectError sends raw bytes (then closes the write side, if half) and
// expects one error event with code, then the close.
func (c *cliWorld) expectError(t *testing.T, raw []byte, half bool, code string) {
	t.Helper()
	conn, err := net.DialTimeout("unix", c.trigger, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(closeWait))
	if _, err := conn.Write(raw); err != nil {
		t.Fatal(err)
	}
	if half {
		_ = conn.(*net.UnixConn).CloseWrite()
	}
	evs, err := readEvents(conn)
	if err != nil || len(evs) != 1 || evs[0].Event != "error" || evs[0].Code != code {
		t.Errorf("sent %.40q…: got %+v (%v), want one error event %q", raw, evs, err, code)
	}
}

// expectCutOff sends an endless request line and expects the supervisor
// to stop reading and close the connection long before it is written out:
// it must not buffer what a client sends without bound.
func (c *cliWorld) expectCutOff(t *testing.T) {
	t.Helper()
	conn, err := net.DialTimeout("unix", c.trigger, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(closeWait))
	chunk := bytes.Repeat([]byte("x"), 64<<10)
	for sent := 0; sent < 64<<20; sent += len(chunk) {
		if _, err := conn.Write(chunk); err != nil {
			if errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET) {
				return
			}
			t.Fatalf("after %d bytes: %v", sent, err)
		}
	}
	t.Errorf("the supervisor read a 64 MiB request line without closing the connection")
}

func (c *cliWorld) log() string {
	b, _ := os.ReadFile(filepath.Join(c.dir, "log"))
	if len(b) > 6000 {
		b = b[len(b)-6000:]
	}
	return string(b)
}

// teardown stops the supervisor gracefully (SIGTERM), then removes every
// process of this world that is left.
func (c *cliWorld) teardown() {
	if c.cmd != nil && c.cmd.Process != nil {
		_ = c.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-c.done:
		case <-time.After(settleWait):
			_ = c.cmd.Process.Kill()
			<-c.done
		}
	}
	w := &world{t: c.t, dir: c.dir, seen: map[int]uint64{}}
	w.killAll()
	os.RemoveAll(c.dir)
}

// TestHostileTrigger_BadInput: garbage, an oversized line, a truncated
// request, unknown fields and ops, a relative binary path: each gets one
// clear error event and the connection closes; the daemon keeps serving and
// an upgrade commits.
func TestHostileTrigger_BadInput(t *testing.T) {
	c := startCLI(t)
	for _, tc := range []struct {
		name string
		raw  []byte
		half bool
	}{
		{"garbage", append(garbage(300), '\n'), false},
		{"line at the size limit", bytes.Repeat([]byte("x"), 64<<10), false},
		{"truncated request", []byte(`{"op":"upgr`), true},
		{"unknown field", []byte(`{"op":"upgrade","dryrun":true}` + "\n"), false},
		{"unknown op", []byte(`{"op":"shutdown"}` + "\n"), false},
		{"relative binary", []byte(`{"op":"upgrade","binary":"kvd"}` + "\n"), false},
	} {
		t.Run(tc.name, func(t *testing.T) { c.expectError(t, tc.raw, tc.half, "bad-request") })
	}
	t.Run("endless line", c.expectCutOff)
	c.serving("after bad trigger input")
	c.finish()
}

// TestHostileTrigger_SlowlorisAndFlood: silent trigger clients, many more
// than anyone needs, are dropped after the request timeout; meanwhile
// status and an upgrade are answered, and the supervisor's descriptors
// return to their count before the flood.
func TestHostileTrigger_SlowlorisAndFlood(t *testing.T) {
	if testing.Short() {
		t.Skip("waits out the 30 s request timeout")
	}
	c := startCLI(t)
	before, err := openFDs(c.cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	const n = 100
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, conn := range conns {
			conn.Close()
		}
	}()
	for range n {
		conn, err := net.DialTimeout("unix", c.trigger, 5*time.Second)
		if err != nil {
			t.Fatalf("silent client %d: %v", len(conns), err)
		}
		conns = append(conns, conn)
	}
	c.finish() // a swap through the trigger socket while the flood hangs
	var wg sync.WaitGroup
	var mu sync.Mutex
	stillOpen := 0
	for _, conn := range conns {
		wg.Go(func() {
			_ = conn.SetReadDeadline(time.Now().Add(triggerTimeout + closeWait))
			_, err := io.Copy(io.Discard, conn)
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				mu.Lock()
				stillOpen++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if stillOpen > 0 {
		t.Errorf("%d of %d silent trigger clients were never dropped", stillOpen, n)
	}
	waitFDs(t, c.cmd.Process.Pid, before)
}

// TestHostileTrigger_ForeignUID: a process of another uid is refused by
// the socket's mode 0600, and, with the file opened up, by the
// supervisor's own SO_PEERCRED check (an error event "not-allowed").
func TestHostileTrigger_ForeignUID(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a peer as uid 65534 (nobody)")
	}
	c := startCLI(t)
	if err := os.Chmod(c.dir, 0o711); err != nil {
		t.Fatal(err)
	}
	out := runForeign(t, "foreign-trigger-peer", c.trigger)
	if !strings.HasPrefix(out, "connect-error") || !strings.Contains(out, "permission denied") {
		t.Errorf("uid 65534 connecting to the 0600 trigger socket: %q, want permission denied", out)
	}
	if err := os.Chmod(c.trigger, 0o666); err != nil {
		t.Fatal(err)
	}
	out = runForeign(t, "foreign-trigger-peer", c.trigger)
	if !strings.Contains(out, `"code":"not-allowed"`) || strings.Contains(out, `"event":"status"`) {
		t.Errorf("uid 65534 on a world-writable trigger socket: %q, want a not-allowed error", out)
	}
	c.serving("after a foreign uid")
	c.finish()
}
