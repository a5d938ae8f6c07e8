package supervisor

import (
	"context"
	"fmt"
	"time"

	"github.com/handoff-go/handoff/internal/peer"
	"github.com/handoff-go/handoff/internal/wire"
)

// Status is the supervisor's own view of the service, for status reports
// (`handoff status`). The daemon's view is [Supervisor.Snapshot].
type Status struct {
	// IncumbentPID is the serving daemon's pid; 0 when none runs.
	IncumbentPID int
	// IncumbentBinary is the resolved path the incumbent was started from.
	IncumbentBinary string
	// IncumbentBuildID is the build id from the incumbent's Hello; empty for
	// a cold-started incumbent (its Snapshot carries it).
	IncumbentBuildID string
	// IncumbentSince is when the incumbent was spawned (or adopted).
	IncumbentSince time.Time
	// Listeners names the listening sockets, in the order daemons get them.
	Listeners []string
	// Draining lists the pids of old generations still exiting after Commit.
	Draining []int
	// Last is the outcome of the last handoff; nil before the first.
	Last *Outcome
}

// Status returns a consistent copy of the supervisor's state.
func (s *Supervisor) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Status{Listeners: listenerNames(s.listeners)}
	if g := s.current; g != nil && !g.hasExited() {
		st.IncumbentPID, st.IncumbentBinary = g.pid, g.binary
		st.IncumbentBuildID, st.IncumbentSince = g.buildID, g.startedAt
	}
	for _, g := range s.draining {
		st.Draining = append(st.Draining, g.pid)
	}
	if s.last != nil {
		last := *s.last
		st.Last = &last
	}
	return st
}

// Snapshot is the incumbent's report of itself: its StateSnapshot with the
// identity the library adds.
type Snapshot struct {
	PID                  int
	BuildID              string
	Started              time.Time
	ShardCount           uint32
	OpenConns            uint32
	LastRevisionPerShard []uint64
	// Listeners names the listeners the incumbent inherited.
	Listeners []string
}

// Snapshot asks the incumbent for its state over the control socket, as a
// client (it never starts a swap): the kernel must say that the incumbent
// answers (SO_PEERCRED), then Hello, HelloAck with a fresh id, and
// SnapshotRequest. The wait ends at ctx's deadline, or after the protocol's
// silence limit. It fails with ErrNoIncumbent when none runs.
func (s *Supervisor) Snapshot(ctx context.Context) (Snapshot, error) {
	pid := s.Incumbent()
	if pid == 0 {
		return Snapshot{}, ErrNoIncumbent
	}
	c, err := dialControl(ctx, s.controlPath)
	if err != nil {
		return Snapshot{}, fmt.Errorf("handoff: snapshot: connect to %s: %w", s.controlPath, err)
	}
	wc := wire.NewConn(c)
	defer wc.Close()
	if err := checkPeer(c, pid); err != nil {
		return Snapshot{}, fmt.Errorf("handoff: snapshot: %w", err)
	}
	if _, err := clientHandshake(wc, wire.RoleClient); err != nil {
		return Snapshot{}, fmt.Errorf("handoff: snapshot: %w", err)
	}
	return requestSnapshot(ctx, wc)
}

func requestSnapshot(ctx context.Context, wc *wire.Conn) (Snapshot, error) {
	if err := wc.Send(time.Now().Add(peer.Silence), &wire.SnapshotRequest{}); err != nil {
		return Snapshot{}, fmt.Errorf("handoff: snapshot: SnapshotRequest: %w", err)
	}
	r, err := peer.Next(ctx, wc, time.Now().Add(peer.Silence))
	if err != nil {
		return Snapshot{}, fmt.Errorf("handoff: snapshot: waiting for Snapshot: %w", err)
	}
	m, ok := r.Msg.(*wire.Snapshot)
	if !ok {
		return Snapshot{}, fmt.Errorf("handoff: snapshot: expected Snapshot, got %v: %w", r.Msg.Type(), ErrProtocol)
	}
	return Snapshot{
		PID: int(m.PID), BuildID: m.BuildID, Started: time.UnixMilli(m.StartedUnixMillis),
		ShardCount: m.ShardCount, OpenConns: m.OpenConns,
		LastRevisionPerShard: m.LastRevisionPerShard, Listeners: m.Listeners,
	}, nil
}
