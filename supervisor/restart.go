package supervisor

import (
	"context"
	"time"
)

// Back-off between restarts of a crashed incumbent.
const (
	restartMin    = 100 * time.Millisecond
	restartMax    = 30 * time.Second
	restartStable = time.Minute // a restarted incumbent that lived this long resets the back-off
)

// Run keeps an incumbent serving until ctx ends. When the incumbent exits
// on its own (a crash, not a committed swap) it restarts the binary of the
// last committed generation, with an exponential back-off while restarted
// generations keep crashing (a crash loop). The listening
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
		if !g.restarted || time.Since(g.startedAt) >= restartStable {
			backoff = restartMin // not a crash loop: restart at once
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
// swap replaced it meanwhile. The pause is spent outside the exclusive
// section, so a handoff to a fixed binary is not held up by it; the
// replacement itself runs inside it, so it never races a handoff.
func (s *Supervisor) restart(ctx context.Context, g *generation, backoff time.Duration) (bool, error) {
	if !s.stillCurrent(g) {
		return false, nil
	}
	s.logf().Warn("handoff.crash", "pid", g.pid, "status", g.exitStatus(), "restart_in", backoff)
	s.opts.metrics.restarted()
	select {
	case <-ctx.Done():
		return false, ctx.Err()
	case <-time.After(backoff):
	}
	s.excl.lock(kindStart)
	defer s.excl.unlock()
	if !s.isCurrent(g) {
		return false, nil
	}
	if err := s.replaceCrashed(ctx, g.spec); err != nil {
		s.logf().Error("handoff.crash", "err", err)
	}
	return true, nil
}

// stillCurrent reports whether g is still the incumbent once any handoff in
// progress has finished: an old incumbent exits on Commit just before the
// swap promotes its successor, and that exit is not a crash.
func (s *Supervisor) stillCurrent(g *generation) bool {
	s.excl.lock(kindStart)
	defer s.excl.unlock()
	return s.isCurrent(g)
}

func (s *Supervisor) isCurrent(g *generation) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.current == g
}

// replaceCrashed adopts whoever answers on the control path (an old
// incumbent that resumed because the committed successor died before it
// could serve), and cold-starts only when nobody does.
func (s *Supervisor) replaceCrashed(ctx context.Context, spec SpawnSpec) error {
	if pid, err := controlPeerPID(s.controlPath); err == nil {
		s.logf().Warn("handoff.crash", "adopting", pid, "note", "a live daemon answers on the control path")
		return s.adopt(ctx, pid, spec)
	}
	if err := s.startLocked(ctx, spec); err != nil {
		return err
	}
	s.mu.Lock()
	s.current.restarted = true
	s.mu.Unlock()
	return nil
}
