package flock

import (
	"errors"
	"os"
	"testing"

	"github.com/handoff-go/handoff/internal/testproc"
)

// DESIGN section 2 "S on restart": the holder is found without taking the lock.
func TestHolder_otherProcessSelfAndFree(t *testing.T) {
	testproc.CheckLeaks(t)
	dir := t.TempDir()
	if pid, err := Holder(dir); err != nil || pid != 0 {
		t.Fatalf("Holder without a lock file = %d, %v; want 0, nil", pid, err)
	}
	holder := startRole(t, "hold-lock", dir)
	holder.Expect(t, "locked")
	if pid, err := Holder(dir); err != nil || pid != holder.Pid() {
		t.Fatalf("Holder = %d, %v; want the child %d", pid, err, holder.Pid())
	}
	holder.Wait(t)
	if pid, err := Holder(dir); err != nil || pid != 0 {
		t.Fatalf("Holder after the child released = %d, %v; want 0, nil", pid, err)
	}
	l := mustAcquire(t, dir)
	if pid, err := Holder(dir); err != nil || pid != os.Getpid() {
		t.Fatalf("Holder while we hold it = %d, %v; want %d", pid, err, os.Getpid())
	}
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	if pid, err := Holder(dir); err != nil || pid != 0 {
		t.Fatalf("Holder after release = %d, %v; want 0, nil", pid, err)
	}
}

func TestFindFlockHolder(t *testing.T) {
	ours := []fileID{{major: 0xfe, minor: 1, ino: 5678}, {major: 0, minor: 0x2f, ino: 5678}}
	tests := []struct {
		name     string
		locks    string
		wantPid  int
		wantHeld bool
	}{
		{name: "empty", locks: ""},
		{name: "held", locks: "1: FLOCK  ADVISORY  WRITE 12345 fe:01:5678 0 EOF\n", wantPid: 12345, wantHeld: true},
		{name: "held, superblock device", locks: "1: FLOCK  ADVISORY  WRITE 77 00:2f:5678 0 EOF\n", wantPid: 77, wantHeld: true},
		{name: "waiter lines are not holders", locks: "1: -> FLOCK  ADVISORY  WRITE 9 fe:01:5678 0 EOF\n"},
		{name: "other inode", locks: "1: FLOCK  ADVISORY  WRITE 9 fe:01:5679 0 EOF\n"},
		{name: "other device", locks: "1: FLOCK  ADVISORY  WRITE 9 fe:02:5678 0 EOF\n"},
		{name: "posix lock ignored", locks: "1: POSIX  ADVISORY  WRITE 9 fe:01:5678 0 EOF\n"},
		{name: "pid not visible", locks: "1: FLOCK  ADVISORY  WRITE 0 fe:01:5678 0 EOF\n", wantHeld: true},
		{
			name: "among others",
			locks: "1: POSIX  ADVISORY  WRITE 3 fe:01:1 0 EOF\n" +
				"2: FLOCK  ADVISORY  WRITE 4 fe:01:5678 0 EOF\n" +
				"2: -> FLOCK  ADVISORY  WRITE 5 fe:01:5678 0 EOF\n",
			wantPid: 4, wantHeld: true,
		},
		{name: "malformed", locks: "1: FLOCK ADVISORY WRITE x fe:zz:5678\n2: FLOCK\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pid, held := findFlockHolder([]byte(tc.locks), ours)
			if pid != tc.wantPid || held != tc.wantHeld {
				t.Fatalf("findFlockHolder = %d, %v; want %d, %v", pid, held, tc.wantPid, tc.wantHeld)
			}
		})
	}
}

func TestHolderFromPidFile_missing(t *testing.T) {
	if _, _, err := HolderFromPidFile(t.TempDir()); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("HolderFromPidFile without a pid file: %v, want fs.ErrNotExist", err)
	}
}
