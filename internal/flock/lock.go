package flock

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/handoff-go/handoff/internal/sysx"
)

// LockFileName is the name, inside the data directory, of the file that is
// flocked. It is created on first use and never removed.
const LockFileName = ".handoff.lock"

// How AcquireOrBreakStale waits for a lock whose recorded holder is dead: the
// kernel drops a flock only when the last descriptor sharing it closes, and a
// child caught between fork and exec still shares it for a moment.
const (
	staleRetryInterval = 25 * time.Millisecond
	staleRetryFor      = 2 * time.Second
)

// Lock is a held data-dir lock. It keeps the lock file open for as long as
// the lock is held: closing the descriptor is what releases a flock.
// A Lock is safe for concurrent use.
type Lock struct {
	dir       string
	pid       int
	startTime uint64

	mu sync.Mutex
	f  *os.File // nil once released
}

// Acquire takes the data-dir lock of dir without waiting, then records this
// process in the pid file. If another process holds the lock it returns an
// error wrapping [ErrLockHeld] that names the holder when it is known; other
// failures of flock(2) are reported as *os.PathError with Op "flock".
func Acquire(dir string) (*Lock, error) {
	f, err := openLockFile(dir)
	if err != nil {
		return nil, err
	}
	if err := lockNB(f); err != nil {
		f.Close()
		return nil, heldError(dir, err)
	}
	return finishAcquire(dir, f)
}

// AcquireOrBreakStale is Acquire for a cold start after a crash. If the lock
// is held and the pid file names a process that is provably dead (no such
// process, or its pid now belongs to a process with another start time), it
// retries flock on the same open lock file every 25 ms for up to 2 s; it
// never unlinks the lock file and never locks a fresh inode, so the kernel
// still guarantees a single holder.
//
// Every refusal wraps both [ErrStaleLockBreakRefused] and [ErrLockHeld]: a
// live holder, a missing or malformed pid file (nothing proves the holder
// dead), or a lock still held 2 s after its recorded holder died (a process
// sharing its descriptor, such as a child it forked, still holds it).
func AcquireOrBreakStale(dir string) (*Lock, error) {
	f, err := openLockFile(dir)
	if err != nil {
		return nil, err
	}
	err = lockNB(f)
	if err == nil {
		return finishAcquire(dir, f)
	}
	if !errors.Is(err, unix.EWOULDBLOCK) {
		f.Close()
		return nil, heldError(dir, err)
	}
	deadPid, err := deadHolder(dir)
	if err != nil {
		f.Close()
		return nil, err
	}
	return retryDeadHolder(dir, f, deadPid)
}

// deadHolder returns the pid recorded in the pid file if that process is
// provably dead, and a refusal otherwise.
func deadHolder(dir string) (int, error) {
	pid, start, err := HolderFromPidFile(dir)
	if err != nil {
		return 0, fmt.Errorf("handoff: lock %s is held and its holder is unknown (%v); not breaking it: %w: %w",
			lockPath(dir), err, ErrStaleLockBreakRefused, ErrLockHeld)
	}
	if !provablyDead(pid, start) {
		return 0, fmt.Errorf("handoff: lock %s is held by live pid %d; stop that process first: %w: %w",
			lockPath(dir), pid, ErrStaleLockBreakRefused, ErrLockHeld)
	}
	return pid, nil
}

// retryDeadHolder retries the flock on f, the open file description that
// just failed, until the kernel grants it or the retry time runs out. It
// consumes f.
func retryDeadHolder(dir string, f *os.File, deadPid int) (*Lock, error) {
	tick := time.NewTicker(staleRetryInterval)
	defer tick.Stop()
	deadline := time.Now().Add(staleRetryFor)
	for {
		<-tick.C
		err := lockNB(f)
		if err == nil {
			return finishAcquire(dir, f)
		}
		if !errors.Is(err, unix.EWOULDBLOCK) || time.Now().After(deadline) {
			f.Close()
			return nil, staleRefusal(dir, deadPid, err)
		}
	}
}

func staleRefusal(dir string, deadPid int, err error) error {
	if !errors.Is(err, unix.EWOULDBLOCK) {
		return err
	}
	return fmt.Errorf("handoff: lock %s: recorded holder pid %d is dead but the lock is still held after %v (%s); not breaking it: %w: %w",
		lockPath(dir), deadPid, staleRetryFor, describeHolder(dir), ErrStaleLockBreakRefused, ErrLockHeld)
}

// finishAcquire completes an acquire once flock succeeded on f: it checks
// that f is still the file at the lock path, then records the holder. It
// consumes f.
func finishAcquire(dir string, f *os.File) (*Lock, error) {
	l := &Lock{dir: dir, pid: os.Getpid(), f: f}
	start, err := sysx.ProcStartTime(l.pid)
	if err == nil {
		err = checkStillLockFile(dir, f)
	}
	if err == nil {
		l.startTime = start
		err = writePidFile(dir, l.pid, l.startTime)
	}
	if err != nil {
		_ = unlock(f)
		f.Close()
		return nil, fmt.Errorf("handoff: lock %s: %w", lockPath(dir), err)
	}
	return l, nil
}

// checkStillLockFile guards against a lock file that was removed or replaced
// (by hand) between open and flock: a lock on an inode no longer at the path
// excludes nobody.
func checkStillLockFile(dir string, f *os.File) error {
	held, err := f.Stat()
	if err != nil {
		return err
	}
	atPath, err := os.Stat(lockPath(dir))
	if err != nil || !os.SameFile(held, atPath) {
		return fmt.Errorf("%w (stat: %v)", ErrLockFileReplaced, err)
	}
	return nil
}

// Dir returns the data directory the lock guards.
func (l *Lock) Dir() string { return l.dir }

// Held reports whether the lock has not been released yet.
func (l *Lock) Held() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.f != nil
}

// Release gives the lock up. It first removes the pid file if it still names
// this process (after the unlock a successor may write its own, which must
// survive), then unlocks and closes the lock file, which stays in place.
// Release is idempotent; a second call returns nil.
func (l *Lock) Release() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	err := removePidFileIfOurs(l.dir, l.pid, l.startTime)
	uerr := unlock(l.f)
	cerr := l.f.Close()
	l.f = nil
	if err = errors.Join(err, uerr, cerr); err != nil {
		return fmt.Errorf("handoff: release lock %s: %w", lockPath(l.dir), err)
	}
	return nil
}

func lockPath(dir string) string { return filepath.Join(dir, LockFileName) }

func openLockFile(dir string) (*os.File, error) {
	f, err := os.OpenFile(lockPath(dir), os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("handoff: open data-dir lock: %w", err)
	}
	return f, nil
}

// heldError turns a failed non-blocking flock into the error Acquire returns.
func heldError(dir string, err error) error {
	if !errors.Is(err, unix.EWOULDBLOCK) {
		return fmt.Errorf("handoff: data-dir lock: %w", err)
	}
	return fmt.Errorf("handoff: lock %s %s: %w", lockPath(dir), describeHolder(dir), ErrLockHeld)
}

// describeHolder names the holder for an error message, best effort.
func describeHolder(dir string) string {
	if pid, err := Holder(dir); err == nil && pid > 0 {
		return fmt.Sprintf("is held by pid %d", pid)
	}
	if pid, _, err := HolderFromPidFile(dir); err == nil {
		return fmt.Sprintf("is held (pid file names pid %d)", pid)
	}
	return "is held by an unknown process"
}

func lockNB(f *os.File) error { return flockOp(f, unix.LOCK_EX|unix.LOCK_NB) }

func unlock(f *os.File) error { return flockOp(f, unix.LOCK_UN) }

// flockOp runs flock(2) on f, retrying EINTR, without calling f.Fd.
func flockOp(f *os.File, how int) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return &os.PathError{Op: "flock", Path: f.Name(), Err: err}
	}
	var opErr error
	if err := rc.Control(func(fd uintptr) {
		for {
			if opErr = unix.Flock(int(fd), how); !errors.Is(opErr, unix.EINTR) {
				return
			}
		}
	}); err != nil {
		return &os.PathError{Op: "flock", Path: f.Name(), Err: err}
	}
	if opErr != nil {
		return &os.PathError{Op: "flock", Path: f.Name(), Err: opErr}
	}
	return nil
}
