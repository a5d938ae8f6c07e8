package flock

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/handoff-go/handoff/internal/sysx"
)

// PidFileName is the name, inside the data directory, of the file naming the
// lock holder.
const PidFileName = ".handoff.pid"

// HolderFromPidFile returns the pid and process start time recorded in the
// pid file of dir (startTime is 0 when the writer recorded none). The pid
// file is advisory: it may name a process that has died since, so pair it
// with a pidfd opened with the start time ([sysx.OpenProcess]) before acting
// on it. A missing file yields an error wrapping [fs.ErrNotExist], a
// malformed one an error wrapping [ErrBadPidFile].
func HolderFromPidFile(dir string) (pid int, startTime uint64, err error) {
	path := filepath.Join(dir, PidFileName)
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, 0, fmt.Errorf("handoff: read lock pid file: %w", err)
	}
	pid, startTime, err = parsePidFile(data)
	if err != nil {
		return 0, 0, fmt.Errorf("handoff: lock pid file %s: %w", path, err)
	}
	return pid, startTime, nil
}

func parsePidFile(data []byte) (pid int, startTime uint64, err error) {
	fields := strings.Fields(string(data))
	if len(fields) < 1 || len(fields) > 2 {
		return 0, 0, fmt.Errorf("%w: %q", ErrBadPidFile, data)
	}
	pid, err = strconv.Atoi(fields[0])
	if err != nil || pid <= 0 {
		return 0, 0, fmt.Errorf("%w: pid %q", ErrBadPidFile, fields[0])
	}
	if len(fields) == 2 {
		startTime, err = strconv.ParseUint(fields[1], 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("%w: start time %q", ErrBadPidFile, fields[1])
		}
	}
	return pid, startTime, nil
}

func formatPidFile(pid int, startTime uint64) []byte {
	return []byte(strconv.Itoa(pid) + " " + strconv.FormatUint(startTime, 10) + "\n")
}

// writePidFile records this process as the holder. The caller holds the lock.
// The file is replaced atomically but not fsynced: it names a live process,
// and after a machine crash no process holds the lock (flocks do not
// survive a reboot) and whatever pid the file names is dead or another
// process (pid and start time differ), so durability would buy nothing.
// It sits between Begin and Ready on every swap.
func writePidFile(dir string, pid int, startTime uint64) error {
	return sysx.ReplaceFileAtomic(filepath.Join(dir, PidFileName), formatPidFile(pid, startTime), 0o644)
}

// removePidFileIfOurs removes the pid file while it names pid/startTime. It is
// called before unlocking: after the unlock a successor may already have
// written its own, which must survive.
func removePidFileIfOurs(dir string, pid int, startTime uint64) error {
	gotPid, gotStart, err := HolderFromPidFile(dir)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, ErrBadPidFile) {
		return nil // not ours to touch
	}
	if err != nil {
		return err
	}
	if gotPid != pid || gotStart != startTime {
		return nil
	}
	if err := os.Remove(filepath.Join(dir, PidFileName)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("handoff: remove lock pid file: %w", err)
	}
	return nil
}

// provablyDead reports whether the process recorded as pid/startTime is
// certainly gone: no running process has the pid, or the one that has it
// started at another time (the pid was reused).
func provablyDead(pid int, startTime uint64) bool {
	if !sysx.Alive(pid) {
		return true
	}
	if startTime == 0 {
		return false
	}
	got, err := sysx.ProcStartTime(pid)
	return err != nil || got != startTime
}
