package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/handoff-go/handoff/internal/config"
	"github.com/handoff-go/handoff/internal/sessioncap"
	"github.com/handoff-go/handoff/internal/sysx"
)

// Errors the trigger server reports with their own codes.
var (
	errNotAllowed = errors.New("handoff: not allowed")
	errBadRequest = errors.New("handoff: bad request")
)

const (
	maxRequest     = 64 << 10         // a request line is tiny; bound what a peer can make us buffer
	requestTimeout = 30 * time.Second // a client must send its request line within this
	writeTimeout   = 10 * time.Second // per event line: a stalled client never stalls a swap for longer

	// maxTriggerConns bounds the trigger connections held at once. Beyond
	// it, the oldest connection that has not sent a valid request yet is
	// closed to make room, so silent clients cannot lock out the operator;
	// a client finding every slot busy with a request gets a "busy" error.
	maxTriggerConns = 64
)

// triggerServer serves the trigger socket: one request per connection,
// answered with JSON event lines.
type triggerServer struct {
	ln     *net.UnixListener
	path   string
	owned  ownedPath
	admit  func(cred *unix.Ucred) error
	handle func(ctx context.Context, w *eventWriter, req request)
	log    *slog.Logger
	wg     sync.WaitGroup
	conns  *sessioncap.Table
}

// newTriggerServer serves ln, bound at path (owned: the inode to remove at
// the final stop while it is still ours).
func newTriggerServer(ln *net.UnixListener, path string, owned ownedPath) *triggerServer {
	return &triggerServer{ln: ln, path: path, owned: owned, conns: sessioncap.New(maxTriggerConns)}
}

// listenTrigger binds the trigger socket at path with mode: under a
// temporary name first, then renamed over path, so the path never names a
// socket with the wrong mode or nobody behind it. It refuses when a live
// process answers at path (another supervisor): that socket is never
// replaced.
func listenTrigger(path string, mode os.FileMode) (*triggerServer, error) {
	// A live socket at path is refused; a stale one is removed.
	if err := claimSocketPath("unix", path); err != nil {
		return nil, fmt.Errorf("%w (trigger_socket: is another `handoff supervise` running with this config?)", err)
	}
	tmp := filepath.Join(filepath.Dir(path), fmt.Sprintf(".handoff-%d.sock", os.Getpid()))
	if len(tmp) > config.MaxSocketPath {
		tmp = path // no room for the temporary name: bind in place
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("handoff: trigger_socket %s: %w", path, err)
	}
	ln.SetUnlinkOnClose(false)
	if err := placeTrigger(tmp, path, mode); err != nil {
		ln.Close()
		_ = os.Remove(tmp)
		return nil, err
	}
	owned, err := own(path)
	if err != nil {
		ln.Close()
		return nil, err
	}
	return newTriggerServer(ln, path, owned), nil
}

func placeTrigger(tmp, path string, mode os.FileMode) error {
	if err := os.Chmod(tmp, mode); err != nil {
		return fmt.Errorf("handoff: trigger_socket: %w", err)
	}
	if tmp == path {
		return nil
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("handoff: trigger_socket: %w", err)
	}
	return nil
}

// admitUIDs admits root, the supervisor's own uid and the allowed ones.
func admitUIDs(allowed []uint32, configFile string) func(*unix.Ucred) error {
	self := uint32(os.Geteuid())
	return func(cred *unix.Ucred) error {
		if cred.Uid == 0 || cred.Uid == self || slices.Contains(allowed, cred.Uid) {
			return nil
		}
		return fmt.Errorf("%w: uid %d (pid %d) may not use this trigger socket: only root, the supervisor's uid %d and allowed_uids of %s may",
			errNotAllowed, cred.Uid, cred.Pid, self, configFile)
	}
}

// serve accepts connections until close.
func (t *triggerServer) serve(ctx context.Context) {
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		for {
			c, err := t.ln.AcceptUnix()
			if err != nil {
				return // closed
			}
			slot, how := t.conns.Admit(c)
			switch how {
			case sessioncap.Refused:
				t.refuseBusy(c)
				continue
			case sessioncap.AdmittedByEviction:
				t.warnLimit("closed the oldest trigger connection that had not sent a request")
			}
			t.wg.Add(1)
			go func() {
				defer t.wg.Done()
				defer slot.Release()
				t.conn(ctx, c, slot)
			}()
		}
	}()
}

// refuseBusy answers a connection beyond the limit with a "busy" error and
// closes it. A fresh connection's send buffer is empty, so the one short
// line never waits; the deadline is there all the same.
func (t *triggerServer) refuseBusy(c *net.UnixConn) {
	defer c.Close()
	t.warnLimit("refused a trigger connection: every connection holds a request in progress")
	_ = c.SetWriteDeadline(time.Now().Add(time.Second))
	_ = json.NewEncoder(c).Encode(errorEvent{Event: evError, Code: codeBusy,
		Error: fmt.Sprintf("handoff: the supervisor is serving %d trigger requests already; retry later", maxTriggerConns)})
}

// warnLimit logs that the connection limit was hit (rate-limited by the
// table).
func (t *triggerServer) warnLimit(what string) {
	if t.conns.ReportLimit() {
		t.log.Warn("handoff.trigger_limit", "limit", maxTriggerConns, "what", what)
	}
}

// conn serves one connection: peer check, one request, its answer. The
// slot is vouched for once a valid request arrived: from then on the
// connection is not evicted to make room for another.
func (t *triggerServer) conn(ctx context.Context, c *net.UnixConn, slot *sessioncap.Slot) {
	defer c.Close()
	w := newEventWriter(c)
	defer w.close()
	cred, err := sysx.PeerCred(c)
	if err == nil {
		err = t.admit(cred)
	}
	if err != nil {
		t.log.Warn("handoff.trigger", "refused", err)
		w.finish(errorFor(err))
		return
	}
	req, err := readRequest(c)
	if err != nil {
		w.finish(errorFor(err))
		return
	}
	slot.Vouch()
	level := slog.LevelInfo
	if req.Op == opStatus {
		level = slog.LevelDebug
	}
	t.log.Log(ctx, level, "handoff.trigger", "op", req.Op, "binary", req.Binary, "dry_run", req.DryRun, "uid", cred.Uid, "pid", cred.Pid)
	t.handle(ctx, w, req)
}

// readRequest reads and checks the one request line. Unknown fields are
// refused: a misspelt "dry_run" must not become a real swap.
func readRequest(c net.Conn) (request, error) {
	var req request
	if err := c.SetReadDeadline(time.Now().Add(requestTimeout)); err != nil {
		return req, fmt.Errorf("handoff: %w", err)
	}
	line, err := bufio.NewReader(io.LimitReader(c, maxRequest)).ReadBytes('\n')
	if err != nil && !(errors.Is(err, io.EOF) && len(line) > 0) {
		return req, fmt.Errorf("%w: reading the request line: %w", errBadRequest, err)
	}
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return req, fmt.Errorf("%w: %w", errBadRequest, err)
	}
	return req, checkRequest(req)
}

func checkRequest(req request) error {
	switch req.Op {
	case opStatus:
		if req.Binary != "" || req.DryRun || req.SHA256 != "" {
			return fmt.Errorf("%w: status takes no binary, dry_run or sha256", errBadRequest)
		}
	case opUpgrade, opUpgradeSupervisor:
		if req.Binary != "" && !filepath.IsAbs(req.Binary) {
			return fmt.Errorf("%w: binary %q must be an absolute path", errBadRequest, req.Binary)
		}
		if req.Op == opUpgradeSupervisor && (req.DryRun || req.SHA256 != "") {
			return fmt.Errorf("%w: %s takes no dry_run or sha256", errBadRequest, opUpgradeSupervisor)
		}
	default:
		return fmt.Errorf("%w: unknown op %q (want %q, %q or %q)", errBadRequest, req.Op, opUpgrade, opUpgradeSupervisor, opStatus)
	}
	return nil
}

// close stops accepting, waits for every connection to finish and removes
// the socket file while it is still ours.
func (t *triggerServer) close() error {
	t.ln.Close()
	t.wg.Wait()
	return t.owned.remove()
}

// eventWriter writes JSON event lines to a client from one goroutine, so a
// slow client never blocks the swap that reports progress to it.
type eventWriter struct {
	c    net.Conn
	ch   chan any
	done chan struct{}
	once sync.Once
}

func newEventWriter(c net.Conn) *eventWriter {
	w := &eventWriter{c: c, ch: make(chan any, 64), done: make(chan struct{})}
	go w.run()
	return w
}

func (w *eventWriter) run() {
	defer close(w.done)
	enc := json.NewEncoder(w.c)
	failed := false
	for v := range w.ch {
		if failed {
			continue // the client is gone; drain
		}
		_ = w.c.SetWriteDeadline(time.Now().Add(writeTimeout))
		failed = enc.Encode(v) != nil
	}
}

// emit queues an event; when the client lags far behind it is dropped.
func (w *eventWriter) emit(v any) {
	select {
	case w.ch <- v:
	default:
	}
}

// finish queues the last event (never dropped) and waits until it is
// written.
func (w *eventWriter) finish(v any) {
	w.ch <- v
	w.close()
}

func (w *eventWriter) close() {
	w.once.Do(func() { close(w.ch) })
	<-w.done
}
