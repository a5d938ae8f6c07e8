package handoff

import (
	"fmt"
	"path/filepath"
	"sync"

	"github.com/handoff-go/handoff/internal/flock"
)

// DataDirLock is the exclusive lock on a daemon's data directory: flock(2) on
// <dir>/.handoff.lock, with the holder's pid and start time in
// <dir>/.handoff.pid. Only the holder may write the data directory, so at most
// one process writes it at any instant (DESIGN invariant 1).
//
// A DataDirLock exists only once it has been acquired. Hand it to
// [BindColdStart] or [Begun.AnnounceAndBind]; from then on the library decides
// when it is free: an incumbent releases it only after its Seal succeeded
// (invariant 2), so the successor can take it, and takes it back by the
// recovery rule if the swap is aborted after that. The daemon itself calls
// [DataDirLock.Release] only when it stops for good.
//
// The lock descriptor is close-on-exec and the lock file is never unlinked.
// A DataDirLock is safe for concurrent use.
type DataDirLock struct {
	dir string

	mu sync.Mutex
	l  *flock.Lock // nil while released
}

// AcquireLock takes the lock of data directory dir without waiting. A lock
// held by another process yields an error wrapping [ErrLockHeld] that names
// the holder. A successor calls it after Begin, when the sealed incumbent has
// released the lock.
func AcquireLock(dir string) (*DataDirLock, error) {
	return acquireWith(dir, flock.Acquire)
}

// AcquireOrBreakStale is AcquireLock for a cold start, which may follow a
// crash. If the lock is held and its pid file names a process that is
// provably dead, it retries the lock on the same file for a short while (the
// kernel frees it once every descriptor of the dead holder is closed). It never
// takes the lock from a live process and never unlinks the lock file: every
// refusal wraps both [ErrStaleLockBreakRefused] and [ErrLockHeld], and names
// the pid or path involved.
func AcquireOrBreakStale(dir string) (*DataDirLock, error) {
	return acquireWith(dir, flock.AcquireOrBreakStale)
}

// acquireWith resolves dir once, so a later chdir cannot make tryReacquire
// lock another directory.
func acquireWith(dir string, acquire func(string) (*flock.Lock, error)) (*DataDirLock, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("handoff: data-dir lock %s: %w", dir, err)
	}
	l, err := acquire(abs)
	if err != nil {
		return nil, err
	}
	return &DataDirLock{dir: abs, l: l}, nil
}

// Dir returns the absolute path of the locked data directory.
func (d *DataDirLock) Dir() string { return d.dir }

// Release gives the lock up: it removes the pid file if it still names this
// process, then unlocks. It is idempotent; releasing a released lock returns
// nil. An incumbent's lock is released by the library after a successful seal,
// not by the daemon.
func (d *DataDirLock) Release() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.l == nil {
		return nil
	}
	err := d.l.Release()
	d.l = nil
	return err
}

// tryReacquire takes the lock again after a Release, without waiting. It is
// one attempt of the recovery rule of a sealed incumbent, which calls it every
// 25 ms with no upper bound until it succeeds or proof of a commit arrives (a
// held lock proves nothing). It returns nil if the lock is already held by d,
// and an error wrapping [ErrLockHeld] while another process holds it.
func (d *DataDirLock) tryReacquire() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.l != nil {
		return nil
	}
	l, err := flock.Acquire(d.dir)
	if err != nil {
		return err
	}
	d.l = l
	return nil
}

// held reports whether d currently holds the lock.
func (d *DataDirLock) held() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.l != nil
}
