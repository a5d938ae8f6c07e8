package supervisor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"syscall"
	"time"

	"github.com/handoff-go/handoff/internal/crashpoint"
	"github.com/handoff-go/handoff/internal/journal"
	"github.com/handoff-go/handoff/internal/peer"
	"github.com/handoff-go/handoff/internal/sysx"
	"github.com/handoff-go/handoff/internal/wire"
)

// swap is one handoff in progress. Each protocol step is its own method; a
// step that fails returns a *stepError naming the abort reason, and run
// sends the swap down the abort path.
type swap struct {
	s        *Supervisor
	spec     SpawnSpec
	id       wire.ID
	begun    time.Time
	deadline time.Time // the overall budget, plus wire slack
	phase    journal.Phase
	stepAt   time.Time

	old      *generation
	oconn    *wire.Conn // to the incumbent
	ctlIno   uint64     // inode of the incumbent's socket file at the control path
	ohb      *peer.Heartbeats
	prepared bool // PrepareHandoff sent: the incumbent must be told to resume
	n        *generation
	nhb      *peer.Heartbeats
	sealed   *wire.SealComplete

	out Outcome
}

// PerformHandoff replaces the incumbent with a new process started from
// spec, or rolls back. It returns the Outcome in both cases; a rollback also
// returns an error wrapping ErrRolledBack and the cause. A handoff already in
// progress makes it fail at once with ErrHandoffInProgress, having sent
// nothing; a cold start or crash restart in progress is waited for (within
// ctx), since it is starting the daemon to hand off from.
func (s *Supervisor) PerformHandoff(ctx context.Context, spec SpawnSpec) (Outcome, error) {
	if err := s.excl.lockHandoff(ctx); err != nil {
		return Outcome{}, err
	}
	defer s.excl.unlock()
	if err := s.ctxErr(ctx); err != nil {
		return Outcome{}, err
	}
	s.mu.Lock()
	old := s.current
	s.mu.Unlock()
	if !spec.DryRun && (old == nil || old.hasExited()) {
		return Outcome{}, ErrNoIncumbent
	}
	id, err := wire.NewID()
	if err != nil {
		return Outcome{}, err
	}
	if !spec.DryRun {
		// Room for the generation this swap retires, before the swap's clock
		// starts; a canary start retires nobody.
		s.evictDraining()
	}
	now := time.Now()
	w := &swap{s: s, spec: spec, id: id, begun: now, stepAt: now, old: old, phase: journal.Idle,
		deadline: now.Add(spec.deadline() + peer.WireSlack)}
	w.out = Outcome{HandoffID: id.String(), DryRun: spec.DryRun}
	if old != nil {
		w.out.OldPID = old.pid
	}
	return w.run(ctx)
}

func (w *swap) run(ctx context.Context) (Outcome, error) {
	ctx, cancel := context.WithDeadline(ctx, w.deadline)
	defer cancel()
	w.s.logf().Info("handoff.start", "id", w.out.HandoffID, "binary", w.spec.Binary, "dry_run", w.spec.DryRun)
	if err := w.move(journal.Idle, EvStart); err != nil {
		return w.out, err
	}
	for _, step := range w.steps() {
		if err := step(ctx); err != nil {
			return w.abort(err)
		}
	}
	if w.spec.DryRun {
		return w.abort(&stepError{reason: wire.ReasonDryRun, err: errors.New("dry run: successor started and handshook")})
	}
	return w.commit()
}

func (w *swap) steps() []func(context.Context) error {
	if w.spec.DryRun {
		return []func(context.Context) error{w.spawnSuccessor, w.successorHello}
	}
	return []func(context.Context) error{
		w.connectIncumbent, w.spawnSuccessor, w.successorHello,
		w.drain, w.seal, w.begin, w.decide,
	}
}

// move advances the phase machine and writes the journal for the new phase.
func (w *swap) move(expect journal.Phase, ev Event) error {
	if w.phase != expect {
		return &TransitionError{From: w.phase, Event: ev}
	}
	to, err := next(w.phase, ev)
	if err != nil {
		return err
	}
	w.phase = to
	return w.s.record(w.journalRecord())
}

func (w *swap) journalRecord() journal.Record {
	rec := journal.Record{Phase: w.phase, HandoffID: w.out.HandoffID, Binary: w.out.Binary,
		DryRun: w.spec.DryRun, AbortReason: w.out.Reason, StartedAt: w.begun}
	if w.old != nil {
		rec.IncumbentPID, rec.IncumbentStart, rec.IncumbentBinary = w.old.pid, w.old.start, w.old.binary
	}
	if w.n != nil {
		rec.SuccessorPID, rec.SuccessorStart = w.n.pid, w.n.start
	}
	return rec
}

// progress records a finished step: its duration, a log line, the caller's
// event hook.
func (w *swap) progress(step, detail string) {
	now := time.Now()
	took := now.Sub(w.stepAt)
	w.stepAt = now
	w.out.Phases = append(w.out.Phases, PhaseDuration{Phase: step, Duration: took})
	w.s.logf().Info("handoff."+step, "id", w.out.HandoffID, "took", took, "detail", detail)
	if w.spec.OnEvent != nil {
		w.spec.OnEvent(Progress{Step: step, Elapsed: now.Sub(w.begun), Took: took, Detail: detail})
	}
}

// connectIncumbent opens a control session with the incumbent. The kernel
// says who answers (SO_PEERCRED): it must be the incumbent we know.
func (w *swap) connectIncumbent(ctx context.Context) error {
	c, err := dialControl(ctx, w.s.controlPath)
	if err != nil {
		return fail(wire.ReasonPeerLost, "connect to incumbent at %s: %w", w.s.controlPath, err)
	}
	w.oconn = wire.NewConn(c)
	if _, w.ctlIno, err = sysx.PathInode(w.s.controlPath); err != nil {
		return fail(wire.ReasonPeerLost, "control socket %s: %w", w.s.controlPath, err)
	}
	if err := checkPeer(c, w.old.pid); err != nil {
		return &stepError{reason: wire.ReasonIdentity, err: err}
	}
	hello, err := w.oconn.Recv(time.Now().Add(peer.Silence))
	if err != nil {
		return fail(wire.ReasonPeerLost, "incumbent Hello: %w", err)
	}
	if _, err := w.ack(w.oconn, hello); err != nil {
		return err
	}
	w.ohb = peer.StartHeartbeats(w.oconn) // the incumbent waits while the successor warms up
	return nil
}

// ack checks a peer's Hello, negotiates the version and answers HelloAck
// carrying the handoff id.
func (w *swap) ack(c *wire.Conn, r wire.Received) (*wire.Hello, error) {
	h, ok := r.Msg.(*wire.Hello)
	if !ok {
		return nil, fail(wire.ReasonProtocol, "expected Hello, got %v: %w", r.Msg.Type(), ErrProtocol)
	}
	if err := answerHello(c, h, w.id, wire.RoleSupervisor); err != nil {
		if errors.Is(err, errNoCommonVersion) {
			return nil, &stepError{reason: wire.ReasonVersionMismatch, err: fmt.Errorf("%s pid %d: %w", h.Role, h.PID, err)}
		}
		return nil, fail(wire.ReasonPeerLost, "HelloAck to %s: %w", h.Role, err)
	}
	return h, nil
}

// errNoCommonVersion marks an answerHello error from the negotiation (the
// peer's range is disjoint from ours, or not a range), not from the send.
var errNoCommonVersion = errors.New("no common protocol version")

// answerHello negotiates the version with a peer's Hello and answers
// HelloAck carrying id in role. On a version mismatch it tells the peer why
// (an Abort in a frame any version reads) before the caller closes.
func answerHello(c *wire.Conn, h *wire.Hello, id wire.ID, role wire.Role) error {
	v, err := wire.Negotiate(wire.MinVersion, wire.MaxVersion, h.MinVersion, h.MaxVersion)
	if err != nil {
		c.SetNegotiated(wire.HelloFrameVersion, id)
		_ = c.Send(time.Now().Add(time.Second), &wire.Abort{Reason: wire.ReasonVersionMismatch, Detail: err.Error()})
		return fmt.Errorf("%w: %w", errNoCommonVersion, err)
	}
	c.SetNegotiated(v, id)
	return c.Send(time.Now().Add(peer.Silence), &wire.HelloAck{
		Version: v, Capabilities: wire.IntersectCaps(wire.DefaultCapabilities, h.Capabilities), Role: role,
	})
}

func (w *swap) spawnSuccessor(ctx context.Context) error {
	n, err := w.s.spawn(w.spec, true)
	if err != nil {
		return &stepError{reason: wire.ReasonSpawnFailed, err: err}
	}
	w.n = n
	w.out.NewPID, w.out.Binary = n.pid, n.binary
	crashpoint.Hit(crashpoint.SupervisorAfterSpawn)
	if err := w.s.record(w.journalRecord()); err != nil {
		return &stepError{reason: wire.ReasonUnspecified, err: err}
	}
	crashpoint.Hit(crashpoint.SupervisorAfterJournalNegotiating)
	detail := fmt.Sprintf("pid %d, %s", n.pid, n.binary)
	if w.spec.SHA256 != "" {
		detail += ", sha256 as pinned"
	}
	w.progress("spawned", detail)
	return nil
}

// successorHello waits for the successor to warm up and say Hello, up to the
// overall deadline. Its pid comes from the kernel's SCM_CREDENTIALS.
func (w *swap) successorHello(ctx context.Context) error {
	r, err := w.n.conn.Recv(w.deadline)
	if err != nil {
		return w.successorLost("Hello", err)
	}
	if r.Cred == nil || int(r.Cred.Pid) != w.n.pid {
		return fail(wire.ReasonIdentity, "successor Hello came from pid %v, spawned pid %d", credPID(r), w.n.pid)
	}
	h, err := w.ack(w.n.conn, r)
	if err != nil {
		return err
	}
	w.n.buildID, w.out.BuildID = h.BuildID, h.BuildID
	w.nhb = peer.StartHeartbeats(w.n.conn) // it waits for Begin while the incumbent drains
	w.progress("hello", "build "+h.BuildID)
	return nil
}

func credPID(r wire.Received) any {
	if r.Cred == nil {
		return "unknown"
	}
	return r.Cred.Pid
}

// successorLost classifies an error on the successor's connection.
func (w *swap) successorLost(waiting string, err error) error {
	if errors.Is(err, wire.ErrPeerTimeout) || errors.Is(err, context.DeadlineExceeded) {
		return fail(wire.ReasonTimeout, "successor did not send %s in time: %w", waiting, err)
	}
	if peerGone(err) || w.n.hasExited() {
		select {
		case <-w.n.exited:
		case <-time.After(w.s.opts.killGrace):
		}
		return fail(wire.ReasonSuccessorExited, "successor pid %d went away before %s (%s): %w", w.n.pid, waiting, w.n.exitStatus(), err)
	}
	return fail(wire.ReasonProtocol, "successor, waiting for %s: %w", waiting, err)
}

// peerGone reports whether err means the peer's end of the connection is
// gone: EOF, our own close, or the kernel's reset or broken pipe when the
// peer died with data unread.
func peerGone(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// incumbentLost classifies an error on the incumbent's connection.
func incumbentLost(waiting string, err error) error {
	if errors.Is(err, wire.ErrPeerTimeout) || errors.Is(err, context.DeadlineExceeded) {
		return fail(wire.ReasonTimeout, "incumbent did not send %s in time: %w", waiting, err)
	}
	if peerGone(err) {
		return fail(wire.ReasonPeerLost, "incumbent went away before %s: %w", waiting, err)
	}
	return fail(wire.ReasonProtocol, "incumbent, waiting for %s: %w", waiting, err)
}

func (w *swap) drain(ctx context.Context) error {
	if err := w.move(journal.Negotiating, EvPrepare); err != nil {
		return &stepError{reason: wire.ReasonUnspecified, err: err}
	}
	crashpoint.Hit(crashpoint.SupervisorAfterJournalDraining)
	grace := w.spec.drainGrace()
	err := w.oconn.Send(time.Now().Add(peer.Silence), &wire.PrepareHandoff{
		SuccessorPID:     int32(w.n.pid),
		DeadlineMillis:   uint64(time.Until(w.deadline) / time.Millisecond),
		DrainGraceMillis: uint64(grace / time.Millisecond),
	})
	if err != nil {
		return incumbentLost("Drained", err)
	}
	w.prepared = true
	r, err := peer.Next(ctx, w.oconn, time.Now().Add(grace+peer.WireSlack))
	if err != nil {
		return incumbentLost("Drained", err)
	}
	switch m := r.Msg.(type) {
	case *wire.Drained:
		w.progress("drained", fmt.Sprintf("%d connections open", m.OpenConnsRemaining))
		return w.move(journal.Draining, EvDrained)
	case *wire.DrainFailed:
		return fail(wire.ReasonDrainFailed, "incumbent drain failed: %s", m.Reason)
	}
	return fail(wire.ReasonProtocol, "expected Drained, got %v: %w", r.Msg.Type(), ErrProtocol)
}

func (w *swap) seal(ctx context.Context) error {
	crashpoint.Hit(crashpoint.SupervisorAfterJournalSealing)
	if err := w.oconn.Send(time.Now().Add(peer.Silence), &wire.SealRequest{}); err != nil {
		return incumbentLost("SealComplete", err)
	}
	for {
		r, err := peer.Next(ctx, w.oconn, w.deadline)
		if err != nil {
			return incumbentLost("SealComplete", err)
		}
		switch m := r.Msg.(type) {
		case *wire.SealProgress:
			w.s.logf().Info("handoff.seal_progress", "id", w.out.HandoffID,
				"shards_sealed", m.ShardsSealed, "shards_total", m.ShardsTotal, "last_revision", m.LastRevision)
			if w.spec.OnEvent != nil {
				w.spec.OnEvent(Progress{Step: "seal-progress", Elapsed: time.Since(w.begun),
					Detail: fmt.Sprintf("%d/%d shards, revision %d", m.ShardsSealed, m.ShardsTotal, m.LastRevision)})
			}
		case *wire.SealComplete:
			w.sealed = m
			w.progress("sealed", fmt.Sprintf("revisions %v", m.LastRevisionPerShard))
			return w.move(journal.Sealing, EvSealed)
		case *wire.SealFailed:
			return fail(wire.ReasonSealFailed, "incumbent seal failed: %s", m.Reason)
		default:
			return fail(wire.ReasonProtocol, "expected SealComplete, got %v: %w", r.Msg.Type(), ErrProtocol)
		}
	}
}

func (w *swap) begin(ctx context.Context) error {
	crashpoint.Hit(crashpoint.SupervisorAfterJournalAwaitingReady)
	w.nhb.Stop()
	if err := w.n.conn.Send(time.Now().Add(peer.Silence), &wire.Begin{}); err != nil {
		return w.successorLost("Ready", err)
	}
	r, err := peer.Next(ctx, w.n.conn, w.deadline)
	if err != nil {
		return w.successorLost("Ready", err)
	}
	ready, ok := r.Msg.(*wire.Ready)
	if !ok {
		return fail(wire.ReasonProtocol, "expected Ready, got %v: %w", r.Msg.Type(), ErrProtocol)
	}
	w.nhb = peer.StartHeartbeats(w.n.conn)
	w.progress("ready", fmt.Sprintf("healthy %v, revisions %v", ready.HealthzOK, ready.AdvertisedRevisionPerShard))
	return checkReady(ready, w.sealed)
}

// checkReady decides whether the successor may commit: healthy, not behind
// the sealed revisions, and the same fingerprint when both report one.
func checkReady(r *wire.Ready, sealed *wire.SealComplete) error {
	if !r.HealthzOK {
		return fail(wire.ReasonUnhealthy, "successor reported unhealthy")
	}
	want := sealed.LastRevisionPerShard
	if len(r.AdvertisedRevisionPerShard) < len(want) {
		return fail(wire.ReasonRevisionBehind, "successor advertises %d shards, incumbent sealed %d", len(r.AdvertisedRevisionPerShard), len(want))
	}
	for i, rev := range want {
		if r.AdvertisedRevisionPerShard[i] < rev {
			return fail(wire.ReasonRevisionBehind, "shard %d: successor at revision %d, incumbent sealed %d", i, r.AdvertisedRevisionPerShard[i], rev)
		}
	}
	if len(r.Fingerprint) > 0 && len(sealed.Fingerprint) > 0 && !slices.Equal(r.Fingerprint, sealed.Fingerprint) {
		return fail(wire.ReasonFingerprintMismatch, "successor opened a data directory whose fingerprint differs from the sealed one")
	}
	return nil
}

// decide runs the optional health probe, the last check before Commit.
func (w *swap) decide(ctx context.Context) error {
	if w.spec.Probe == nil {
		return nil
	}
	if err := w.spec.Probe(ctx); err != nil {
		return fail(wire.ReasonProbeFailed, "health probe: %w", err)
	}
	return nil
}
