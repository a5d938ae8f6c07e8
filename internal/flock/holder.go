package flock

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// fileID is the kernel identity of a file as /proc/locks prints it.
type fileID struct {
	major, minor uint32
	ino          uint64
}

// Holder returns the pid of the process holding the lock of dir, or 0 if
// nobody holds it. It never touches the lock (not even LOCK_NB or LOCK_SH,
// which could make a successor's acquire fail at the wrong moment): it finds
// the flock on the lock file's inode in /proc/locks. If the lock is held but
// the kernel shows no pid for it, the error wraps [ErrHolderUnknown] and
// [ErrLockHeld]. A missing lock file means nobody holds it.
func Holder(dir string) (pid int, err error) {
	ids, err := lockFileIDs(lockPath(dir))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	pid, held, err := scanProcLocks(ids)
	if err != nil {
		return 0, fmt.Errorf("handoff: find lock holder: %w", err)
	}
	if held && pid <= 0 {
		return 0, fmt.Errorf("handoff: lock %s: %w: %w", lockPath(dir), ErrHolderUnknown, ErrLockHeld)
	}
	return pid, nil
}

// procLocksReads bounds how many times /proc/locks is read for one answer.
const procLocksReads = 8

// scanProcLocks looks for a flock on ids in /proc/locks. The kernel builds
// the file one read(2) at a time, each a page-sized chunk, from per-CPU
// lists of locks; between two chunks a lock can be released from one list
// and another taken on a later one, so a single pass can skip the holder or
// show a holder that has just released the lock. An answer is therefore
// taken only when two consecutive whole passes agree (each read with a
// buffer large enough to return a full chunk); failing that, the last pass
// is returned.
func scanProcLocks(ids []fileID) (pid int, held bool, err error) {
	buf := make([]byte, 0, 64<<10)
	lastPID, lastHeld := -1, false
	for range procLocksReads {
		if buf, err = readProcLocks(buf[:0]); err != nil {
			return 0, false, err
		}
		pid, held = findFlockHolder(buf, ids)
		if pid == lastPID && held == lastHeld {
			return pid, held, nil
		}
		lastPID, lastHeld = pid, held
	}
	return pid, held, nil
}

func readProcLocks(buf []byte) ([]byte, error) {
	f, err := os.Open("/proc/locks")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := f.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if errors.Is(err, io.EOF) || (err == nil && n == 0) {
			return buf, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// findFlockHolder scans /proc/locks lines such as
//
//	1: FLOCK  ADVISORY  WRITE 12345 fe:01:5678 0 EOF
//
// for a granted flock (not a "->" waiter) on one of ids. Device numbers are
// hex, the inode decimal. The pid is 0 when the kernel cannot show it.
func findFlockHolder(data []byte, ids []fileID) (pid int, held bool) {
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 6 || f[1] != "FLOCK" {
			continue
		}
		id, ok := parseLockID(f[5])
		if !ok || !containsID(ids, id) {
			continue
		}
		p, err := strconv.Atoi(f[4])
		if err != nil || p < 0 {
			p = 0
		}
		return p, true
	}
	return 0, false
}

func parseLockID(s string) (fileID, bool) {
	parts := strings.Split(s, ":")
	if len(parts) != 3 {
		return fileID{}, false
	}
	major, err1 := strconv.ParseUint(parts[0], 16, 32)
	minor, err2 := strconv.ParseUint(parts[1], 16, 32)
	ino, err3 := strconv.ParseUint(parts[2], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil {
		return fileID{}, false
	}
	return fileID{major: uint32(major), minor: uint32(minor), ino: ino}, true
}

func containsID(ids []fileID, id fileID) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}

// lockFileIDs returns the identities under which /proc/locks may print the
// lock file. The kernel prints the device of the file's superblock, which is
// usually what stat reports but not always (a btrfs subvolume reports its
// own device to stat), so the superblock's device is also taken from the
// mount the file lives on.
func lockFileIDs(path string) ([]fileID, error) {
	var stx unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, path, 0, unix.STATX_INO|unix.STATX_MNT_ID, &stx); err != nil {
		return nil, &os.PathError{Op: "statx", Path: path, Err: err}
	}
	ids := []fileID{{major: stx.Dev_major, minor: stx.Dev_minor, ino: stx.Ino}}
	if stx.Mask&unix.STATX_MNT_ID != 0 {
		if major, minor, ok := mountDevice(stx.Mnt_id); ok {
			ids = append(ids, fileID{major: major, minor: minor, ino: stx.Ino})
		}
	}
	return ids, nil
}

// mountDevice returns the superblock device of mount mntID from
// /proc/self/mountinfo (field 3, decimal "major:minor").
func mountDevice(mntID uint64) (major, minor uint32, ok bool) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return 0, 0, false
	}
	want := strconv.FormatUint(mntID, 10)
	for line := range strings.Lines(string(data)) {
		f := strings.Fields(line)
		if len(f) < 3 || f[0] != want {
			continue
		}
		var ma, mi uint32
		if _, err := fmt.Sscanf(f[2], "%d:%d", &ma, &mi); err != nil {
			return 0, 0, false
		}
		return ma, mi, true
	}
	return 0, 0, false
}
