package test

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/handoff-go/handoff/internal/crashpoint"
	"github.com/handoff-go/handoff/internal/flock"
	"github.com/handoff-go/handoff/internal/sysx"
)

// Crash modes of the matrix.
const (
	modeExit  = "exit"  // the process SIGKILLs itself at the point
	modePause = "pause" // the process announces the point and blocks; the test SIGKILLs it from outside
)

// crashHit is one announcement of a crash point: which point, and the pid
// that reached it (from the kernel's SCM_CREDENTIALS, not from the message).
type crashHit struct {
	point crashpoint.Point
	pid   int
}

// listenNotify opens the datagram socket that crash points announce
// themselves on (HANDOFF_CRASH_NOTIFY).
func listenNotify(w *world) (path string, hits <-chan crashHit) {
	path = filepath.Join(w.dir, "n.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		w.t.Fatal(err)
	}
	if err := setPassCred(conn); err != nil {
		conn.Close()
		w.t.Fatal(err)
	}
	ch := make(chan crashHit, 16)
	var wg sync.WaitGroup
	wg.Go(func() { readHits(conn, ch) })
	w.t.Cleanup(func() { conn.Close(); wg.Wait() })
	return path, ch
}

func setPassCred(conn *net.UnixConn) error {
	rc, err := conn.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_PASSCRED, 1)
	}); err != nil {
		return err
	}
	return serr
}

func readHits(conn *net.UnixConn, ch chan<- crashHit) {
	buf, oob := make([]byte, 512), make([]byte, unix.CmsgSpace(unix.SizeofUcred))
	for {
		n, oobn, _, _, err := conn.ReadMsgUnix(buf, oob)
		if err != nil {
			return
		}
		hit := crashHit{point: crashpoint.Point(buf[:n])}
		if msgs, err := unix.ParseSocketControlMessage(oob[:oobn]); err == nil {
			for _, m := range msgs {
				if cred, err := unix.ParseUnixCredentials(&m); err == nil {
					hit.pid = int(cred.Pid)
				}
			}
		}
		select {
		case ch <- hit:
		default:
		}
	}
}

// crashEnv arms point p in the process that gets this environment.
func crashEnv(p crashpoint.Point, mode, notify string) []string {
	return []string{crashpoint.EnvCrashAt + "=" + string(p), crashpoint.EnvNotify + "=" + notify, crashpoint.EnvMode + "=" + mode}
}

// armOnce writes a wrapper that starts kvd with env the first time only:
// the supervisor restarts a crashed incumbent with the same spec, and the
// restarted incumbent must not crash again at the next swap.
func armOnce(w *world, env []string) string {
	path := filepath.Join(w.dir, "kvd-once")
	var b strings.Builder
	fmt.Fprintf(&b, "#!/bin/sh\nif mkdir %q 2>/dev/null; then\n", filepath.Join(w.dir, "armed"))
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		fmt.Fprintf(&b, "  export %s=%q\n", k, v)
	}
	fmt.Fprintf(&b, "fi\nexec %q \"$@\"\n", bin.kvd)
	if err := os.WriteFile(path, []byte(b.String()), 0o755); err != nil {
		w.t.Fatal(err)
	}
	return path
}

// killHit SIGKILLs the process that announced a crash point, after making
// sure it is one of this world's processes.
func killHit(w *world, hit crashHit) error {
	if _, ok := scanProcesses(w.dir)[hit.pid]; !ok {
		return fmt.Errorf("crash point %s announced by pid %d, which is not a process of this test", hit.point, hit.pid)
	}
	if err := syscall.Kill(hit.pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("kill pid %d held at %s: %w", hit.pid, hit.point, err)
	}
	return nil
}

// controlOwner returns the pid answering on the control socket, from the
// kernel (SO_PEERCRED).
func controlOwner(path string) (int, error) {
	c, err := net.DialTimeout("unix", path, 2*time.Second)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	cred, err := sysx.PeerCred(c.(*net.UnixConn))
	if err != nil {
		return 0, err
	}
	return int(cred.Pid), nil
}

// serving is the state a world converged to.
type serving struct {
	pid     int
	buildID string
}

// converge waits until exactly one daemon runs and it is the incumbent by
// every account: it answers on the control socket, the supervisor names
// it, it answers /stats on the HTTP listener, and it holds the data-dir
// lock (invariant 7).
func (w *world) converge() (serving, error) {
	deadline := time.Now().Add(settleWait)
	var why string
	for time.Now().Before(deadline) {
		reapOrphans()
		s, reason := w.convergedOnce()
		if reason == "" {
			return s, nil
		}
		why = reason
		time.Sleep(10 * time.Millisecond) // polling several processes' state; no single event says "settled"
	}
	return serving{}, fmt.Errorf("no single serving incumbent within %v: %s", settleWait, why)
}

func (w *world) convergedOnce() (serving, string) {
	w.noteEvents()
	owner, err := controlOwner(w.control)
	if err != nil {
		return serving{}, "control socket: " + err.Error()
	}
	if sup := w.driverIncumbent(); sup != owner {
		return serving{}, fmt.Sprintf("the supervisor names pid %d, pid %d answers the control socket", sup, owner)
	}
	holder, err := flock.Holder(w.data)
	if err != nil || holder != owner {
		return serving{}, fmt.Sprintf("lock holder %d (%v), control socket owner %d", holder, err, owner)
	}
	pid, build, err := stats(w.addr["http"])
	if err != nil || pid != owner {
		return serving{}, fmt.Sprintf("/stats answered by pid %d (%v), control socket owner %d", pid, err, owner)
	}
	if daemons := w.daemons(); len(daemons) != 1 {
		return serving{}, fmt.Sprintf("daemons alive: %v (want only %d)", daemons, owner)
	}
	if hasOpen(w.drv.pid, filepath.Join(w.data, flock.LockFileName)) {
		return serving{}, fmt.Sprintf("the supervisor pid %d has the lock file open: it could share the holder's lock", w.drv.pid)
	}
	return serving{pid: owner, buildID: build}, ""
}

// daemons lists the live processes of this world other than the current
// driver.
func (w *world) daemons() []int {
	var pids []int
	for pid := range w.processes() {
		if pid != w.drv.pid {
			pids = append(pids, pid)
		}
	}
	slices.Sort(pids)
	return pids
}

// driverIncumbent is the incumbent pid the running driver last reported.
func (w *world) driverIncumbent() int {
	pid := 0
	for _, e := range w.drv.all() {
		switch e.Event {
		case "ready":
			pid = e.Incumbent
		case "incumbent":
			pid = e.PID
		}
	}
	return pid
}

// noteEvents records every daemon pid the drivers reported.
func (w *world) noteEvents() {
	for _, d := range w.drivers {
		for _, e := range d.all() {
			switch e.Event {
			case "ready":
				w.noteDaemon(e.Incumbent)
			case "incumbent":
				w.noteDaemon(e.PID)
			case "outcome":
				w.noteDaemon(e.OldPID)
				w.noteDaemon(e.NewPID)
			}
		}
	}
}

// hasOpen reports whether process pid has the file at path open.
func hasOpen(pid int, path string) bool {
	fds, _ := filepath.Glob(fmt.Sprintf("/proc/%d/fd/*", pid))
	for _, fd := range fds {
		if target, err := os.Readlink(fd); err == nil && target == path {
			return true
		}
	}
	return false
}
