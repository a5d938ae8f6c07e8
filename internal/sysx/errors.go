package sysx

import "errors"

// Sentinel errors of the process helpers.
var (
	// ErrProcessGone means the process named by a pid no longer exists (it
	// exited and was reaped), so nothing can be signalled or waited for.
	ErrProcessGone = errors.New("handoff: process is gone")

	// ErrPidReused means a pid now names a different process than the one
	// recorded: its start time differs. Errors wrapping it also wrap
	// ErrProcessGone, because the recorded process no longer exists.
	ErrPidReused = errors.New("handoff: pid reused by another process")
)
