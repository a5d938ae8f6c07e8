package handoff

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"sync/atomic"
	"time"

	"github.com/handoff-go/handoff/internal/crashpoint"
	"github.com/handoff-go/handoff/internal/peer"
	"github.com/handoff-go/handoff/internal/wire"
)

// Successor is the role of a process spawned by a supervisor to take over
// from the incumbent. Its steps are distinct types, each usable once:
//
//	hs, err := succ.Handshake(ctx, buildID)   // after warming up
//	begun, err := hs.WaitForBegin(ctx)        // then take the lock, open the sealed state
//	inc, err := begun.AnnounceAndBind(ctx, ready, controlPath, lock)
//	// only now acknowledge writes
//
// Any step returns an error wrapping [ErrAborted] when the supervisor abandons
// the swap or goes away before Commit; the daemon must then exit without
// having written.
type Successor struct {
	conn      *wire.Conn
	listeners *Listeners
	buildID   string
	used      atomic.Bool
}

func (*Successor) isRole() {}

// newSuccessor is called by DetectRole with the inherited socketpair end and
// listeners.
func newSuccessor(conn *net.UnixConn, ls *Listeners) *Successor {
	return &Successor{conn: wire.NewConn(conn), listeners: ls}
}

// Listeners returns the listeners inherited from the supervisor. The daemon
// may prepare with them, but must not serve on them before Commit.
func (s *Successor) Listeners() *Listeners { return s.listeners }

// Handshook is a successor that has said Hello; next it waits for Begin.
type Handshook struct {
	s    *Successor
	used atomic.Bool
}

// Begun is a successor told to take over: it may take the data-dir lock and
// open the sealed state, but must acknowledge no write until
// AnnounceAndBind returns. While it holds a Begun the library sends
// heartbeats, so opening large state is fine.
type Begun struct {
	s          *Successor
	heartbeats *peer.Heartbeats
	used       atomic.Bool
}

// Handshake sends Hello, meaning "warm, ready to take over", and waits for
// the supervisor's HelloAck. Warm up (load indexes, open caches read-only)
// before calling it: the supervisor does not touch the incumbent until then.
func (s *Successor) Handshake(ctx context.Context, buildID string) (*Handshook, error) {
	if s.used.Swap(true) {
		return nil, fmt.Errorf("handoff: Successor.Handshake called twice: %w", ErrUsed)
	}
	s.buildID = buildID
	if err := s.sendHello(); err != nil {
		s.conn.Close()
		return nil, s.lost("send Hello", err)
	}
	if err := s.awaitAck(ctx); err != nil {
		s.conn.Close()
		return nil, err
	}
	crashpoint.Hit(crashpoint.SuccessorAfterHello)
	return &Handshook{s: s}, nil
}

func (s *Successor) sendHello() error {
	return s.conn.Send(time.Now().Add(peer.Silence), ourHello(wire.RoleSuccessor, s.buildID))
}

// ourHello is this process's Hello in the given role.
func ourHello(role wire.Role, buildID string) *wire.Hello {
	return &wire.Hello{Role: role, PID: int32(os.Getpid()), BuildID: buildID,
		MinVersion: wire.MinVersion, MaxVersion: wire.MaxVersion, Capabilities: wire.DefaultCapabilities}
}

// checkChosenVersion refuses a protocol version the peer chose outside the
// range this process offered.
func checkChosenVersion(who string, v uint16) error {
	if v < wire.MinVersion || v > wire.MaxVersion {
		return fmt.Errorf("handoff: %s chose protocol version %d outside ours [%d, %d]: %w",
			who, v, wire.MinVersion, wire.MaxVersion, ErrVersionMismatch)
	}
	return nil
}

func (s *Successor) awaitAck(ctx context.Context) error {
	r, err := peer.Next(ctx, s.conn, time.Time{})
	if err != nil {
		return s.lost("wait for HelloAck", err)
	}
	switch m := r.Msg.(type) {
	case *wire.HelloAck:
		if err := checkChosenVersion("supervisor", m.Version); err != nil {
			return err
		}
		s.conn.SetNegotiated(m.Version, r.ID)
		return nil
	case *wire.Abort:
		return abortedBy(m)
	}
	return fmt.Errorf("handoff: expected HelloAck from supervisor, got %v: %w", r.Msg.Type(), ErrProtocol)
}

// lost turns a session error into the error a successor acts on: anything
// before Commit means the swap did not happen.
func (s *Successor) lost(step string, err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("handoff: successor: %s: supervisor went away: %w (%w)", step, ErrAborted, err)
	}
	return fmt.Errorf("handoff: successor: %s: %w (%w)", step, ErrAborted, err)
}

func abortedBy(m *wire.Abort) error {
	if m.Detail != "" {
		return fmt.Errorf("handoff: supervisor aborted the swap (%s: %s): %w", m.Reason, m.Detail, ErrAborted)
	}
	return fmt.Errorf("handoff: supervisor aborted the swap (%s): %w", m.Reason, ErrAborted)
}

// WaitForBegin waits until the incumbent has sealed and the supervisor says
// Begin. It returns an error wrapping [ErrAborted] if the supervisor aborts
// (a dry run ends here) or goes away first.
func (h *Handshook) WaitForBegin(ctx context.Context) (*Begun, error) {
	if h.used.Swap(true) {
		return nil, fmt.Errorf("handoff: Handshook.WaitForBegin called twice: %w", ErrUsed)
	}
	s := h.s
	r, err := peer.Next(ctx, s.conn, time.Time{})
	if err != nil {
		s.conn.Close()
		return nil, s.lost("wait for Begin", err)
	}
	switch m := r.Msg.(type) {
	case *wire.Begin:
		crashpoint.Hit(crashpoint.SuccessorAfterBegin)
		return &Begun{s: s, heartbeats: peer.StartHeartbeats(s.conn)}, nil
	case *wire.Abort:
		s.conn.Close()
		return nil, abortedBy(m)
	}
	s.conn.Close()
	return nil, fmt.Errorf("handoff: expected Begin from supervisor, got %v: %w", r.Msg.Type(), ErrProtocol)
}

// Listeners returns the inherited listeners.
func (b *Begun) Listeners() *Listeners { return b.s.listeners }

// AnnounceAndBind reports readiness and waits for the supervisor's decision.
// lock must be the data-dir lock, taken after WaitForBegin.
//
// On Commit it binds the control socket path (temporary name, then rename
// over the old one, so the path always answers) and only then returns the
// new incumbent: the path changing hands is the commit mark, so it happens
// before the first write this process may acknowledge. On Abort, or if the
// supervisor goes away, it returns an error wrapping [ErrAborted]; the
// daemon must then release the lock and exit without having written.
func (b *Begun) AnnounceAndBind(ctx context.Context, ready ReadinessSnapshot, socketPath string, lock *DataDirLock, opts ...Option) (*Incumbent, error) {
	if b.used.Swap(true) {
		return nil, fmt.Errorf("handoff: Begun.AnnounceAndBind called twice: %w", ErrUsed)
	}
	s := b.s
	defer s.conn.Close()
	if lock == nil || !lock.held() {
		b.heartbeats.Stop()
		return nil, fmt.Errorf("handoff: AnnounceAndBind needs the data-dir lock held: %w", ErrLockHeld)
	}
	crashpoint.Hit(crashpoint.SuccessorAfterLockBeforeReady)
	err := s.conn.Send(time.Now().Add(peer.Silence), readyMessage(ready))
	b.heartbeats.Stop()
	if err != nil {
		return nil, s.lost("send Ready", err)
	}
	crashpoint.Hit(crashpoint.SuccessorAfterReadyBeforeCommit)
	if err := s.awaitCommit(ctx); err != nil {
		return nil, err
	}
	crashpoint.Hit(crashpoint.SuccessorAfterCommitBeforeBind)
	inc, err := newIncumbent(socketPath, lock, append([]Option{WithListeners(s.listeners), WithBuildID(s.buildID)}, opts...))
	if err != nil {
		return nil, fmt.Errorf("handoff: committed successor could not bind %s: %w", socketPath, err)
	}
	crashpoint.Hit(crashpoint.SuccessorAfterBindBeforeServe)
	return inc, nil
}

func readyMessage(r ReadinessSnapshot) *wire.Ready {
	m := &wire.Ready{
		ListeningOn:                slices.Clone(r.ListeningOn),
		HealthzOK:                  r.HealthzOK,
		AdvertisedRevisionPerShard: slices.Clone(r.AdvertisedRevisionPerShard),
	}
	if !r.DataDirFingerprint.IsZero() {
		m.Fingerprint = r.DataDirFingerprint[:]
	}
	return m
}

func (s *Successor) awaitCommit(ctx context.Context) error {
	r, err := peer.Next(ctx, s.conn, time.Time{})
	if err != nil {
		return s.lost("wait for Commit", err)
	}
	switch m := r.Msg.(type) {
	case *wire.Commit:
		return nil
	case *wire.Abort:
		return abortedBy(m)
	}
	return fmt.Errorf("handoff: expected Commit from supervisor, got %v: %w (%w)", r.Msg.Type(), ErrAborted, ErrProtocol)
}
