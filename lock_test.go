package handoff

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"

	"github.com/handoff-go/handoff/internal/flock"
	"github.com/handoff-go/handoff/internal/testproc"
)

// lockDirEnv passes the data directory to the lock helper roles.
const lockDirEnv = "HANDOFF_LOCK_TEST_DIR"

// The lock helpers join the package's role registry (package variables are
// initialised before any init function runs).
func init() {
	// lock-hold: AcquireLock, print "locked", hold until stdin closes, release.
	roles.Add("lock-hold", roleLockHold)
	// lock-try: AcquireLock once; print "locked" (then release) or "held".
	roles.Add("lock-try", roleLockTry)
}

func roleLockHold() int {
	l, err := AcquireLock(os.Getenv(lockDirEnv))
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	fmt.Println("locked")
	_, _ = io.Copy(io.Discard, os.Stdin)
	return exitOnError(l.Release())
}

func roleLockTry() int {
	l, err := AcquireLock(os.Getenv(lockDirEnv))
	switch {
	case errors.Is(err, ErrLockHeld):
		fmt.Println("held")
		return 0
	case err != nil:
		fmt.Println("error:", err)
		return 1
	}
	fmt.Println("locked")
	return exitOnError(l.Release())
}

func exitOnError(err error) int {
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// startLockRole starts a lock helper on dir and checks its first line.
func startLockRole(t *testing.T, role, dir, want string) *testproc.Child {
	t.Helper()
	c := startRole(t, role, []string{lockDirEnv + "=" + dir}, nil)
	if got := c.Line(t); got != want {
		t.Fatalf("%s child said %q, want %q", role, got, want)
	}
	return c
}

// finish closes the child's stdin and reaps it; it must exit 0.
func finish(t *testing.T, c *testproc.Child) {
	t.Helper()
	if code := c.Wait(t).ExitStatus(); code != 0 {
		t.Fatalf("child %d exited with %d, want 0", c.Pid(), code)
	}
}

// Invariants 1 and 2: after the incumbent releases the lock (a successful
// seal), a successor takes it; the incumbent's recovery attempts fail while
// the successor holds it and succeed once it is gone.
func TestDataDirLock_releaseAndReacquireWithContender(t *testing.T) {
	checkFDs(t)
	dir := t.TempDir()
	d, err := AcquireLock(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Release() })
	if !d.held() || d.Dir() != dir {
		t.Fatalf("fresh lock: held %v dir %q, want true %q", d.held(), d.Dir(), dir)
	}
	finish(t, startLockRole(t, "lock-try", dir, "held"))

	if err := d.Release(); err != nil {
		t.Fatal(err)
	}
	if err := d.Release(); err != nil || d.held() {
		t.Fatalf("second Release = %v (held %v), want nil and not held", err, d.held())
	}
	successor := startLockRole(t, "lock-hold", dir, "locked")
	for range 3 {
		if err := d.tryReacquire(); !errors.Is(err, ErrLockHeld) || d.held() {
			t.Fatalf("tryReacquire while the successor holds it: %v (held %v), want ErrLockHeld", err, d.held())
		}
	}
	finish(t, successor) // an aborted successor exits and frees the lock

	if err := d.tryReacquire(); err != nil || !d.held() {
		t.Fatalf("tryReacquire on a free lock: %v (held %v)", err, d.held())
	}
	if err := d.tryReacquire(); err != nil {
		t.Fatalf("tryReacquire while holding: %v, want nil", err)
	}
	if pid, err := flock.Holder(dir); err != nil || pid != os.Getpid() {
		t.Fatalf("holder after reacquire = %d, %v; want %d", pid, err, os.Getpid())
	}
	finish(t, startLockRole(t, "lock-try", dir, "held"))
}

// DESIGN section 6: a crashed holder does not keep a cold start out; a live
// one is never broken.
func TestAcquireOrBreakStale_crashedAndLiveHolders(t *testing.T) {
	checkFDs(t)
	dir := t.TempDir()
	live := startLockRole(t, "lock-hold", dir, "locked")
	if _, err := AcquireOrBreakStale(dir); !errors.Is(err, ErrStaleLockBreakRefused) || !errors.Is(err, ErrLockHeld) {
		t.Fatalf("AcquireOrBreakStale with a live holder: %v, want ErrStaleLockBreakRefused and ErrLockHeld", err)
	}
	if _, err := AcquireLock(dir); !errors.Is(err, ErrLockHeld) {
		t.Fatalf("AcquireLock with a live holder: %v, want ErrLockHeld", err)
	}
	live.Signal(t, syscall.SIGKILL)
	if code := live.Wait(t).ExitStatus(); code != -1 {
		t.Fatalf("holder exit code %d, want -1 (killed)", code)
	}

	d, err := AcquireOrBreakStale(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Release()
	if pid, _, err := flock.HolderFromPidFile(dir); err != nil || pid != os.Getpid() {
		t.Fatalf("pid file names %d (%v), want %d", pid, err, os.Getpid())
	}
	if pid, err := flock.Holder(dir); err != nil || pid != os.Getpid() {
		t.Fatalf("the kernel says the lock is held by %d (%v), want %d", pid, err, os.Getpid())
	}
}

// The incumbent's owner goroutine and its recovery loop may touch the lock
// at once; the lock state must stay consistent with the kernel's.
func TestDataDirLock_concurrentUse(t *testing.T) {
	checkFDs(t)
	dir := t.TempDir()
	d, err := AcquireLock(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Release() })
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for range 20 {
				if i%2 == 0 {
					_ = d.Release()
				} else if err := d.tryReacquire(); err != nil {
					t.Errorf("tryReacquire with no other process: %v", err)
				}
				_ = d.held()
			}
		})
	}
	wg.Wait()
	pid, err := flock.Holder(dir)
	if err != nil {
		t.Fatal(err)
	}
	if held := pid == os.Getpid(); held != d.held() {
		t.Fatalf("held() = %v but the kernel shows holder %d", d.held(), pid)
	}
}

func TestAcquireLock_relativeDirIsResolved(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	d, err := AcquireLock(".")
	if err != nil {
		t.Fatal(err)
	}
	defer d.Release()
	if d.Dir() != dir {
		t.Fatalf("Dir() = %q, want %q", d.Dir(), dir)
	}
	if _, err := os.Stat(filepath.Join(dir, flock.LockFileName)); err != nil {
		t.Fatal(err)
	}
}
