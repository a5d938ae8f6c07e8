package handoff

import (
	"errors"

	"github.com/handoff-go/handoff/internal/flock"
	"github.com/handoff-go/handoff/internal/listenenv"
	"github.com/handoff-go/handoff/internal/wire"
)

// Sentinel errors. Every error the package returns wraps one of these (test
// with [errors.Is]) together with context that names the peer, path or field.
var (
	// ErrAborted means the supervisor abandoned the handoff (or vanished)
	// before committing; a successor that sees it must exit without writing.
	ErrAborted = errors.New("handoff: handoff aborted")

	// ErrVersionMismatch means the peers share no protocol version.
	ErrVersionMismatch = wire.ErrVersionMismatch

	// ErrFrameTooLarge means a peer announced a frame over the 1 MiB limit.
	ErrFrameTooLarge = wire.ErrFrameTooLarge

	// ErrProtocol means a peer broke the protocol (unknown type, wrong id,
	// message out of order, truncated frame).
	ErrProtocol = wire.ErrProtocol

	// ErrPeerTimeout means a peer sent nothing for longer than the liveness
	// limit, or a phase ran past its wall-clock budget.
	ErrPeerTimeout = wire.ErrPeerTimeout

	// ErrUsed means a one-shot value (a successor step, a listener) was used
	// a second time.
	ErrUsed = errors.New("handoff: already used")

	// ErrClosed means the object was closed.
	ErrClosed = errors.New("handoff: closed")

	// ErrBadEnvironment means the inherited LISTEN_* or HANDOFF_* variables
	// are malformed.
	ErrBadEnvironment = listenenv.ErrBadEnvironment

	// ErrBadListenerName means a listener name cannot travel in
	// LISTEN_FDNAMES (empty, too long, or with ':', '=' or white space), or
	// is used twice.
	ErrBadListenerName = listenenv.ErrBadName

	// ErrWrongKind means a listener was asked for as a kind it is not (for
	// example Listener on a UDP socket); see [KindError].
	ErrWrongKind = errors.New("handoff: listener is of another kind")

	// ErrNoListener means no inherited listener has the requested name.
	ErrNoListener = errors.New("handoff: no such listener")

	// ErrSocketPathTaken means another live process owns the control socket
	// path; this process must not bind or unlink it.
	ErrSocketPathTaken = errors.New("handoff: control socket path owned by another process")

	// ErrPeerRejected means a peer failed the kernel identity check (uid or
	// pid from SO_PEERCRED / SCM_CREDENTIALS).
	ErrPeerRejected = errors.New("handoff: peer identity rejected")
)

// Lock errors, shared with the internal lock package so that errors.Is works
// on every path.
var (
	// ErrLockHeld means another live process holds the data-dir lock.
	ErrLockHeld = flock.ErrLockHeld

	// ErrStaleLockBreakRefused means AcquireOrBreakStale found the lock held
	// by a process it could not prove dead, and left it alone.
	ErrStaleLockBreakRefused = flock.ErrStaleLockBreakRefused
)
