package store

import (
	"errors"
	"fmt"
)

// Sentinel errors of the store. Every error the package returns wraps one
// of these (test with [errors.Is]) or a system error.
var (
	// ErrReadOnly means the store was opened but writes have not been
	// started with [Store.StartWrites]; retry once the daemon may write.
	ErrReadOnly = errors.New("kvd: store is read-only (writes not started)")

	// ErrSealed means the store was sealed for a handoff; the successor
	// owns the data now, so the client must retry against it.
	ErrSealed = errors.New("kvd: store is sealed")

	// ErrClosed means the store was closed.
	ErrClosed = errors.New("kvd: store is closed")

	// ErrFailed means an earlier write or fsync failed; the store accepts
	// no more writes and must be reopened (which repairs the log).
	ErrFailed = errors.New("kvd: store failed")

	// ErrCorrupt means the log holds damaged acknowledged data; see
	// [CorruptError].
	ErrCorrupt = errors.New("kvd: corrupt log")

	// ErrKey means a key is empty or longer than [MaxKeySize].
	ErrKey = errors.New("kvd: invalid key")

	// ErrTooLarge means a value is longer than [MaxValueSize].
	ErrTooLarge = errors.New("kvd: value too large")
)

// CorruptError reports damage that recovery must not repair on its own:
// a bad record followed by good ones, a revision out of order, or a footer
// that contradicts the records before it. It unwraps to [ErrCorrupt].
type CorruptError struct {
	// Path is the log file.
	Path string
	// Offset is where the offending record starts.
	Offset int64
	// Reason says what is wrong.
	Reason string
}

// Error names the file and offset and tells the operator what to do.
func (e *CorruptError) Error() string {
	return fmt.Sprintf("kvd: corrupt log %s at offset %d: %s; refusing to open "+
		"(acknowledged data may be damaged: restore the file from a backup, "+
		"or move it away to start empty)", e.Path, e.Offset, e.Reason)
}

// Unwrap returns [ErrCorrupt].
func (e *CorruptError) Unwrap() error { return ErrCorrupt }
