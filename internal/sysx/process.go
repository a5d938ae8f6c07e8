package sysx

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Process is a process watched through a pidfd. It need not be a child of
// this process: a restarted supervisor adopts an incumbent that some earlier
// supervisor spawned, and must still signal it and notice its exit without
// ever hitting a recycled pid. The pidfd keeps naming the process it was
// opened for even after that process exits and its pid is reused.
//
// A Process is safe for concurrent use. Close releases the pidfd.
type Process struct {
	pid       int
	startTime uint64
	f         *os.File // the pidfd, non-blocking, in the runtime poller

	closeOnce sync.Once
	closeErr  error
}

// OpenProcess opens a pidfd for pid and then checks that the process it names
// started at startTime (see [ProcStartTime]). The order matters: once the pidfd
// is open it pins the process, so a start time that still matches proves the
// pidfd names the recorded process and not a later one that reused the pid.
// A startTime of 0 skips the check (the caller recorded none).
//
// A process that no longer exists yields an error wrapping [ErrProcessGone];
// a start-time mismatch one wrapping both [ErrPidReused] and [ErrProcessGone].
func OpenProcess(pid int, startTime uint64) (*Process, error) {
	if pid <= 0 {
		return nil, fmt.Errorf("handoff: open pidfd for pid %d: not a process id: %w", pid, ErrProcessGone)
	}
	fd, err := unix.PidfdOpen(pid, unix.PIDFD_NONBLOCK)
	if errors.Is(err, unix.ESRCH) {
		return nil, fmt.Errorf("handoff: open pidfd for pid %d: %w: %w", pid, ErrProcessGone, os.NewSyscallError("pidfd_open", err))
	}
	if err != nil {
		return nil, fmt.Errorf("handoff: open pidfd for pid %d: %w", pid, os.NewSyscallError("pidfd_open", err))
	}
	// The descriptor is non-blocking, so os.NewFile registers it with the
	// runtime poller, which Wait relies on.
	p := &Process{pid: pid, startTime: startTime, f: os.NewFile(uintptr(fd), "pidfd:"+strconv.Itoa(pid))}
	if err := p.checkStartTime(); err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

func (p *Process) checkStartTime() error {
	got, err := ProcStartTime(p.pid)
	if err != nil {
		return err
	}
	if p.startTime != 0 && got != p.startTime {
		return fmt.Errorf("handoff: pid %d started at tick %d, recorded %d: %w: %w", p.pid, got, p.startTime, ErrPidReused, ErrProcessGone)
	}
	p.startTime = got
	return nil
}

// PID returns the process id the Process was opened for.
func (p *Process) PID() int { return p.pid }

// StartTime returns the process start time (clock ticks after boot), read
// when the Process was opened.
func (p *Process) StartTime() uint64 { return p.startTime }

// Signal sends sig through the pidfd, so it can only ever reach this process,
// never a later one with the same pid. A process that has exited yields an
// error wrapping [ErrProcessGone].
func (p *Process) Signal(sig syscall.Signal) error {
	var sigErr error
	err := control(p.f, func(fd uintptr) { sigErr = unix.PidfdSendSignal(int(fd), sig, nil, 0) })
	if err != nil {
		return fmt.Errorf("handoff: signal pid %d: %w", p.pid, err)
	}
	if errors.Is(sigErr, unix.ESRCH) {
		return fmt.Errorf("handoff: signal pid %d with %v: %w: %w", p.pid, sig, ErrProcessGone, os.NewSyscallError("pidfd_send_signal", sigErr))
	}
	if sigErr != nil {
		return fmt.Errorf("handoff: signal pid %d with %v: %w", p.pid, sig, os.NewSyscallError("pidfd_send_signal", sigErr))
	}
	return nil
}

// Exited reports, without blocking, whether the process has exited (a pidfd
// becomes readable when its process terminates). It reports false after Close.
func (p *Process) Exited() bool {
	exited := false
	_ = control(p.f, func(fd uintptr) { exited, _ = pollReadable(fd) })
	return exited
}

// Wait blocks until the process has exited or ctx is done, and returns nil or
// ctx.Err(). It does not reap: a child of this process still needs its
// parent's wait. Each call waits on its own duplicate of the pidfd in the
// runtime poller, so concurrent Waits with different contexts do not disturb
// each other and no goroutine is left behind.
func (p *Process) Wait(ctx context.Context) error {
	f, err := p.dupPidfd()
	if err != nil {
		return err
	}
	defer f.Close()
	stop := context.AfterFunc(ctx, func() { _ = f.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	if err := waitReadable(f); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("handoff: wait for pid %d: %w", p.pid, err)
	}
	return nil
}

// Close releases the pidfd. It is idempotent; the process is not affected.
func (p *Process) Close() error {
	p.closeOnce.Do(func() { p.closeErr = p.f.Close() })
	return p.closeErr
}

func (p *Process) dupPidfd() (*os.File, error) {
	f, err := DupFile(p.f, p.f.Name())
	if err != nil {
		return nil, fmt.Errorf("handoff: wait for pid %d: %w", p.pid, err)
	}
	return f, nil
}

// waitReadable parks in the runtime poller until f (a non-blocking pidfd) is
// readable, or f's read deadline passes.
func waitReadable(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var pollErr error
	err = rc.Read(func(fd uintptr) bool {
		var ready bool
		ready, pollErr = pollReadable(fd)
		return ready || pollErr != nil
	})
	if err != nil {
		return err
	}
	return pollErr
}

// pollReadable polls fd once with a zero timeout.
func pollReadable(fd uintptr) (bool, error) {
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(fds, 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return false, os.NewSyscallError("poll", err)
		}
		return n > 0 && fds[0].Revents&(unix.POLLIN|unix.POLLHUP) != 0, nil
	}
}
