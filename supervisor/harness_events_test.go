package supervisor

import (
	"bufio"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// waitLimit is the generous deadline that turns a hang into a failure. It is
// never what a test waits for.
const waitLimit = 90 * time.Second

// eventServer collects what the test's processes report on a Unix socket:
// "event <point> <pid>" lines (the reporter goes on) and "hold <point> <pid>"
// lines (the reporter blocks until the test releases it by closing the
// connection). Holds make the deterministic sequences possible: a process
// stops at an exact protocol step while the test acts.
type eventServer struct {
	ln *net.UnixListener

	mu      sync.Mutex
	events  []*procEvent
	changed chan struct{}
	closed  bool
	wg      sync.WaitGroup
}

// procEvent is one report.
type procEvent struct {
	Kind  string // "hold" or "event"
	Point string
	PID   int
	conn  net.Conn // open while a hold is held
	taken bool
}

func newEventServer(t *testing.T, path string) *eventServer {
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatalf("event socket: %v", err)
	}
	s := &eventServer{ln: ln, changed: make(chan struct{})}
	s.wg.Add(1)
	go s.acceptLoop()
	return s
}

func (s *eventServer) acceptLoop() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.wg.Add(1)
		go s.read(c)
	}
}

func (s *eventServer) read(c net.Conn) {
	defer s.wg.Done()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	_ = c.SetReadDeadline(time.Time{})
	f := strings.Fields(line)
	if err != nil || len(f) != 3 {
		c.Close()
		return
	}
	pid, _ := strconv.Atoi(f[2])
	ev := &procEvent{Kind: f[0], Point: f[1], PID: pid}
	if ev.Kind == "hold" {
		ev.conn = c
	} else {
		c.Close()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		c.Close()
		return
	}
	s.events = append(s.events, ev)
	close(s.changed)
	s.changed = make(chan struct{})
}

// wait returns the first report of point (from pid, unless pid is 0) that no
// earlier wait took.
func (s *eventServer) wait(t *testing.T, point string, pid int) *procEvent {
	t.Helper()
	ev, err := s.waitFor(point, pid, waitLimit)
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

func (s *eventServer) waitFor(point string, pid int, limit time.Duration) (*procEvent, error) {
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		for _, ev := range s.events {
			if !ev.taken && ev.Point == point && (pid == 0 || ev.PID == pid) {
				ev.taken = true
				s.mu.Unlock()
				return ev, nil
			}
		}
		changed := s.changed
		s.mu.Unlock()
		select {
		case <-changed:
		case <-deadline.C:
			return nil, fmt.Errorf("no %q report (pid %d) within %v", point, pid, limit)
		}
	}
}

// release lets a held process go on.
func (ev *procEvent) release() {
	if ev.conn != nil {
		ev.conn.Close()
	}
}

// close stops the server and releases every hold still held.
func (s *eventServer) close() {
	s.ln.Close()
	s.mu.Lock()
	s.closed = true
	for _, ev := range s.events {
		ev.release()
	}
	s.mu.Unlock()
	s.wg.Wait()
}
