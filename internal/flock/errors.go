package flock

import "errors"

// Sentinel errors of the data-dir lock.
var (
	// ErrLockHeld means another live process holds the lock.
	ErrLockHeld = errors.New("handoff: data-dir lock held by another process")

	// ErrStaleLockBreakRefused means the lock is held and its holder could
	// not be proven dead, so it was not broken.
	ErrStaleLockBreakRefused = errors.New("handoff: refusing to break a lock whose holder may be alive")

	// ErrBadPidFile means the pid file exists but does not hold "pid" or
	// "pid starttime"; nothing can be concluded about the holder from it.
	ErrBadPidFile = errors.New("handoff: malformed lock pid file")

	// ErrHolderUnknown means the lock is held but the kernel does not show
	// by whom (the locking process is gone while another process it shared
	// the descriptor with still holds it, or it lives in another pid
	// namespace). Errors wrapping it also wrap ErrLockHeld.
	ErrHolderUnknown = errors.New("handoff: data-dir lock held by an unknown process")

	// ErrLockFileReplaced means the lock file was removed or replaced while
	// it was being locked, so the lock just taken would exclude nobody. The
	// lock file must never be removed while the data directory is in use.
	ErrLockFileReplaced = errors.New("handoff: data-dir lock file was removed or replaced")
)
