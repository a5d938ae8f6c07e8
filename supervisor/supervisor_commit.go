package supervisor

import (
	"errors"
	"fmt"
	"time"

	"github.com/handoff-go/handoff/internal/crashpoint"
	"github.com/handoff-go/handoff/internal/journal"
	"github.com/handoff-go/handoff/internal/peer"
	"github.com/handoff-go/handoff/internal/sysx"
	"github.com/handoff-go/handoff/internal/wire"
)

// commit makes the swap final. The journal says Committed durably before
// anything is sent, so a restarted supervisor knows Commit may have gone
// out; then the successor is committed first and the incumbent second, so a
// dead incumbent cannot take the successor down with it.
func (w *swap) commit() (Outcome, error) {
	crashpoint.Hit(crashpoint.SupervisorAfterReadyBeforeJournalCommit)
	if err := w.move(journal.AwaitingReady, EvReady); err != nil {
		return w.abort(&stepError{reason: wire.ReasonUnspecified, err: err})
	}
	crashpoint.Hit(crashpoint.SupervisorAfterJournalCommitted)
	w.nhb.Stop()
	if err := w.n.conn.Send(time.Now().Add(peer.Silence), &wire.Commit{}); err != nil {
		return w.abort(w.successorLost("Commit", err))
	}
	crashpoint.Hit(crashpoint.SupervisorAfterCommitSuccessorBeforeCommitIncumbent)
	w.ohb.Stop()
	_ = w.oconn.Send(time.Now().Add(peer.Silence), &wire.Commit{}) // best effort: it may be gone
	crashpoint.Hit(crashpoint.SupervisorAfterCommitIncumbent)
	w.oconn.Close()
	w.n.conn.Close()
	w.n.conn = nil
	w.s.promote(w.n, w.old)
	w.confirmServing()
	w.old, w.n = w.n, nil
	w.out.Committed = true
	w.progress("committed", fmt.Sprintf("pid %d serves", w.out.NewPID))
	if err := w.move(journal.Committed, EvDone); err != nil {
		w.s.logf().Error("handoff.commit", "id", w.out.HandoffID, "err", err)
	}
	return w.finish(nil)
}

// confirmServing waits, within the handoff's budget, until the control
// socket path answers from the new incumbent: the path changing hands is the
// commit mark, and the next handoff must reach the new process. It watches
// the path's inode (a stat, which disturbs nobody) and asks the kernel who
// answers only once the file there has changed.
func (w *swap) confirmServing() {
	for time.Now().Before(w.deadline) && !w.s.isCurrentGone() {
		if _, ino, err := sysx.PathInode(w.s.controlPath); err == nil && ino != w.ctlIno {
			if pid, err := controlPeerPID(w.s.controlPath); err == nil && pid == w.out.NewPID {
				return
			}
		}
		time.Sleep(time.Millisecond)
	}
	w.s.logf().Warn("handoff.commit", "id", w.out.HandoffID, "warning", "new incumbent did not take the control socket path in time")
}

// abort abandons the swap: the successor is told, stopped (SIGTERM, then
// SIGKILL) and reaped before the incumbent is told to resume, so that the
// lock is free when the incumbent reaches for it.
func (w *swap) abort(cause error) (Outcome, error) {
	reason, detail := wire.ReasonUnspecified, cause
	var se *stepError
	if errors.As(cause, &se) {
		reason, detail = se.reason, se.err
	}
	w.out.Reason, w.out.Cause = reason.String(), detail.Error()
	w.journalAbort(EvAbort)
	crashpoint.Hit(crashpoint.SupervisorAfterJournalAborting)
	w.stopSuccessor(reason, cause)
	crashpoint.Hit(crashpoint.SupervisorAfterAbortBeforeResume)
	w.journalAbort(EvStopped)
	w.resumeIncumbent(reason)
	w.journalAbort(EvDone)
	w.progress("aborted", reason.String()+": "+detail.Error())
	if reason == wire.ReasonDryRun {
		return w.finish(nil)
	}
	return w.finish(fmt.Errorf("%w (%s): %w", ErrRolledBack, reason, detail))
}

func (w *swap) journalAbort(ev Event) {
	to, err := next(w.phase, ev)
	if err != nil {
		w.s.logf().Error("handoff.abort", "id", w.out.HandoffID, "err", err)
		return
	}
	w.phase = to
	if err := w.s.record(w.journalRecord()); err != nil {
		w.s.logf().Error("handoff.abort", "id", w.out.HandoffID, "err", err)
	}
}

func (w *swap) stopSuccessor(reason wire.AbortReason, cause error) {
	if w.n == nil {
		return
	}
	w.nhb.Stop()
	if w.n.conn != nil {
		_ = w.n.conn.Send(time.Now().Add(time.Second), &wire.Abort{Reason: reason, Detail: cause.Error()})
	}
	w.n.kill(w.s.opts.killGrace)
}

func (w *swap) resumeIncumbent(reason wire.AbortReason) {
	if w.oconn == nil {
		return
	}
	w.ohb.Stop()
	if w.prepared {
		_ = w.oconn.Send(time.Now().Add(time.Second), &wire.ResumeAfterAbort{Reason: reason})
	}
	w.oconn.Close()
}

// finish records the outcome, metrics and the final log line.
func (w *swap) finish(err error) (Outcome, error) {
	w.out.Total = time.Since(w.begun)
	w.s.mu.Lock()
	out := w.out
	w.s.last = &out
	w.s.mu.Unlock()
	w.s.opts.metrics.observe(w.out)
	level := "handoff.done"
	w.s.logf().Info(level, "id", w.out.HandoffID, "committed", w.out.Committed, "reason", w.out.Reason, "total", w.out.Total)
	return w.out, err
}
