package supervisor

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/handoff-go/handoff/internal/peer"
	"github.com/handoff-go/handoff/internal/wire"
)

// TestProtocol_successorViolationRollsBack: a successor that breaks the
// protocol (DESIGN section 5: version negotiation, ids, order, frame size,
// garbage) or goes silent (section 2 "Liveness") is aborted, stopped and
// reaped; the incumbent resumes, keeps the lock and can still be handed off.
func TestProtocol_successorViolationRollsBack(t *testing.T) {
	t.Parallel()
	cases := []struct {
		mode   string
		reason string
		is     error // the error must match this sentinel
		sealed bool  // the incumbent had sealed (released the lock) before
	}{
		{mode: "version", reason: "version-mismatch", is: ErrVersionMismatch},
		{mode: "wrong-id", reason: "protocol", is: wire.ErrWrongID, sealed: true},
		{mode: "out-of-order", reason: "protocol", is: ErrProtocol, sealed: true},
		{mode: "big-frame", reason: "protocol", is: wire.ErrFrameTooLarge, sealed: true},
		{mode: "garbage", reason: "protocol", is: ErrProtocol, sealed: true},
		// A successor that goes silent after Begin is declared dead after
		// 10 s, long before the 60 s deadline.
		{mode: "silent", reason: "timeout", is: wire.ErrPeerTimeout, sealed: true},
	}
	for _, tc := range cases {
		t.Run(tc.mode, func(t *testing.T) {
			t.Parallel()
			e := newTestEnv(t, envOptions{})
			s := e.newSupervisor()
			o := e.coldStart(s, "old")
			e.mustPut("before", "x")
			out, err := e.handoff(s, e.rawSuccessorSpec(tc.mode))
			e.expectRolledBack(s, out, err, tc.reason, o)
			if !errors.Is(err, tc.is) {
				t.Errorf("error %v does not match %v", err, tc.is)
			}
			if tc.mode == "silent" {
				if !strings.Contains(out.Cause, "silent") || out.Total >= DefaultDeadline {
					t.Errorf("silent successor: cause %q after %v; want the silence rule, not the %v deadline",
						out.Cause, out.Total, DefaultDeadline)
				}
			}
			sealedAndRetook := e.logHas(fmt.Sprintf("pid=%d", o), "handoff.resume", "lock retaken after seal")
			switch {
			case tc.sealed && !sealedAndRetook:
				t.Error("the incumbent did not seal and take its lock back: the violation came at another step")
			case !tc.sealed && (sealedAndRetook || e.holders.sawFree()):
				t.Errorf("the incumbent released its lock although it never sealed (samples %v)", e.holders.raw())
			}
			n := e.mustCommit(s, e.daemonSpec("next"))
			e.expectHolders(o, n)
			e.checkAcked()
		})
	}
}

// TestProtocol_incumbentRejectsBadSupervisor drives the incumbent's control
// socket by hand with protocol violations, before and during a swap. Each
// session is closed; a drained incumbent resumes at once; nothing moves the
// lock; the incumbent serves writes after each, and a real handoff commits
// at the end.
func TestProtocol_incumbentRejectsBadSupervisor(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, envOptions{})
	s := e.newSupervisor()
	o := e.coldStart(s, "old")
	for i, tc := range badSupervisorCases() {
		t.Run(tc.name, func(t *testing.T) {
			resumes := e.logCount("testd.resumed", fmt.Sprintf("pid=%d", o))
			f := dialFake(t, e.ctl)
			if f.hello.PID != int32(o) || f.hello.Role != wire.RoleIncumbent {
				t.Fatalf("control socket answered as %v pid %d, want the incumbent %d", f.hello.Role, f.hello.PID, o)
			}
			tc.run(f)
			f.expectHangUp()
			if !e.logHas(fmt.Sprintf("pid=%d", o), tc.logs) {
				t.Errorf("the incumbent's log does not say %q", tc.logs)
			}
			if tc.drained {
				e.waitLogCount(resumes+1, "testd.resumed", fmt.Sprintf("pid=%d", o))
			}
			e.mustPut(fmt.Sprintf("after-%d", i), "served")
			e.expectServedBy(o)
		})
	}
	e.expectHolders(o)
	if e.holders.sawFree() {
		t.Error("the lock was released although no swap got past Drain")
	}
	n := e.mustCommit(s, e.daemonSpec("next"))
	e.expectHolders(o, n)
	e.checkAcked()
}

// badSupervisorCase is one hand-driven violation of the protocol by a
// supervisor, and what the incumbent must say about it.
type badSupervisorCase struct {
	name    string
	run     func(f *fakeSupervisor)
	logs    string // what the incumbent's log must say about it
	drained bool   // the incumbent had drained, so it must resume
}

func badSupervisorCases() []badSupervisorCase {
	return []badSupervisorCase{
		{name: "version mismatch", logs: "outside", run: func(f *fakeSupervisor) { f.ack(wire.MaxVersion + 5) }},
		{name: "wrong id", logs: "wrong handoff id", run: func(f *fakeSupervisor) {
			f.ack(wire.MaxVersion)
			f.sendWithID(&wire.PrepareHandoff{DeadlineMillis: 60000, DrainGraceMillis: 5000})
		}},
		{name: "wrong id mid-swap", logs: "wrong handoff id", drained: true, run: func(f *fakeSupervisor) {
			f.ack(wire.MaxVersion)
			f.prepare(time.Minute, 5*time.Second)
			f.sendWithID(&wire.SealRequest{})
		}},
		{name: "out of order", logs: "unexpected message outside a swap", run: func(f *fakeSupervisor) {
			f.ack(wire.MaxVersion)
			f.send(&wire.SealRequest{})
		}},
		{name: "out of order mid-swap", logs: "received Begin", drained: true, run: func(f *fakeSupervisor) {
			f.ack(wire.MaxVersion)
			f.prepare(time.Minute, 5*time.Second)
			f.send(&wire.Begin{})
		}},
		{name: "frame over 1 MiB", logs: "frame too large", run: func(f *fakeSupervisor) { f.raw(oversizedHeader()) }},
		{name: "frame over 1 MiB mid-swap", logs: "frame too large", drained: true, run: func(f *fakeSupervisor) {
			f.ack(wire.MaxVersion)
			f.prepare(time.Minute, 5*time.Second)
			f.raw(oversizedHeader())
		}},
		{name: "garbage bytes", logs: "malformed", run: func(f *fakeSupervisor) { f.raw(garbageBytes()) }},
	}
}

// TestProtocol_silentSupervisorDeclaredDead: a supervisor that prepares a
// swap and then sends nothing (not even heartbeats) is declared dead after
// 10 s; the drained incumbent resumes by itself (DESIGN "If S dies
// mid-swap").
func TestProtocol_silentSupervisorDeclaredDead(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, envOptions{})
	s := e.newSupervisor()
	o := e.coldStart(s, "old")
	e.mustPut("before", "x")
	f := dialFake(t, e.ctl)
	f.ack(wire.MaxVersion)
	silentSince := time.Now() // PrepareHandoff is the last thing it sends
	f.prepare(time.Minute, 5*time.Second)
	f.expectHangUp()
	if waited := time.Since(silentSince); waited < peer.Silence {
		t.Errorf("the incumbent gave up on its supervisor after %v of silence, before the %v limit", waited, peer.Silence)
	}
	if !e.logHas(fmt.Sprintf("pid=%d", o), "handoff.resume", "silent") {
		t.Error("the incumbent's log does not say its peer went silent")
	}
	e.mustPut("after", "y")
	e.expectServedBy(o)
	e.expectHolders(o)
	n := e.mustCommit(s, e.daemonSpec("next"))
	e.expectHolders(o, n)
	e.checkAcked()
}

// TestControlSocket_otherUIDRejected: the control socket is 0600 (DESIGN
// section 6), so a client of another uid cannot connect; and where the file
// mode lets it in, the incumbent still refuses it from SO_PEERCRED without
// a word. The incumbent serves on and can be handed off.
func TestControlSocket_otherUIDRejected(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a client under another uid (setuid child); run the tests as root to cover this")
	}
	e := newTestEnv(t, envOptions{})
	s := e.newSupervisor()
	o := e.coldStart(s, "old")
	fi, err := os.Stat(e.ctl)
	if err != nil || fi.Mode().Perm() != 0o600 || fi.Mode().Type() != os.ModeSocket {
		t.Fatalf("control socket %s: %v, %v; want a 0600 socket", e.ctl, fi.Mode(), err)
	}
	client := filepath.Join(e.dir, "client")
	copyExecutable(t, e.self, client)
	if err := os.Chmod(e.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if got := e.runForeignClient(client); !strings.HasPrefix(got, "dial-error") || !strings.Contains(got, "permission denied") {
		t.Errorf("client of uid 65534 against the 0600 socket: %q, want permission denied", got)
	}
	if err := os.Chmod(e.ctl, 0o666); err != nil {
		t.Fatal(err)
	}
	if got := e.runForeignClient(client); !strings.HasPrefix(got, "closed") {
		t.Errorf("client of uid 65534 through a 0666 socket: %q, want the incumbent to hang up without Hello", got)
	}
	if !e.logHas(fmt.Sprintf("pid=%d", o), "handoff.reject", "uid 65534") {
		t.Error("the incumbent's log does not name the rejected uid")
	}
	e.mustPut("after", "y")
	n := e.mustCommit(s, e.daemonSpec("next"))
	e.expectHolders(o, n)
	e.checkAcked()
}

func (e *testEnv) runForeignClient(bin string) string {
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), useRole("foreign-client"), envControl+"="+e.ctl, envTag+"="+e.tag)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	cmd.Stderr = e.logFile
	out, err := cmd.Output()
	if err != nil {
		e.t.Fatalf("foreign client: %v", err)
	}
	return strings.TrimSpace(string(out))
}

func copyExecutable(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, data, 0o755); err != nil {
		t.Fatal(err)
	}
}
