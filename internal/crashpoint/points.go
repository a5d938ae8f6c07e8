package crashpoint

import "strings"

// Point names a place in the handoff protocol where a test build can make the
// process die (DESIGN section 10). Names are "<role>.<where>"; they are what
// HANDOFF_CRASH_AT lists, so they never contain a comma.
type Point string

// Supervisor points, in the order a swap reaches them.
const (
	// SupervisorAfterSpawn: the successor was started, before its Hello.
	SupervisorAfterSpawn Point = "supervisor.after-spawn"
	// SupervisorAfterJournalNegotiating: phase Negotiating is durable.
	SupervisorAfterJournalNegotiating Point = "supervisor.after-journal-negotiating"
	// SupervisorAfterJournalDraining: phase Draining is durable, before
	// PrepareHandoff is sent.
	SupervisorAfterJournalDraining Point = "supervisor.after-journal-draining"
	// SupervisorAfterJournalSealing: phase Sealing is durable, before
	// SealRequest is sent.
	SupervisorAfterJournalSealing Point = "supervisor.after-journal-sealing"
	// SupervisorAfterJournalAwaitingReady: phase AwaitingReady is durable,
	// before Begin is sent.
	SupervisorAfterJournalAwaitingReady Point = "supervisor.after-journal-awaiting-ready"
	// SupervisorAfterReadyBeforeJournalCommit: Ready was received and
	// accepted, before phase Committed is written.
	SupervisorAfterReadyBeforeJournalCommit Point = "supervisor.after-ready-before-journal-commit"
	// SupervisorAfterJournalCommitted: phase Committed is durable, before any
	// Commit is sent.
	SupervisorAfterJournalCommitted Point = "supervisor.after-journal-committed"
	// SupervisorAfterCommitSuccessorBeforeCommitIncumbent: Commit went to the
	// successor, not yet to the incumbent.
	SupervisorAfterCommitSuccessorBeforeCommitIncumbent Point = "supervisor.after-commit-successor-before-commit-incumbent"
	// SupervisorAfterCommitIncumbent: Commit went to both, before the old
	// incumbent is reaped and the journal cleared.
	SupervisorAfterCommitIncumbent Point = "supervisor.after-commit-incumbent"
	// SupervisorAfterJournalAborting: phase Aborting is durable, before the
	// successor is told and stopped.
	SupervisorAfterJournalAborting Point = "supervisor.after-journal-aborting"
	// SupervisorAfterAbortBeforeResume: the successor is stopped and reaped,
	// before ResumeAfterAbort is sent to the incumbent.
	SupervisorAfterAbortBeforeResume Point = "supervisor.after-abort-before-resume"
)

// Incumbent points.
const (
	// IncumbentAfterPrepare: PrepareHandoff was received, before Drain runs.
	IncumbentAfterPrepare Point = "incumbent.after-prepare"
	// IncumbentAfterDrain: Drain returned, before Drained is sent.
	IncumbentAfterDrain Point = "incumbent.after-drain"
	// IncumbentAfterSealBeforeUnlock: Seal succeeded, the lock is still held.
	IncumbentAfterSealBeforeUnlock Point = "incumbent.after-seal-before-unlock"
	// IncumbentAfterUnlockBeforeSealComplete: the lock was released, before
	// SealComplete is sent.
	IncumbentAfterUnlockBeforeSealComplete Point = "incumbent.after-unlock-before-seal-complete"
	// IncumbentAfterSealComplete: SealComplete was sent; waiting for Commit.
	IncumbentAfterSealComplete Point = "incumbent.after-seal-complete"
	// IncumbentAfterCommitReceived: Commit was received, before exiting.
	IncumbentAfterCommitReceived Point = "incumbent.after-commit-received"
	// IncumbentResumingAfterAbort: the lock is back (if it was released),
	// before Drainable.ResumeAfterAbort runs.
	IncumbentResumingAfterAbort Point = "incumbent.resuming-after-abort"
)

// Successor points.
const (
	// SuccessorAfterHello: Hello was sent (warm-up done), before HelloAck.
	SuccessorAfterHello Point = "successor.after-hello"
	// SuccessorAfterBegin: Begin was received, before the lock is taken.
	SuccessorAfterBegin Point = "successor.after-begin"
	// SuccessorAfterLockBeforeReady: the lock is held and the sealed state
	// opened, before Ready is sent.
	SuccessorAfterLockBeforeReady Point = "successor.after-lock-before-ready"
	// SuccessorAfterReadyBeforeCommit: Ready was sent, before Commit arrives.
	SuccessorAfterReadyBeforeCommit Point = "successor.after-ready-before-commit"
	// SuccessorAfterCommitBeforeBind: Commit was received, before the control
	// socket path is taken over.
	SuccessorAfterCommitBeforeBind Point = "successor.after-commit-before-bind"
	// SuccessorAfterBindBeforeServe: the control socket path is ours (the
	// commit mark), before the first request is served.
	SuccessorAfterBindBeforeServe Point = "successor.after-bind-before-serve"
)

// All lists every point, so the crash-matrix test can run each one.
var All = []Point{
	SupervisorAfterSpawn,
	SupervisorAfterJournalNegotiating,
	SupervisorAfterJournalDraining,
	SupervisorAfterJournalSealing,
	SupervisorAfterJournalAwaitingReady,
	SupervisorAfterReadyBeforeJournalCommit,
	SupervisorAfterJournalCommitted,
	SupervisorAfterCommitSuccessorBeforeCommitIncumbent,
	SupervisorAfterCommitIncumbent,
	SupervisorAfterJournalAborting,
	SupervisorAfterAbortBeforeResume,

	IncumbentAfterPrepare,
	IncumbentAfterDrain,
	IncumbentAfterSealBeforeUnlock,
	IncumbentAfterUnlockBeforeSealComplete,
	IncumbentAfterSealComplete,
	IncumbentAfterCommitReceived,
	IncumbentResumingAfterAbort,

	SuccessorAfterHello,
	SuccessorAfterBegin,
	SuccessorAfterLockBeforeReady,
	SuccessorAfterReadyBeforeCommit,
	SuccessorAfterCommitBeforeBind,
	SuccessorAfterBindBeforeServe,
}

// Environment variables read by the handoff_crashpoints build.
const (
	// EnvCrashAt lists the points to crash at, comma-separated.
	EnvCrashAt = "HANDOFF_CRASH_AT"
	// EnvNotify, if set, is a Unix datagram socket path that receives the
	// point's name just before the process dies or pauses there.
	EnvNotify = "HANDOFF_CRASH_NOTIFY"
	// EnvMode is "pause" to block at the point (so a test can kill the
	// process from outside at exactly that moment); anything else kills the
	// process with SIGKILL at once.
	EnvMode = "HANDOFF_CRASH_MODE"
)

// Role returns the role part of p's name ("supervisor", "incumbent" or
// "successor").
func (p Point) Role() string {
	role, _, _ := strings.Cut(string(p), ".")
	return role
}
