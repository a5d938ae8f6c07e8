package supervisor

import (
	"context"
	"time"
)

// Back-off between restarts of a crashed incumbent.
const (
	restartMin    = 100 * time.Millisecond
	restartMax    = 30 * time.Second
	restartStable = time.Minute // an incumbent that lived this long resets the back-off
)

// Run keeps an incumbent serving until ctx ends. When the incumbent exits
// on its own (a crash, not a committed swap) it restarts the binary of the
// last committed generation with exponential back-off. The listening
// sockets stay open meanwhile, so clients wait in the backlog instead of
// being refused. Start (or an adoption) must have run first.
func (s *Supervisor) Run(ctx context.Context) error {
	backoff := restartMin
	for {
		s.mu.Lock()
		g := s.current
		s.mu.Unlock()
		if g == nil {
			return ErrNoIncumbent
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-g.exited:
		}
		if time.Since(g.startedAt) >= restartStable {
			backoff = restartMin
		}
		restarted, err := s.restart(ctx, g, backoff)
		if err != nil {
			return err
		}
		if !restarted {
			continue
		}
		backoff = min(backoff*2, restartMax)
	}
}

// restart replaces a crashed incumbent g after a back-off pause, unless a
// swap replaced it meanwhile. It holds the swap lock, so it never races a
// handoff.
func (s *Supervisor) restart(ctx context.Context, g *generation, backoff time.Duration) (bool, error) {
	s.swapMu.Lock()
	defer s.swapMu.Unlock()
	s.mu.Lock()
	crashed := s.current == g
	s.mu.Unlock()
	if !crashed {
		return false, nil
	}
	s.logf().Warn("handoff.crash", "pid", g.pid, "status", g.exitStatus(), "restart_in", backoff)
	s.opts.metrics.restarted()
	select {
	case <-ctx.Done():
		return false, ctx.Err()
	case <-time.After(backoff):
	}
	if err := s.replaceCrashed(ctx, g.spec); err != nil {
		s.logf().Error("handoff.crash", "err", err)
	}
	return true, nil
}

// replaceCrashed adopts whoever answers on the control path (an old
// incumbent that resumed because the committed successor died before it
// could serve), and cold-starts only when nobody does.
func (s *Supervisor) replaceCrashed(ctx context.Context, spec SpawnSpec) error {
	if pid, err := controlPeerPID(s.controlPath); err == nil {
		s.logf().Warn("handoff.crash", "adopting", pid, "note", "a live daemon answers on the control path")
		if err := s.adopt(ctx, pid, spec); err != nil {
			return err
		}
		return s.record(idleRecord(s.current))
	}
	return s.startLocked(ctx, spec)
}
