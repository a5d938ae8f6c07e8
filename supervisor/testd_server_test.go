package supervisor

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/handoff-go/handoff"
	"github.com/handoff-go/handoff/internal/flock"
)

// testServer is the test daemon's HTTP service and its handoff.Drainable.
//
// It is a small hand-written HTTP/1.1 server so that the drain rules of
// DESIGN step 4 and 5 are exact: Drain stops accepting, rejects new writes
// (503), answers every request already in flight and puts "Connection:
// close" on every response; reads on connections already open go on until
// Seal. Seal answers nothing more, closes every connection between requests,
// fsyncs and closes the log. ResumeAfterAbort reopens the log from the data
// directory (never from memory) and accepts again.
type testServer struct {
	ln    *net.TCPListener
	dir   string
	log   *slog.Logger
	cfg   *daemonConfig
	build string

	mu        sync.Mutex
	cond      *sync.Cond
	state     serverState
	st        *kvStore
	conns     map[net.Conn]connPhase
	accepting bool
	acceptEnd chan struct{}
}

type serverState int

const (
	stateServing serverState = iota
	stateDraining
	stateSealed
)

type connPhase int

const (
	connNew  connPhase = iota // accepted, no request read yet
	connBusy                  // a request is being answered
	connIdle                  // between requests (keep-alive)
)

func newTestServer(ln net.Listener, st *kvStore, cfg *daemonConfig, log *slog.Logger) (*testServer, error) {
	tl, ok := ln.(*net.TCPListener)
	if !ok {
		return nil, fmt.Errorf("listener is a %T, want TCP", ln)
	}
	s := &testServer{ln: tl, dir: cfg.data, log: log, cfg: cfg, build: cfg.build, st: st,
		conns: make(map[net.Conn]connPhase)}
	s.cond = sync.NewCond(&s.mu)
	return s, nil
}

// start begins accepting; s.mu must not be held.
func (s *testServer) start() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.startLocked()
}

func (s *testServer) startLocked() {
	if s.accepting {
		return
	}
	_ = s.ln.SetDeadline(time.Time{})
	s.accepting = true
	s.acceptEnd = make(chan struct{})
	go s.acceptLoop(s.acceptEnd)
}

func (s *testServer) acceptLoop(end chan struct{}) {
	defer close(end)
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				s.log.Error("testd.accept", "err", err)
			}
			return
		}
		s.mu.Lock()
		s.conns[c] = connNew
		s.mu.Unlock()
		go s.serveConn(c)
	}
}

// stopAccepting interrupts Accept (the socket itself stays open: the
// supervisor and the library keep their copies) and waits for the loop.
func (s *testServer) stopAccepting() {
	s.mu.Lock()
	end := s.acceptEnd
	running := s.accepting
	s.mu.Unlock()
	if !running {
		return
	}
	_ = s.ln.SetDeadline(time.Now())
	<-end
	s.mu.Lock()
	s.accepting = false
	s.mu.Unlock()
}

func (s *testServer) serveConn(c net.Conn) {
	br := bufio.NewReader(c)
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			s.drop(c)
			return
		}
		body, _ := io.ReadAll(io.LimitReader(req.Body, 1<<20))
		if !s.begin(c) {
			s.drop(c) // sealed: no answer after Seal (DESIGN step 5)
			return
		}
		status, out := s.handle(req, body)
		keep := s.keepAlive(req)
		err = writeResponse(c, status, out, keep)
		s.end(c, keep && err == nil)
		if !keep || err != nil {
			return
		}
	}
}

func writeResponse(c net.Conn, status int, body string, keep bool) error {
	conn := "keep-alive"
	if !keep {
		conn = "close"
	}
	_ = c.SetWriteDeadline(time.Now().Add(30 * time.Second))
	_, err := fmt.Fprintf(c, "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\nConnection: %s\r\n\r\n%s",
		status, http.StatusText(status), len(body), conn, body)
	return err
}

// begin marks c busy unless the server has sealed.
func (s *testServer) begin(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state == stateSealed {
		return false
	}
	s.conns[c] = connBusy
	return true
}

func (s *testServer) keepAlive(req *http.Request) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state == stateServing && !req.Close
}

// end marks c idle, or closes it when the response said Connection: close.
func (s *testServer) end(c net.Conn, keep bool) {
	if !keep {
		s.drop(c)
		return
	}
	s.mu.Lock()
	if _, ok := s.conns[c]; ok {
		s.conns[c] = connIdle
	}
	s.cond.Broadcast()
	s.mu.Unlock()
}

func (s *testServer) drop(c net.Conn) {
	c.Close()
	s.mu.Lock()
	delete(s.conns, c)
	s.cond.Broadcast()
	s.mu.Unlock()
}

func (s *testServer) handle(req *http.Request, body []byte) (int, string) {
	switch {
	case req.Method == http.MethodGet && req.URL.Path == "/stats":
		return s.stats()
	case strings.HasPrefix(req.URL.Path, "/kv/") && req.Method == http.MethodGet:
		return s.get(strings.TrimPrefix(req.URL.Path, "/kv/"))
	case strings.HasPrefix(req.URL.Path, "/kv/") && req.Method == http.MethodPut:
		return s.put(strings.TrimPrefix(req.URL.Path, "/kv/"), string(body))
	}
	return http.StatusNotFound, "no such route\n"
}

type statsReply struct {
	PID      int    `json:"pid"`
	Revision uint64 `json:"revision"`
	Build    string `json:"build"`
}

func (s *testServer) stats() (int, string) {
	st := s.store()
	if st == nil {
		return http.StatusServiceUnavailable, "sealed\n"
	}
	b, _ := json.Marshal(statsReply{PID: os.Getpid(), Revision: st.revision(), Build: s.build})
	return http.StatusOK, string(b)
}

func (s *testServer) get(key string) (int, string) {
	st := s.store()
	if st == nil {
		return http.StatusServiceUnavailable, "sealed\n"
	}
	v, ok := st.get(key)
	if !ok {
		return http.StatusNotFound, ""
	}
	return http.StatusOK, v
}

// put rejects writes once draining (DESIGN step 4) and checks invariant 1
// (only the lock holder writes) before every write.
func (s *testServer) put(key, value string) (int, string) {
	s.mu.Lock()
	st, state := s.st, s.state
	s.mu.Unlock()
	if state != stateServing || st == nil {
		return http.StatusServiceUnavailable, "draining\n"
	}
	if !holdsFlock(os.Getpid(), s.dir) {
		holder, err := flock.Holder(s.dir)
		s.log.Error("testd.INVARIANT", "violation", "write without the data-dir lock", "holder", holder, "err", err)
		return http.StatusInternalServerError, "invariant 1 violated: not the lock holder\n"
	}
	rev, err := st.put(key, value)
	if err != nil {
		return http.StatusInternalServerError, err.Error()
	}
	return http.StatusOK, strconv.FormatUint(rev, 10)
}

func (s *testServer) store() *kvStore {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st
}

// Drain implements handoff.Drainable.
func (s *testServer) Drain(ctx context.Context) (handoff.DrainReport, error) {
	s.mu.Lock()
	s.state = stateDraining
	s.mu.Unlock()
	s.stopAccepting()
	s.cfg.hold("drain")
	if s.cfg.fails("drain-slow") {
		<-ctx.Done()
		return handoff.DrainReport{}, fmt.Errorf("testd: drain-slow: %w", ctx.Err())
	}
	if err := s.waitQuiet(ctx, connNew, connBusy); err != nil {
		return handoff.DrainReport{}, err
	}
	s.mu.Lock()
	open := len(s.conns)
	s.mu.Unlock()
	return handoff.DrainReport{OpenConnsRemaining: uint32(open), AcceptClosed: true}, nil
}

// waitQuiet waits until no connection is in one of the given phases.
func (s *testServer) waitQuiet(ctx context.Context, phases ...connPhase) error {
	stop := context.AfterFunc(ctx, func() {
		s.mu.Lock()
		s.cond.Broadcast()
		s.mu.Unlock()
	})
	defer stop()
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.countIn(phases) > 0 {
		if ctx.Err() != nil {
			return fmt.Errorf("testd: %d connections still busy: %w", s.countIn(phases), ctx.Err())
		}
		s.cond.Wait()
	}
	return nil
}

func (s *testServer) countIn(phases []connPhase) int {
	n := 0
	for _, p := range s.conns {
		for _, want := range phases {
			if p == want {
				n++
			}
		}
	}
	return n
}

// Seal implements handoff.Drainable: after it starts, no request is
// answered; it closes every connection between requests and closes the log.
func (s *testServer) Seal(ctx context.Context) (handoff.SealReport, error) {
	s.cfg.hold("seal")
	s.mu.Lock()
	s.state = stateSealed
	s.mu.Unlock()
	if err := s.waitQuiet(ctx, connBusy); err != nil {
		return handoff.SealReport{}, err
	}
	s.closeConns()
	handoff.ReportSealProgress(ctx, handoff.SealProgress{ShardsSealed: 0, ShardsTotal: 1})
	if d := s.cfg.duration("seal-slow"); d > 0 {
		s.log.Info("testd.seal", "slow", d)
		select {
		case <-time.After(d): // the hook is slow on purpose; heartbeats must cover it
		case <-ctx.Done():
			return handoff.SealReport{}, ctx.Err()
		}
	}
	s.mu.Lock()
	st := s.st
	s.st = nil
	s.mu.Unlock()
	rev := st.revision()
	if err := st.close(); err != nil {
		return handoff.SealReport{}, err
	}
	handoff.ReportSealProgress(ctx, handoff.SealProgress{ShardsSealed: 1, ShardsTotal: 1, LastRevision: rev})
	if s.cfg.fails("seal") {
		return handoff.SealReport{}, errors.New("testd: injected seal failure (footer fsync failed)")
	}
	s.log.Info("testd.sealed", "revision", rev)
	return handoff.SealReport{LastRevisionPerShard: []uint64{rev}}, nil
}

func (s *testServer) closeConns() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.Close()
	}
}

// ResumeAfterAbort implements handoff.Drainable: the log is reopened from
// the data directory, never kept from memory.
func (s *testServer) ResumeAfterAbort(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.st != nil {
		if err := s.st.close(); err != nil {
			return err
		}
		s.st = nil
	}
	st, err := openStore(s.dir)
	if err != nil {
		return fmt.Errorf("testd: reopen store: %w", err)
	}
	s.st = st
	s.state = stateServing
	s.startLocked()
	s.log.Info("testd.resumed", "revision", st.revision())
	go s.cfg.event("resumed")
	return nil
}

// SnapshotState implements handoff.Drainable.
func (s *testServer) SnapshotState() handoff.StateSnapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	snap := handoff.StateSnapshot{ShardCount: 1, OpenConns: uint32(len(s.conns))}
	if s.st != nil {
		snap.LastRevisionPerShard = []uint64{s.st.revision()}
	}
	return snap
}

// shutdown closes what is left after the process stops serving.
func (s *testServer) shutdown() {
	s.stopAccepting()
	s.closeConns()
	if st := s.store(); st != nil {
		_ = st.close()
	}
}
