package supervisor

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/handoff-go/handoff/internal/sysx"
)

// The five sequences of issue 3. Each breaks a naive implementation of the
// protocol, and each is made deterministic by holding a process at an exact
// step (a hold point of the test daemon or of the supervisor).

// TestSequence1_noReadFromOldStateAfterCommit: after N committed and
// acknowledged a write, no read is answered by O from its old state
// (invariant 3; DESIGN step 5 "O answers no request after it has sealed").
// O is held alive after its Commit; a keep-alive connection it accepted
// before the swap then asks for the key N just overwrote: it must get no
// answer at all, while a new connection reads N's value.
func TestSequence1_noReadFromOldStateAfterCommit(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, envOptions{})
	s := e.newSupervisor()
	o := e.coldStart(s, "old", envHold+"=exit")
	e.mustPut("k", "old")
	old := dialKeepAlive(t, e.addr)
	if status, body := old.get(t, "k"); status != http.StatusOK || body != "old" {
		t.Fatalf("keep-alive GET before the swap: %d %q", status, body)
	}
	n := e.mustCommit(s, e.daemonSpec("new"))
	exit := e.events.wait(t, "exit", o) // O has committed away and is held alive
	e.mustPut("k", "new")
	e.expectServedBy(n)
	if status, body, err := old.tryGet("k"); err == nil {
		t.Errorf("the sealed incumbent %d answered %d %q on its old connection after the commit", o, status, body)
	}
	if status, body, err := e.client.get("k"); err != nil || status != http.StatusOK || body != "new" {
		t.Errorf("GET k from the new incumbent: %d %q %v; want \"new\"", status, body, err)
	}
	if !sysx.Alive(o) {
		t.Error("the old incumbent was not alive during the check: the test proved nothing")
	}
	exit.release()
	e.waitGone(o)
	e.expectHolders(o, n)
	e.checkAcked()
}

// keepAlive is a raw HTTP/1.1 connection reused across requests.
type keepAlive struct {
	c  net.Conn
	br *bufio.Reader
}

func dialKeepAlive(t *testing.T, addr string) *keepAlive {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &keepAlive{c: c, br: bufio.NewReader(c)}
}

func (k *keepAlive) get(t *testing.T, key string) (int, string) {
	t.Helper()
	status, body, err := k.tryGet(key)
	if err != nil {
		t.Fatalf("keep-alive GET %s: %v", key, err)
	}
	return status, body
}

func (k *keepAlive) tryGet(key string) (int, string, error) {
	_ = k.c.SetDeadline(time.Now().Add(waitLimit))
	if _, err := fmt.Fprintf(k.c, "GET /kv/%s HTTP/1.1\r\nHost: kv\r\n\r\n", key); err != nil {
		return 0, "", err
	}
	resp, err := http.ReadResponse(k.br, nil)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// TestSequence2_supervisorDiesWhileSuccessorOpens: S dies while N holds the
// lock and is still opening its state (held there for seconds). O must not
// exit: a held lock proves nothing, and O waits for it with no upper bound;
// N exits on EOF once it goes on; O then takes the lock back, re-checks the
// path and resumes; the listening socket never loses its last holder, so a
// client connecting throughout is never refused (invariant 4).
func TestSequence2_supervisorDiesWhileSuccessorOpens(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, envOptions{noListener: true})
	child, o := e.startSupervisorChild(supChildOptions{
		oEnv: []string{envBuild + "=old"}, nEnv: []string{envBuild + "=new", envHold + "=open"}})
	e.mustPut("before", "x")
	p := startProber(e.addr)
	child.start()
	opening := e.events.wait(t, "open", 0)
	n := opening.PID
	e.expectHolderNow(n)
	child.kill()
	// O saw EOF and waits for the lock N holds; it logs each second.
	e.waitLogCount(3, fmt.Sprintf("pid=%d", o), "waiting_for_lock=true")
	if !sysx.Alive(o) || !sysx.Alive(n) {
		t.Fatalf("while N opens: O alive %v, N alive %v; want both", sysx.Alive(o), sysx.Alive(n))
	}
	e.expectHolderNow(n)
	opening.release()
	e.waitGone(n)
	e.events.wait(t, "resumed", o)
	e.mustPut("after", "y")
	e.expectServedBy(o)
	e.expectHolders(o, n, o)
	e.expectNeverRefused(p)
	adoptAndCommit(t, e, e.newSupervisor(), o)
	e.checkAcked()
}

// TestSequence3_sameIncumbentResumesAfterDeadline: S aborts at the Ready
// deadline while N, holding the lock, dies slowly (it ignores SIGTERM, so
// it goes only at S's SIGKILL two seconds later), and O's own read deadline
// (one second of wire slack after S's) expires meanwhile. The same O (same
// pid) resumes with its listener and its state once N is gone.
func TestSequence3_sameIncumbentResumesAfterDeadline(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, envOptions{})
	s := e.newSupervisor()
	o := e.coldStart(s, "old")
	e.mustPut("before", "x")
	spec := e.daemonSpec("new", envFail+"=slow-term")
	spec.Deadline = 3 * time.Second
	out, err := e.handoffSeenOpening(s, spec, false) // N dies held in "open"
	e.expectRolledBack(s, out, err, "timeout", o)
	if !e.logHas(fmt.Sprintf("pid=%d", o), "handoff.resume", "sealed=true", "phase budget exceeded") {
		t.Error("O did not give up on its own read deadline: the sequence did not happen as designed")
	}
	if e.logHas(fmt.Sprintf("pid=%d", out.NewPID), "testd.signal") {
		t.Error("N reacted to SIGTERM: it did not die slowly")
	}
	e.expectHolders(o, out.NewPID, o)
	if status, body, err := e.client.get("before"); err != nil || status != http.StatusOK || body != "x" {
		t.Errorf("O's state after resuming: GET before = %d %q %v", status, body, err)
	}
	e.checkAcked()
}

// TestSequence4_orphanedSuccessorNeverTakesLock: S dies after Begin, while
// N is held before taking the lock; O recovers. A restarted S removes the
// orphan before it adopts O (DESIGN "S on restart first removes orphans"),
// so when the orphan would wake up, during the next swap with the lock
// free, it is gone; the next swap commits.
func TestSequence4_orphanedSuccessorNeverTakesLock(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, envOptions{noListener: true})
	child, o := e.startSupervisorChild(supChildOptions{
		oEnv: []string{envBuild + "=old"}, nEnv: []string{envBuild + "=orphan", envHold + "=begun"}})
	e.mustPut("before", "x")
	child.start()
	orphan := e.events.wait(t, "begun", 0)
	child.kill()
	e.events.wait(t, "resumed", o)
	if !sysx.Alive(orphan.PID) {
		t.Fatal("the orphan died on its own: the test proves nothing")
	}
	s := e.newSupervisor()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if adopted, err := s.ResumeFromJournal(ctx, e.daemonSpec("adopted")); err != nil || !adopted {
		t.Fatalf("ResumeFromJournal: %v, %v", adopted, err)
	}
	if sysx.Alive(orphan.PID) {
		t.Fatalf("orphaned successor %d still alive after ResumeFromJournal", orphan.PID)
	}
	next := make(chan Outcome, 1)
	go func() {
		out, _ := e.handoff(s, e.daemonSpec("new", envHold+"=begun"))
		next <- out
	}()
	n := e.events.wait(t, "begun", 0) // O sealed, the lock is free: the orphan's moment
	orphan.release()
	if now := e.holders.current(); now != 0 {
		t.Errorf("lock held by %d while the swap waits for N to take it", now)
	}
	n.release()
	out := <-next
	if !out.Committed || out.NewPID != n.PID {
		t.Fatalf("next swap: %+v", out)
	}
	e.waitGone(o)
	e.expectHolders(o, n.PID)
	e.checkAcked()
}

// TestSequence5_committedSwapStaysCommitted: an old incumbent O1 handles
// the end of its session late and must never come back. O1 is frozen
// (SIGSTOP) when N1 is Ready, and its session ends without Commit (the
// supervisor's end is shut down there, as when S dies between Commit to N
// and Commit to O). The swap commits to N1. Then, before O1 wakes up and
// handles its EOF:
//   - N1 hands off to N2, which is held before taking the free lock: O1
//     must see the control socket path taken over and exit without the lock;
//     the later swap commits.
//   - or N1 is stopped for good (its graceful stop removes its socket path
//     and frees the lock): O1 must still exit, since the path no longer
//     names the socket it bound, and never take the lock or serve.
func TestSequence5_committedSwapStaysCommitted(t *testing.T) {
	t.Parallel()
	t.Run("after a later swap", func(t *testing.T) {
		t.Parallel()
		e := newTestEnv(t, envOptions{})
		s, o1, n1 := commitAwayFromFrozen(t, e)
		next := make(chan Outcome, 1)
		go func() {
			out, _ := e.handoff(s, e.daemonSpec("gen3", envHold+"=begun"))
			next <- out
		}()
		n2 := e.events.wait(t, "begun", 0) // N1 sealed and released the lock
		wakeLate(t, e, o1)
		n2.release()
		out := <-next
		if !out.Committed || out.NewPID != n2.PID {
			t.Fatalf("later swap: %+v", out)
		}
		e.mustPut("after", "z")
		e.expectServedBy(n2.PID)
		e.expectHolders(o1, n1, n2.PID)
		e.checkAcked()
	})
	t.Run("after the successor stopped", func(t *testing.T) {
		t.Parallel()
		e := newTestEnv(t, envOptions{})
		_, o1, n1 := commitAwayFromFrozen(t, e)
		e.checkAcked()
		_ = syscall.Kill(n1, syscall.SIGTERM) // graceful stop: seal, unlink its path, unlock
		e.waitGone(n1)
		if _, err := os.Lstat(e.ctl); !os.IsNotExist(err) {
			t.Fatalf("control socket path after N1's graceful stop: %v; want it removed", err)
		}
		wakeLate(t, e, o1)
		if got := e.holders.sequence(); !slices.Equal(got, []int{o1, n1}) {
			t.Errorf("data-dir lock holders were %v, want [%d %d]: O1 came back", got, o1, n1)
		}
	})
}

// commitAwayFromFrozen cold-starts O1 and commits a swap to N1 while O1 is
// frozen and its session cut before Commit. O1 stays alive, sealed, with
// the EOF unread.
func commitAwayFromFrozen(t *testing.T, e *testEnv) (s *Supervisor, o1, n1 int) {
	t.Helper()
	s = e.newSupervisor(WithExitGrace(5 * time.Minute))
	o1 = e.coldStart(s, "gen1")
	e.mustPut("before", "x")
	spec := e.daemonSpec("gen2")
	spec.OnEvent = func(p Progress) {
		e.onEvent(p)
		if p.Step == "ready" {
			_ = syscall.Kill(o1, syscall.SIGSTOP)
			if err := shutdownConnTo(o1); err != nil {
				t.Errorf("cut the supervisor's session with O1: %v", err)
			}
		}
	}
	n1 = e.mustCommit(s, spec)
	if !sysx.Alive(o1) {
		t.Fatal("O1 exited although it never received Commit")
	}
	e.mustPut("n1", "y")
	return s, o1, n1
}

// wakeLate lets the frozen O1 handle its EOF now, and asserts it exits
// having recognised the commit, without taking the lock or resuming.
func wakeLate(t *testing.T, e *testEnv, o1 int) {
	t.Helper()
	_ = syscall.Kill(o1, syscall.SIGCONT)
	e.waitGone(o1)
	if now := e.holders.current(); now != 0 {
		t.Errorf("lock held by %d after O1 handled its late EOF, want free", now)
	}
	if !e.logHas(fmt.Sprintf("pid=%d", o1), "handoff.commit", "control socket path taken over") {
		t.Error("O1 did not recognise the commit mark")
	}
	if e.logHas(fmt.Sprintf("pid=%d", o1), "testd.resumed") {
		t.Error("O1 resumed serving after a committed swap")
	}
}

// shutdownConnTo finds this process's connected Unix socket whose peer is
// pid (the supervisor's control session with it) and shuts it down, so the
// peer reads EOF and nothing more we send reaches it.
func shutdownConnTo(pid int) error {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return err
	}
	for _, ent := range ents {
		fd, err := strconv.Atoi(ent.Name())
		if err != nil {
			continue
		}
		target, err := os.Readlink("/proc/self/fd/" + ent.Name())
		if err != nil || !strings.HasPrefix(target, "socket:") {
			continue
		}
		cred, err := unix.GetsockoptUcred(fd, unix.SOL_SOCKET, unix.SO_PEERCRED)
		if err != nil || int(cred.Pid) != pid {
			continue
		}
		if dom, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_DOMAIN); err != nil || dom != unix.AF_UNIX {
			continue
		}
		return unix.Shutdown(fd, unix.SHUT_RDWR)
	}
	return fmt.Errorf("no connection to pid %d", pid)
}
