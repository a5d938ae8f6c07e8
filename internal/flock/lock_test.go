package flock

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/handoff-go/handoff/internal/sysx"
	"github.com/handoff-go/handoff/internal/testproc"
)

func mustAcquire(t *testing.T, dir string) *Lock {
	t.Helper()
	l, err := Acquire(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Release() })
	return l
}

func wantPidFile(t *testing.T, dir string, pid int) {
	t.Helper()
	got, _, err := HolderFromPidFile(dir)
	if err != nil || got != pid {
		t.Fatalf("pid file names %d (%v), want %d", got, err, pid)
	}
}

func wantRefused(t *testing.T, err error) {
	t.Helper()
	if !errors.Is(err, ErrStaleLockBreakRefused) || !errors.Is(err, ErrLockHeld) {
		t.Fatalf("error %v, want ErrStaleLockBreakRefused and ErrLockHeld", err)
	}
}

// Invariant 1: at most one process holds the data-dir lock.
func TestAcquire_refusedWhileAnotherProcessHolds(t *testing.T) {
	testproc.CheckLeaks(t)
	dir := t.TempDir()
	holder := startRole(t, "hold-lock", dir)
	holder.Expect(t, "locked")
	wantPidFile(t, dir, holder.Pid())

	_, err := Acquire(dir)
	if !errors.Is(err, ErrLockHeld) {
		t.Fatalf("Acquire while held: %v, want ErrLockHeld", err)
	}
	if !strings.Contains(err.Error(), strconv.Itoa(holder.Pid())) {
		t.Fatalf("error %q does not name the holder pid %d", err, holder.Pid())
	}
	other := startRole(t, "try-lock", dir)
	other.Expect(t, "held")
	other.Wait(t)

	holder.Wait(t) // closes its stdin: it releases and exits
	l := mustAcquire(t, dir)
	wantPidFile(t, dir, os.Getpid())
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
}

// A holder that crashed (SIGKILL: no release, its pid file left behind) does
// not keep a cold start out.
func TestAcquireOrBreakStale_holderKilled(t *testing.T) {
	testproc.CheckLeaks(t)
	dir := t.TempDir()
	holder := startRole(t, "hold-lock", dir)
	holder.Expect(t, "locked")
	holder.Crash(t)
	wantPidFile(t, dir, holder.Pid()) // the crash left it

	l, err := AcquireOrBreakStale(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	wantPidFile(t, dir, os.Getpid())
}

// DESIGN section 6: a live holder is never broken, whatever the pid file says.
func TestAcquireOrBreakStale_liveHolderNeverBroken(t *testing.T) {
	tests := []struct {
		name    string
		pidFile func(t *testing.T, path string)
	}{
		{name: "pid file intact", pidFile: func(*testing.T, string) {}},
		{name: "pid file missing", pidFile: func(t *testing.T, path string) {
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "pid file garbage", pidFile: func(t *testing.T, path string) {
			if err := os.WriteFile(path, []byte("not a pid\x00\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "pid file empty", pidFile: func(t *testing.T, path string) {
			if err := os.WriteFile(path, nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			testproc.CheckLeaks(t)
			dir := t.TempDir()
			holder := startRole(t, "hold-lock", dir)
			holder.Expect(t, "locked")
			tc.pidFile(t, filepath.Join(dir, PidFileName))

			_, err := AcquireOrBreakStale(dir)
			wantRefused(t, err)
			if pid, err := Holder(dir); err != nil || pid != holder.Pid() {
				t.Fatalf("after the refusal Holder = %d, %v; want the live holder %d", pid, err, holder.Pid())
			}
			if ws := holder.Wait(t); ws.ExitStatus() != 0 {
				t.Fatalf("holder exit status %v, want 0 (its release must succeed)", ws)
			}
		})
	}
}

// The recorded holder is dead, but another descriptor of the same lock (as a
// child caught between fork and exec would have) still holds it: the retry
// on the same inode must give up and refuse, never take a second lock.
func TestAcquireOrBreakStale_deadRecordedHolderButStillHeld(t *testing.T) {
	testproc.CheckLeaks(t)
	dir := t.TempDir()
	dead := startRole(t, "sleep", dir)
	dead.Expect(t, "ready")
	dead.Wait(t)

	l := mustAcquire(t, dir) // another open file description of the lock file
	deadRecord := []byte(strconv.Itoa(dead.Pid()) + " 1\n")
	pidPath := filepath.Join(dir, PidFileName)
	if err := os.WriteFile(pidPath, deadRecord, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := AcquireOrBreakStale(dir)
	wantRefused(t, err)
	if !strings.Contains(err.Error(), "still held") {
		t.Fatalf("error %q does not say the lock stayed held", err)
	}

	// Release must leave a pid file that does not name this process alone.
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(pidPath); err != nil || string(got) != string(deadRecord) {
		t.Fatalf("pid file after Release = %q, %v; want the foreign record %q kept", got, err, deadRecord)
	}
	l2, err := AcquireOrBreakStale(dir)
	if err != nil {
		t.Fatal(err)
	}
	l2.Release()
}

// A pid that now belongs to a process with another start time is proof the
// recorded holder is dead (pid reuse), but it is not a licence to take the
// lock from whoever holds it now.
func TestAcquireOrBreakStale_reusedPidIsDeadButLockStaysSafe(t *testing.T) {
	if !provablyDead(os.Getpid(), 1) {
		t.Fatal("own pid with a wrong start time not considered dead")
	}
	start, err := sysx.ProcStartTime(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if provablyDead(os.Getpid(), start) || provablyDead(os.Getpid(), 0) {
		t.Fatal("own pid with the right (or no) start time considered dead")
	}
}

// Section 4: every other fd is close-on-exec; a spawned successor must never
// inherit the lock (it would keep it held after the parent released it).
func TestAcquire_lockIsCloseOnExec(t *testing.T) {
	testproc.CheckLeaks(t)
	dir := t.TempDir()
	l := mustAcquire(t, dir)
	sleeper := startRole(t, "sleep", dir)
	sleeper.Expect(t, "ready")
	assertNoFDFor(t, sleeper.Pid(), filepath.Join(dir, LockFileName))

	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	third := startRole(t, "try-lock", dir)
	third.Expect(t, "locked")
	third.Wait(t)
	sleeper.Wait(t)
}

func assertNoFDFor(t *testing.T, pid int, path string) {
	t.Helper()
	fdDir := filepath.Join("/proc", strconv.Itoa(pid), "fd")
	ents, err := os.ReadDir(fdDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if target, _ := os.Readlink(filepath.Join(fdDir, e.Name())); target == path {
			t.Fatalf("child %d inherited the lock file as fd %s", pid, e.Name())
		}
	}
}

// Release removes the pid file only while it names the releasing process,
// keeps the lock file (never unlinked), and is idempotent.
func TestRelease_pidFileAndLockFile(t *testing.T) {
	dir := t.TempDir()
	lockFile, pidPath := filepath.Join(dir, LockFileName), filepath.Join(dir, PidFileName)
	l := mustAcquire(t, dir)
	_, ino, err := sysx.PathInode(lockFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(pidPath); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("pid file after Release: %v, want it removed", err)
	}
	if err := l.Release(); err != nil || l.Held() {
		t.Fatalf("second Release = %v (held %v), want nil and not held", err, l.Held())
	}

	l = mustAcquire(t, dir)
	if _, ino2, err := sysx.PathInode(lockFile); err != nil || ino2 != ino {
		t.Fatalf("lock file inode %d (%v) after a release cycle, want the same %d", ino2, err, ino)
	}
	foreign := []byte("1 12345\n") // a successor's record, written after ours
	if err := os.WriteFile(pidPath, foreign, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(pidPath); err != nil || string(got) != string(foreign) {
		t.Fatalf("pid file = %q, %v; want the foreign record kept", got, err)
	}
}

// Section 6: the pid file is written atomically, with the start time.
func TestAcquire_writesPidFileAtomically(t *testing.T) {
	dir := t.TempDir()
	mustAcquire(t, dir)
	pid, start, err := HolderFromPidFile(dir)
	if err != nil {
		t.Fatal(err)
	}
	want, err := sysx.ProcStartTime(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if pid != os.Getpid() || start != want {
		t.Fatalf("pid file = %d %d, want %d %d", pid, start, os.Getpid(), want)
	}
	temps, err := filepath.Glob(filepath.Join(dir, sysx.TempPattern(filepath.Join(dir, PidFileName))))
	if err != nil || len(temps) != 0 {
		t.Fatalf("temporary files left: %v (%v)", temps, err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil || len(ents) != 2 {
		t.Fatalf("data dir holds %v (%v), want only the lock and pid files", ents, err)
	}
}

func TestAcquire_failuresArePathErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing")
	_, err := Acquire(missing)
	var pe *os.PathError
	if !errors.As(err, &pe) || !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Acquire in a missing dir: %v, want a *os.PathError wrapping fs.ErrNotExist", err)
	}
	if _, err := AcquireOrBreakStale(missing); !errors.Is(err, fs.ErrNotExist) || errors.Is(err, ErrLockHeld) {
		t.Fatalf("AcquireOrBreakStale in a missing dir: %v, want fs.ErrNotExist only", err)
	}
	f, err := os.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	err = flockOp(f, syscall.LOCK_EX)
	if !errors.As(err, &pe) || pe.Op != "flock" {
		t.Fatalf("flock on a closed file: %v, want *os.PathError with Op flock", err)
	}
}

func TestParsePidFile(t *testing.T) {
	tests := []struct {
		in        string
		wantPid   int
		wantStart uint64
		wantErr   bool
	}{
		{in: "123 456\n", wantPid: 123, wantStart: 456},
		{in: "123\n", wantPid: 123},
		{in: "", wantErr: true},
		{in: "0 1\n", wantErr: true},
		{in: "-5\n", wantErr: true},
		{in: "12 x\n", wantErr: true},
		{in: "1 2 3\n", wantErr: true},
		{in: "garbage\n", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(strconv.Quote(tc.in), func(t *testing.T) {
			pid, start, err := parsePidFile([]byte(tc.in))
			if tc.wantErr {
				if !errors.Is(err, ErrBadPidFile) {
					t.Fatalf("parse %q: %d %d %v, want ErrBadPidFile", tc.in, pid, start, err)
				}
				return
			}
			if err != nil || pid != tc.wantPid || start != tc.wantStart {
				t.Fatalf("parse %q = %d %d %v, want %d %d", tc.in, pid, start, err, tc.wantPid, tc.wantStart)
			}
		})
	}
}

// A lock file removed or replaced by hand between open and flock would give
// a lock that excludes nobody; the acquire must notice.
func TestCheckStillLockFile_detectsReplacement(t *testing.T) {
	dir := t.TempDir()
	f, err := openLockFile(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := checkStillLockFile(dir, f); err != nil {
		t.Fatalf("untouched lock file: %v", err)
	}
	other := filepath.Join(dir, "other")
	if err := os.WriteFile(other, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(other, filepath.Join(dir, LockFileName)); err != nil {
		t.Fatal(err)
	}
	if err := checkStillLockFile(dir, f); !errors.Is(err, ErrLockFileReplaced) {
		t.Fatalf("replaced lock file: %v, want ErrLockFileReplaced", err)
	}
	if err := os.Remove(filepath.Join(dir, LockFileName)); err != nil {
		t.Fatal(err)
	}
	if err := checkStillLockFile(dir, f); !errors.Is(err, ErrLockFileReplaced) {
		t.Fatalf("removed lock file: %v, want ErrLockFileReplaced", err)
	}
}
