package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// peer is the tableflip HTTP server. Each upgrade makes the current process
// spawn its successor, which outlives it; the harness is a child
// subreaper, so every generation ends up as its child and is reaped here.
type peer struct {
	bin     string
	dir     string
	pidFile string
	addr    string
	first   *exec.Cmd
	cur     int
	logf    *os.File
}

// becomeSubreaper makes orphaned descendants (tableflip's generations)
// children of this process, so that they can be reaped.
func becomeSubreaper() error {
	return os.NewSyscallError("prctl", unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0))
}

// freeAddr returns a loopback address that was free a moment ago.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func startPeer(bin, base string) (*peer, error) {
	dir, err := os.MkdirTemp(base, "tableflip-")
	if err != nil {
		return nil, err
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	p := &peer{bin: bin, dir: dir, pidFile: filepath.Join(dir, "tfpeer.pid"), addr: addr}
	if p.logf, err = os.Create(filepath.Join(dir, "log")); err != nil {
		return nil, err
	}
	p.first = exec.Command(bin, "-listen", addr, "-pid-file", p.pidFile)
	p.first.Dir = dir
	p.first.Stdout, p.first.Stderr = p.logf, p.logf
	if err := p.first.Start(); err != nil {
		return nil, err
	}
	p.cur = p.first.Process.Pid
	if _, err := p.waitPidFile(0, 10*time.Second); err != nil {
		p.Close()
		return nil, err
	}
	if err := waitHealthy(addr, 10*time.Second); err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

func (p *peer) Name() string     { return "tableflip" }
func (p *peer) HTTPAddr() string { return p.addr }
func (p *peer) RESPAddr() string { return "" }

// readPid reads the pid file (0 when absent or partial).
func (p *peer) readPid() int {
	b, err := os.ReadFile(p.pidFile)
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// waitPidFile waits until the pid file names a process other than not.
func (p *peer) waitPidFile(not int, timeout time.Duration) (int, error) {
	pid, _, err := p.waitReady(not, 1<<62, timeout)
	return pid, err
}

// Swap sends SIGHUP and times the new process's readiness (tableflip writes
// the pid file in Ready) and the old process's exit. A SIGHUP that the
// process refuses ("Upgrade failed" in its log: it has not yet seen its
// own parent exit) is sent again, and the swap is timed from the SIGHUP
// that was taken.
func (p *peer) Swap(ctx context.Context) swapRec {
	old := p.cur
	pfd := pidfd(old)
	var rec swapRec
	var newPid int
	var err error
	for attempt := 0; attempt < 20; attempt++ {
		off := fileSize(p.logf.Name())
		rec.Start = time.Now()
		if err = syscall.Kill(old, syscall.SIGHUP); err != nil {
			break
		}
		var refused bool
		newPid, refused, err = p.waitReady(old, off, 10*time.Second)
		if !refused {
			break
		}
		rec.Resent++
		time.Sleep(time.Millisecond)
	}
	rec.Ready = time.Since(rec.Start)
	if err != nil {
		rec.Err = err.Error()
		closeFD(pfd)
		return rec
	}
	rec.Phases = []phaseDur{{Name: "ready", D: rec.Ready}}
	if werr := waitPidfd(pfd, 35*time.Second); werr != nil {
		rec.Err = fmt.Sprintf("old process %d: %v", old, werr)
		return rec
	}
	rec.OldGone = time.Since(rec.Start)
	rec.Phases = append(rec.Phases, phaseDur{Name: "old gone", D: rec.OldGone - rec.Ready})
	p.reap(old)
	p.cur = newPid
	rec.OK = true
	return rec
}

// waitReady waits until the pid file names a process other than old, or
// the log shows (after offset off) that the upgrade was refused.
func (p *peer) waitReady(old int, off int64, timeout time.Duration) (pid int, refused bool, err error) {
	deadline := time.Now().Add(timeout)
	for i := 0; time.Now().Before(deadline); i++ {
		if pid := p.readPid(); pid != 0 && pid != old {
			return pid, false, nil
		}
		if i%20 == 19 && p.refusedSince(off) {
			return 0, true, nil
		}
		time.Sleep(100 * time.Microsecond)
	}
	return 0, false, fmt.Errorf("bench: tableflip: no new ready process within %v", timeout)
}

func (p *peer) refusedSince(off int64) bool {
	f, err := os.Open(p.logf.Name())
	if err != nil {
		return false
	}
	defer f.Close()
	b, err := io.ReadAll(io.NewSectionReader(f, off, 1<<20))
	return err == nil && strings.Contains(string(b), "Upgrade failed")
}

// reap collects an exited generation: the first is our own child, the later
// ones were reparented to us.
func (p *peer) reap(pid int) {
	if p.first != nil && pid == p.first.Process.Pid {
		_ = p.first.Wait()
		p.first = nil
		return
	}
	for {
		_, err := unix.Wait4(pid, nil, 0, nil)
		if !errors.Is(err, unix.EINTR) {
			return
		}
	}
}

// Close terminates the current generation and reaps it.
func (p *peer) Close() error {
	defer p.logf.Close()
	pfd := pidfd(p.cur)
	if err := syscall.Kill(p.cur, syscall.SIGTERM); err != nil {
		closeFD(pfd)
		return err
	}
	if err := waitPidfd(pfd, 10*time.Second); err != nil {
		_ = syscall.Kill(p.cur, syscall.SIGKILL)
	}
	p.reap(p.cur)
	return nil
}
