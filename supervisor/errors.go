package supervisor

import (
	"errors"
	"fmt"

	"github.com/handoff-go/handoff/internal/journal"
	"github.com/handoff-go/handoff/internal/wire"
)

// Sentinel errors of the supervisor. Every returned error wraps one of them
// (or a sentinel of package handoff) with context naming the cause.
var (
	// ErrHandoffInProgress means another handoff is running; nothing was sent.
	ErrHandoffInProgress = errors.New("handoff: a handoff is already in progress")

	// ErrRolledBack means the handoff was aborted and the incumbent resumed;
	// the error also wraps the cause and the Outcome names the reason.
	ErrRolledBack = errors.New("handoff: handoff rolled back")

	// ErrNoIncumbent means no incumbent is running to hand off from.
	ErrNoIncumbent = errors.New("handoff: no incumbent running")

	// ErrBadBinary means the successor binary cannot be run (missing, not
	// executable, not a regular file).
	ErrBadBinary = errors.New("handoff: bad successor binary")

	// ErrClosed means the supervisor was closed.
	ErrClosed = errors.New("handoff: supervisor closed")

	// ErrProtocol is the wire protocol's violation sentinel.
	ErrProtocol = wire.ErrProtocol

	// ErrVersionMismatch is the wire protocol's version sentinel.
	ErrVersionMismatch = wire.ErrVersionMismatch
)

// TransitionError is an illegal move of the supervisor's phase machine. It
// unwraps to ErrProtocol: it means a peer (or a bug) drove the swap out of
// order.
type TransitionError struct {
	From  journal.Phase
	Event Event
}

// Error describes the move.
func (e *TransitionError) Error() string {
	return fmt.Sprintf("handoff: illegal transition from %v on %v", e.From, e.Event)
}

// Unwrap returns ErrProtocol.
func (e *TransitionError) Unwrap() error { return ErrProtocol }

// stepError carries the abort reason a failed step implies.
type stepError struct {
	reason wire.AbortReason
	err    error
}

func (e *stepError) Error() string { return e.reason.String() + ": " + e.err.Error() }
func (e *stepError) Unwrap() error { return e.err }

func fail(reason wire.AbortReason, format string, args ...any) error {
	return &stepError{reason: reason, err: fmt.Errorf(format, args...)}
}
