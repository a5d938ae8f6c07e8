package handoff

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/handoff-go/handoff/internal/crashpoint"
	"github.com/handoff-go/handoff/internal/peer"
	"github.com/handoff-go/handoff/internal/wire"
)

// lockRetry is how often a sealed incumbent that must recover retries the
// data-dir lock. The wait has no upper bound (see recoverSealed).
const lockRetry = 25 * time.Millisecond

func millis(ms uint64) time.Duration { return time.Duration(ms) * time.Millisecond }

// runSwap is the incumbent's side of one swap, from PrepareHandoff to Commit
// or back to serving. It holds swapMu throughout, so a second swap (or a
// graceful stop) waits.
func (inc *Incumbent) runSwap(s *ctlSession, p *wire.PrepareHandoff) {
	if !inc.swapMu.TryLock() {
		inc.opts.logger.Warn("handoff.reject", "reason", "a swap is already in progress")
		return
	}
	defer inc.swapMu.Unlock()
	select {
	case <-inc.stopping:
		return
	default:
	}
	overall := time.Now().Add(millis(p.DeadlineMillis) + peer.WireSlack)
	inc.opts.logger.Info("handoff.prepare", "successor_pid", p.SuccessorPID,
		"deadline", millis(p.DeadlineMillis), "drain_grace", millis(p.DrainGraceMillis))
	crashpoint.Hit(crashpoint.IncumbentAfterPrepare)
	if !inc.drain(s, millis(p.DrainGraceMillis)) {
		return
	}
	r, err := peer.Next(context.Background(), s.wc, overall)
	if err != nil || r.Msg.Type() != wire.TypeSealRequest {
		inc.resumeDrained(describe(r, err))
		return
	}
	if !inc.seal(s, overall) {
		return
	}
	inc.awaitCommit(s, overall)
}

// describe names why a wait ended, for logs.
func describe(r wire.Received, err error) string {
	if err != nil {
		return err.Error()
	}
	return "received " + r.Msg.Type().String()
}

// drain runs Drainable.Drain under the drain grace with heartbeats. On
// failure the daemon resumes at once and the supervisor is told why.
func (inc *Incumbent) drain(s *ctlSession, grace time.Duration) bool {
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	hb := peer.StartHeartbeats(s.wc)
	rep, err := inc.d.Drain(ctx)
	hb.Stop()
	if err == nil && ctx.Err() != nil {
		err = fmt.Errorf("drain ran past its grace of %v: %w", grace, ctx.Err())
	}
	if err != nil {
		inc.resumeDrained("drain failed: " + err.Error())
		_ = s.wc.Send(time.Now().Add(peer.Silence), &wire.DrainFailed{Reason: err.Error()})
		return false
	}
	crashpoint.Hit(crashpoint.IncumbentAfterDrain)
	inc.opts.logger.Info("handoff.drained", "open_conns", rep.OpenConnsRemaining, "accept_closed", rep.AcceptClosed)
	err = s.wc.Send(time.Now().Add(peer.Silence), &wire.Drained{
		OpenConnsRemaining: rep.OpenConnsRemaining,
		AcceptClosed:       rep.AcceptClosed,
	})
	if err != nil {
		inc.resumeDrained("supervisor lost after drain: " + err.Error())
		return false
	}
	return true
}

// resumeDrained undoes a drain that was not followed by a successful seal:
// the lock was never released, so the daemon simply serves again.
func (inc *Incumbent) resumeDrained(why string) {
	inc.opts.logger.Warn("handoff.resume", "sealed", false, "why", why)
	ctx, cancel := context.WithTimeout(context.Background(), stopBudget)
	defer cancel()
	if err := inc.d.ResumeAfterAbort(ctx); err != nil {
		inc.opts.logger.Error("handoff.resume", "err", err)
	}
}

// seal runs Drainable.Seal, then releases the lock, then reports
// SealComplete: the lock is released only after a successful seal, and
// before the supervisor can tell a successor to take it.
func (inc *Incumbent) seal(s *ctlSession, overall time.Time) bool {
	ctx, cancel := context.WithDeadline(context.Background(), overall.Add(-peer.WireSlack))
	defer cancel()
	ctx = withProgress(ctx, s)
	inc.opts.logger.Info("handoff.seal")
	hb := peer.StartHeartbeats(s.wc)
	rep, err := inc.d.Seal(ctx)
	hb.Stop()
	if err != nil {
		inc.resumeDrained("seal failed: " + err.Error())
		_ = s.wc.Send(time.Now().Add(peer.Silence), &wire.SealFailed{Reason: err.Error()})
		return false
	}
	inc.sealed = true
	crashpoint.Hit(crashpoint.IncumbentAfterSealBeforeUnlock)
	if err := inc.lock.Release(); err != nil {
		inc.opts.logger.Error("handoff.seal", "err", fmt.Errorf("release data-dir lock: %w", err))
	}
	crashpoint.Hit(crashpoint.IncumbentAfterUnlockBeforeSealComplete)
	err = s.wc.Send(time.Now().Add(peer.Silence), sealComplete(rep))
	crashpoint.Hit(crashpoint.IncumbentAfterSealComplete)
	inc.opts.logger.Info("handoff.seal_complete", "revisions", rep.LastRevisionPerShard)
	if err != nil {
		inc.recoverSealed("supervisor lost after seal: " + err.Error())
		return false
	}
	return true
}

func sealComplete(rep SealReport) *wire.SealComplete {
	m := &wire.SealComplete{LastRevisionPerShard: rep.LastRevisionPerShard}
	if !rep.DataDirFingerprint.IsZero() {
		m.Fingerprint = rep.DataDirFingerprint[:]
	}
	return m
}

// awaitCommit waits, sealed and without the lock, for the supervisor's
// decision. Anything but Commit sends the incumbent down the recovery rule.
func (inc *Incumbent) awaitCommit(s *ctlSession, overall time.Time) {
	r, err := peer.Next(context.Background(), s.wc, overall)
	if err == nil && r.Msg.Type() == wire.TypeCommit {
		inc.commit("Commit received")
		return
	}
	inc.recoverSealed(describe(r, err))
}

func (inc *Incumbent) commit(why string) {
	crashpoint.Hit(crashpoint.IncumbentAfterCommitReceived)
	inc.opts.logger.Info("handoff.commit", "why", why, "pid", os.Getpid())
	inc.markCommitted()
}

// recoverSealed is the recovery rule of a sealed incumbent (after an abort,
// a lost supervisor or its own deadline). It retries the lock every 25 ms
// with no upper bound: a lock that stays held proves nothing (a slow,
// uncommitted successor may hold it while opening its state), so it never
// gives up on a timer. It exits only on proof that a successor committed: the
// control socket path no longer names our socket. Once it holds the lock it
// checks the path again before resuming, since a successor may have committed
// and exited in between.
func (inc *Incumbent) recoverSealed(why string) {
	log := inc.opts.logger
	log.Warn("handoff.resume", "sealed", true, "why", why)
	lastLog := time.Now()
	for {
		if inc.ctl.takenOver() {
			inc.commit("control socket path taken over")
			return
		}
		err := inc.lock.tryReacquire()
		if err == nil {
			inc.resumeSealed()
			return
		}
		if !errors.Is(err, ErrLockHeld) {
			log.Error("handoff.resume", "err", err)
		}
		if time.Since(lastLog) >= time.Second {
			log.Info("handoff.resume", "waiting_for_lock", true, "err", err)
			lastLog = time.Now()
		}
		select {
		case <-inc.stopping:
			return // sealed and lockless: exiting writes nothing
		case <-time.After(lockRetry):
		}
	}
}

// resumeSealed runs with the lock retaken: flock, then re-check the path.
func (inc *Incumbent) resumeSealed() {
	if inc.ctl.takenOver() {
		if err := inc.lock.Release(); err != nil {
			inc.opts.logger.Error("handoff.resume", "err", err)
		}
		inc.commit("control socket path taken over")
		return
	}
	crashpoint.Hit(crashpoint.IncumbentResumingAfterAbort)
	inc.sealed = false
	inc.resumeDrained("lock retaken after seal")
}

type progressKey struct{}

// withProgress lets ReportSealProgress reach the session, when the
// supervisor takes progress reports.
func withProgress(ctx context.Context, s *ctlSession) context.Context {
	for _, c := range s.caps {
		if c == wire.CapSealProgress {
			return context.WithValue(ctx, progressKey{}, s)
		}
	}
	return ctx
}

// ReportSealProgress reports progress from inside [Drainable.Seal] to the
// supervisor, which logs it; ctx must be the context Seal received.
// Elsewhere, or when the supervisor does not take progress reports, it does
// nothing. It never blocks for long and never fails the seal.
func ReportSealProgress(ctx context.Context, p SealProgress) {
	s, ok := ctx.Value(progressKey{}).(*ctlSession)
	if !ok {
		return
	}
	_ = s.wc.Send(time.Now().Add(peer.HeartbeatInterval), &wire.SealProgress{
		ShardsSealed: p.ShardsSealed,
		ShardsTotal:  p.ShardsTotal,
		LastRevision: p.LastRevision,
	})
}
