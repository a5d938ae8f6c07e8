package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// system is a service that can swap its binary under load: ours (handoff,
// in-process supervisor or the CLI) or theirs (tableflip).
type system interface {
	Name() string
	HTTPAddr() string
	RESPAddr() string // "" when the system has no RESP listener
	Swap(ctx context.Context) swapRec
	Close() error // stop gracefully and reap every process
}

// phaseDur is one phase of a swap.
type phaseDur struct {
	Name string
	D    time.Duration
}

// swapRec is one swap (ours) or upgrade (theirs).
type swapRec struct {
	Start   time.Time
	Ready   time.Duration // trigger → the new process serves (ours: Commit done; theirs: new process ready)
	OldGone time.Duration // trigger → the old process has exited
	Phases  []phaseDur
	Total   time.Duration // the supervisor's own trigger → outcome (Outcome.Total); 0 for tableflip
	OK      bool
	Err     string
	Resent  int // tableflip: SIGHUPs sent again because the first was refused
}

// window returns the swap's window relative to base.
func (r swapRec) window(base time.Time) window {
	end := max(r.OldGone, r.Ready)
	return window{from: r.Start.Sub(base), to: r.Start.Sub(base) + end}
}

// pidfd opens a pidfd for pid (-1 on failure).
func pidfd(pid int) int {
	if pid <= 0 {
		return -1
	}
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return -1
	}
	return fd
}

// waitPidfd waits until the process behind fd has exited (it may still be
// a zombie) or timeout passes; it closes fd.
func waitPidfd(fd int, timeout time.Duration) error {
	if fd < 0 {
		return errors.New("bench: no pidfd")
	}
	defer unix.Close(fd)
	deadline := time.Now().Add(timeout)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return errors.New("bench: process did not exit in time")
		}
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, int(left/time.Millisecond)+1)
		if err != nil && !errors.Is(err, unix.EINTR) {
			return os.NewSyscallError("poll", err)
		}
		if n > 0 {
			return nil
		}
	}
}

// waitHealthy polls GET /healthz until it answers 200 (bounded).
func waitHealthy(addr string, timeout time.Duration) error {
	c := oneShotClient(time.Second)
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		resp, err := c.Get("http://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	return fmt.Errorf("bench: %s not healthy within %v", addr, timeout)
}

func closeFD(fd int) { _ = unix.Close(fd) }

// oneShotClient is an HTTP client for the harness's own requests (health,
// stats, metrics): no keep-alive, so it leaves no connection open in the
// process it measures.
func oneShotClient(timeout time.Duration) *http.Client {
	return &http.Client{Timeout: timeout, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
}
