package sysx

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// procStat is the part of /proc/<pid>/stat the package needs.
type procStat struct {
	state     byte   // field 3: R, S, D, Z, X, ...
	startTime uint64 // field 22: clock ticks after boot
}

// ProcStartTime returns the start time of process pid (field 22 of
// /proc/<pid>/stat, in clock ticks after boot). A pid together with its start
// time names one process for the life of the machine, so recording both lets
// a later reader tell the process it meant from one that reused the pid.
// A missing process yields an error wrapping [ErrProcessGone].
func ProcStartTime(pid int) (uint64, error) {
	st, err := readProcStat(pid)
	if err != nil {
		return 0, err
	}
	return st.startTime, nil
}

// userHZ is the unit of the clock ticks /proc reports (USER_HZ): fixed at
// 100 by the kernel's ABI, whatever the kernel's internal tick rate.
const userHZ = 100

// ProcStartedAt returns the wall-clock time at which process pid started:
// its start time in ticks after boot, placed on the clock through the
// system's uptime (/proc/uptime). An exec does not change it, so a program
// that replaced its own image (same pid) learns when the process began.
// The result is good to the tick (10 ms).
func ProcStartedAt(pid int) (time.Time, error) {
	ticks, err := ProcStartTime(pid)
	if err != nil {
		return time.Time{}, err
	}
	data, err := os.ReadFile("/proc/uptime")
	if err != nil {
		return time.Time{}, fmt.Errorf("handoff: read uptime: %w", err)
	}
	now := time.Now()
	fields := bytes.Fields(data)
	if len(fields) == 0 {
		return time.Time{}, fmt.Errorf("handoff: /proc/uptime is empty")
	}
	up, err := strconv.ParseFloat(string(fields[0]), 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("handoff: /proc/uptime %q: %w", data, err)
	}
	boot := now.Add(-time.Duration(up * float64(time.Second)))
	return boot.Add(time.Duration(ticks) * time.Second / userHZ), nil
}

// Alive reports whether pid names a process that still runs. A zombie (exited,
// not yet reaped) is not alive: it already closed its files and released its
// locks. A pid of 0 or less is never alive (kill(2) would address a group).
func Alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	if err := unix.Kill(pid, 0); err != nil && !errors.Is(err, unix.EPERM) {
		return false
	}
	st, err := readProcStat(pid)
	if err != nil {
		// Gone between kill and the read: dead. Any other failure to read
		// proves nothing, and kill said it exists.
		return !errors.Is(err, ErrProcessGone)
	}
	return st.state != 'Z' && st.state != 'X' && st.state != 'x'
}

func readProcStat(pid int) (procStat, error) {
	if pid <= 0 {
		return procStat{}, fmt.Errorf("handoff: read stat of pid %d: %w", pid, ErrProcessGone)
	}
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ESRCH) {
		return procStat{}, fmt.Errorf("handoff: read stat of pid %d: %w: %w", pid, ErrProcessGone, err)
	}
	if err != nil {
		return procStat{}, fmt.Errorf("handoff: read stat of pid %d: %w", pid, err)
	}
	return parseProcStat(pid, data)
}

// parseProcStat parses a /proc/<pid>/stat line. The command name (field 2) is
// in parentheses and may itself contain spaces and ')', so the fields are
// counted from the last ')'.
func parseProcStat(pid int, data []byte) (procStat, error) {
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return procStat{}, fmt.Errorf("handoff: parse /proc/%d/stat: no ')' after the command name", pid)
	}
	fields := bytes.Fields(data[i+1:])
	const stateIdx, startIdx = 0, 22 - 3 // fields after ')' start at field 3
	if len(fields) <= startIdx || len(fields[stateIdx]) != 1 {
		return procStat{}, fmt.Errorf("handoff: parse /proc/%d/stat: %d fields after the command name, want more than %d", pid, len(fields), startIdx)
	}
	start, err := strconv.ParseUint(string(fields[startIdx]), 10, 64)
	if err != nil {
		return procStat{}, fmt.Errorf("handoff: parse start time in /proc/%d/stat: %w", pid, err)
	}
	return procStat{state: fields[stateIdx][0], startTime: start}, nil
}
