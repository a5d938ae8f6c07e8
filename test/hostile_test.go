package test

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/handoff-go/handoff/internal/flock"
	"github.com/handoff-go/handoff/internal/wire"
)

// sessionCap is the incumbent's limit of concurrent control connections
// (maxSessions in incumbent.go): beyond it, the oldest connection that has
// not completed its handshake is evicted.
const sessionCap = 16

// closeWait bounds how long the incumbent may take to drop a peer. A peer
// that breaks the protocol is dropped at once; a silent one after the
// protocol's 10 s silence limit. Either way the log says which.
const closeWait = 40 * time.Second

// hostile is one supervised kvd under load, attacked on its control socket.
type hostile struct {
	t   *testing.T
	w   *world
	ld  *load
	lw  *lockWatch
	pid int // the incumbent under attack
}

// startHostile starts kvd under the supervisor driver with clients on
// both listeners. Every TestHostile_* runs in parallel with the others.
func startHostile(t *testing.T) *hostile {
	t.Parallel()
	w := newWorld(t, t.Name())
	w.start()
	s, err := w.converge()
	if err != nil {
		t.Fatal(err)
	}
	lw, stop := watchLock(w.data)
	t.Cleanup(stop)
	ld := startLoad(w.addr["http"], w.addr["resp"])
	t.Cleanup(ld.stop)
	h := &hostile{t: t, w: w, ld: ld, lw: lw, pid: s.pid}
	h.serving("at start")
	return h
}

// serving checks that the same incumbent still owns the control socket,
// answers a well-behaved control client, and that both listeners
// acknowledge writes now.
func (h *hostile) serving(when string) {
	h.t.Helper()
	h.clientsServed(when)
	if owner, err := controlOwner(h.w.control); err != nil || owner != h.pid {
		h.t.Fatalf("%s: control socket answered by pid %d (%v), want the incumbent %d", when, owner, err, h.pid)
	}
	if s, err := snapshot(h.w.control); err != nil || int(s.PID) != h.pid {
		h.t.Fatalf("%s: a well-behaved control client got no Snapshot from pid %d: %v", when, h.pid, err)
	}
}

// clientsServed checks that both listeners acknowledge writes now and that
// the incumbent under attack still holds the data-dir lock.
func (h *hostile) clientsServed(when string) {
	h.t.Helper()
	if err := h.ld.waitAcked(5, settleWait); err != nil {
		h.t.Fatalf("%s: the incumbent does not serve its clients: %v\n%s", when, err, h.w.logTail())
	}
	if holder, err := flock.Holder(h.w.data); err != nil || holder != h.pid {
		h.t.Fatalf("%s: data-dir lock held by pid %d (%v), want the incumbent %d", when, holder, err, h.pid)
	}
}

// logged waits until the world's log (the incumbent's included) shows
// want: how the tests learn why the incumbent dropped a connection.
func (h *hostile) logged(want string) {
	h.t.Helper()
	if err := h.w.logged(closeWait, want); err != nil {
		h.t.Error(err)
	}
}

// finish checks that the incumbent can still be handed off (a swap
// commits) and then invariants 1, 3 and 4 over the whole test.
func (h *hostile) finish() {
	h.t.Helper()
	h.serving("before the final swap")
	out, err := h.w.swap(h.w.kvdSpec("gen1"))
	if err != nil || !out.Committed {
		h.t.Fatalf("the swap after the attack did not commit: %v %s %s\n%s", err, out.Reason, out.Cause, h.w.logTail())
	}
	s, err := h.w.converge()
	if err != nil || s.buildID != "gen1" {
		h.t.Fatalf("after the swap: %v (serving %+v)", err, s)
	}
	if err := h.ld.waitAcked(5, settleWait); err != nil {
		h.t.Fatal(err)
	}
	h.ld.stop()
	var res rowResult
	checkLoad(&res, h.ld, expectation{})
	checkLock(&res, h.lw)
	for _, p := range res.problems {
		h.t.Error(p)
	}
	h.t.Logf("clients: %s", h.ld.summary())
}

// expectDropped dials, lets do run, and expects the incumbent to close the
// connection and log want.
func (h *hostile) expectDropped(want string, do func(p *rawPeer) error) {
	h.t.Helper()
	p, err := dialRaw(h.w.control)
	if err != nil {
		h.t.Fatal(err)
	}
	defer p.close()
	if err := do(p); err != nil {
		h.t.Fatal(err)
	}
	if _, err := p.expectClosed(closeWait); err != nil {
		h.t.Fatal(err)
	}
	h.logged(want)
}

func frameHeader(length uint32, version uint16) []byte {
	b := binary.LittleEndian.AppendUint32(nil, length)
	return binary.LittleEndian.AppendUint16(b, version)
}

func garbage(n int) []byte {
	r := rand.New(rand.NewPCG(7, 11))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// TestHostile_Garbage: bytes that are not the protocol, before and after
// the Hello, make the incumbent drop the connection (DESIGN section 5: a
// decoder error closes the session); it keeps serving and can be handed off.
func TestHostile_Garbage(t *testing.T) {
	h := startHostile(t)
	// A length that fits, then bytes that are not CBOR.
	notCBOR := append(frameHeader(66, wire.HelloFrameVersion), garbage(64)...)
	h.expectDropped("malformed message", func(p *rawPeer) error {
		if _, err := p.hello(); err != nil {
			return err
		}
		return p.write(notCBOR)
	})
	// Random bytes at once, without reading the Hello.
	h.expectDropped("handoff.session", func(p *rawPeer) error { return p.write(garbage(4096)) })
	// A well-formed CBOR map naming an unknown message type: {"type": 250}.
	unknown := append(frameHeader(2+8, wire.HelloFrameVersion), 0xa1, 0x64, 't', 'y', 'p', 'e', 0x18, 0xfa)
	h.expectDropped("unknown message type", func(p *rawPeer) error {
		if _, err := p.hello(); err != nil {
			return err
		}
		return p.write(unknown)
	})
	h.serving("after garbage")
	h.finish()
}

// TestHostile_TruncatedFrame: a peer that hangs up inside a frame (header
// or payload) is dropped with ErrTruncated.
func TestHostile_TruncatedFrame(t *testing.T) {
	h := startHostile(t)
	for _, partial := range [][]byte{
		frameHeader(100, wire.HelloFrameVersion)[:3],                         // inside the header
		append(frameHeader(100, wire.HelloFrameVersion), garbage(10)...),     // inside the payload
		append(frameHeader(1<<20, wire.HelloFrameVersion), garbage(4096)...), // inside a large payload
	} {
		h.expectDropped("truncated frame", func(p *rawPeer) error {
			if _, err := p.hello(); err != nil {
				return err
			}
			if err := p.write(partial); err != nil {
				return err
			}
			return p.c.CloseWrite()
		})
	}
	h.serving("after truncated frames")
	h.finish()
}

// TestHostile_OversizedLength: a length prefix over 1 MiB is rejected
// before anything is allocated or read, and the session closes.
func TestHostile_OversizedLength(t *testing.T) {
	h := startHostile(t)
	for _, length := range []uint32{wire.MaxFrameSize + 1, 64 << 20, 0xFFFFFFFF} {
		h.expectDropped("frame too large", func(p *rawPeer) error {
			if _, err := p.hello(); err != nil {
				return err
			}
			return p.write(frameHeader(length, wire.HelloFrameVersion))
		})
	}
	h.serving("after oversized frames")
	h.finish()
}

// TestHostile_WrongOrder: valid frames where the session does not allow
// them are rejected; none of them makes the incumbent drain, exit or stop
// serving, and a fake supervisor that breaks off a swap leaves an
// incumbent that resumes by itself (DESIGN section 2, recovery rule).
func TestHostile_WrongOrder(t *testing.T) {
	h := startHostile(t)
	id, _ := wire.NewID()
	h.expectDropped("message out of order", func(p *rawPeer) error {
		if _, err := p.hello(); err != nil {
			return err
		}
		return p.send(wire.HelloFrameVersion, id, &wire.SealRequest{}) // before HelloAck
	})
	h.expectDropped("message out of order", func(p *rawPeer) error {
		if _, err := p.handshake(wire.RoleSupervisor); err != nil {
			return err
		}
		return p.send(wire.HelloFrameVersion, p.id, &wire.HelloAck{Version: 1, Role: wire.RoleSupervisor}) // a second handshake
	})
	h.expectDropped("unexpected message outside a swap", func(p *rawPeer) error {
		if _, err := p.handshake(wire.RoleSupervisor); err != nil {
			return err
		}
		return p.sendSession(&wire.Commit{}) // Commit with no swap: the incumbent must not exit
	})
	h.expectDropped("PrepareHandoff from a non-supervisor peer", func(p *rawPeer) error {
		if _, err := p.handshake(wire.RoleClient); err != nil {
			return err
		}
		return p.sendSession(&wire.PrepareHandoff{SuccessorPID: 1, DeadlineMillis: 10000, DrainGraceMillis: 5000})
	})
	h.serving("after out-of-order frames")
	h.absurdBudgets()
	h.serving("after a PrepareHandoff with absurd budgets")
	h.fakeSwap(false)
	h.serving("after Commit instead of SealRequest")
	h.fakeSwap(true)
	h.serving("after a fake supervisor vanished after SealComplete")
	h.finish()
}

// absurdBudgets plays a supervisor whose PrepareHandoff carries budgets
// that overflow a time.Duration, then hangs up: whatever the incumbent
// makes of them (an expired drain, a huge one), it must answer, and resume
// when the peer is gone.
func (h *hostile) absurdBudgets() {
	h.t.Helper()
	p, err := dialRaw(h.w.control)
	if err != nil {
		h.t.Fatal(err)
	}
	defer p.close()
	if _, err := p.handshake(wire.RoleSupervisor); err != nil {
		h.t.Fatal(err)
	}
	if err := p.sendSession(&wire.PrepareHandoff{SuccessorPID: 1, DeadlineMillis: math.MaxUint64, DrainGraceMillis: math.MaxUint64}); err != nil {
		h.t.Fatal(err)
	}
	m, err := p.recvSkippingHeartbeats(closeWait)
	if err != nil || (m.Type() != wire.TypeDrained && m.Type() != wire.TypeDrainFailed) {
		h.t.Fatalf("PrepareHandoff with absurd budgets: got %v (%v), want Drained or DrainFailed", m, err)
	}
}

// fakeSwap plays a supervisor that breaks off a swap: PrepareHandoff, then
// Commit where SealRequest belongs (the incumbent resumes from the drain),
// or, with sealed, SealRequest and then Begin, a successor's message, after
// SealComplete (the incumbent released the lock; it takes it back by the
// recovery rule and resumes).
func (h *hostile) fakeSwap(sealed bool) {
	h.t.Helper()
	p, err := dialRaw(h.w.control)
	if err != nil {
		h.t.Fatal(err)
	}
	defer p.close()
	steps := []struct {
		send wire.Message
		want wire.Type
	}{{&wire.PrepareHandoff{SuccessorPID: 1, DeadlineMillis: 20000, DrainGraceMillis: 5000}, wire.TypeDrained}}
	last := wire.Message(&wire.Commit{})
	if sealed {
		steps = append(steps, struct {
			send wire.Message
			want wire.Type
		}{&wire.SealRequest{}, wire.TypeSealComplete})
		last = &wire.Begin{}
	}
	if _, err := p.handshake(wire.RoleSupervisor); err != nil {
		h.t.Fatal(err)
	}
	for _, s := range steps {
		if err := p.sendSession(s.send); err != nil {
			h.t.Fatal(err)
		}
		m, err := p.recvSkippingHeartbeats(closeWait)
		for err == nil && m.Type() == wire.TypeSealProgress {
			m, err = p.recvSkippingHeartbeats(closeWait)
		}
		if err != nil || m.Type() != s.want {
			h.t.Fatalf("fake supervisor sent %v: got %v (%v), want %v", s.send.Type(), m, err, s.want)
		}
	}
	if err := p.sendSession(last); err != nil {
		h.t.Fatal(err)
	}
	if _, err := p.expectClosed(closeWait); err != nil {
		h.t.Fatal(err)
	}
}

// TestHostile_WrongID: after the handshake every frame must carry the
// session's handoff id; one with another id is a violation that closes
// the session before the message is acted on.
func TestHostile_WrongID(t *testing.T) {
	h := startHostile(t)
	other, _ := wire.NewID()
	h.expectDropped("wrong handoff id", func(p *rawPeer) error {
		if _, err := p.handshake(wire.RoleClient); err != nil {
			return err
		}
		return p.send(wire.MaxVersion, other, &wire.SnapshotRequest{})
	})
	h.expectDropped("wrong handoff id", func(p *rawPeer) error {
		if _, err := p.handshake(wire.RoleSupervisor); err != nil {
			return err
		}
		return p.send(wire.MaxVersion, other, &wire.PrepareHandoff{SuccessorPID: 1, DeadlineMillis: 10000, DrainGraceMillis: 5000})
	})
	if strings.Contains(h.w.fullLog(), "handoff.prepare") {
		t.Error("a PrepareHandoff with a foreign id started a drain")
	}
	h.serving("after frames with a wrong id")
	h.finish()
}

// TestHostile_Slowloris: peers that connect and then say nothing (before
// HelloAck, after it, in the middle of a frame) are dropped after the
// silence limit, and meanwhile the incumbent serves its clients and other
// control peers; a swap with silent peers connected commits.
func TestHostile_Slowloris(t *testing.T) {
	if testing.Short() {
		t.Skip("waits out the 10 s silence limit")
	}
	h := startHostile(t)
	var peers []*rawPeer
	defer func() {
		for _, p := range peers {
			p.close()
		}
	}()
	for _, stall := range []func(p *rawPeer) error{
		func(p *rawPeer) error { _, err := p.hello(); return err },
		func(p *rawPeer) error { _, err := p.handshake(wire.RoleClient); return err },
		func(p *rawPeer) error {
			if _, err := p.handshake(wire.RoleClient); err != nil {
				return err
			}
			return p.write(frameHeader(50, wire.MaxVersion)[:4])
		},
	} {
		p, err := dialRaw(h.w.control)
		if err != nil {
			t.Fatal(err)
		}
		peers = append(peers, p)
		if err := stall(p); err != nil {
			t.Fatal(err)
		}
	}
	h.serving("with silent control peers connected")
	var wg sync.WaitGroup
	errs := make([]error, len(peers))
	for i, p := range peers {
		wg.Go(func() { _, errs[i] = p.expectClosed(closeWait) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("silent peer %d: %v", i, err)
		}
	}
	h.logged("timed out")
	h.serving("after the silent peers were dropped")
	h.finish()
}

// TestHostile_SlowlorisDuringSwap: silent control peers do not stop the
// supervisor's own session: a swap started while they hang commits.
func TestHostile_SlowlorisDuringSwap(t *testing.T) {
	h := startHostile(t)
	for range 4 {
		p, err := dialRaw(h.w.control)
		if err != nil {
			t.Fatal(err)
		}
		defer p.close()
		if _, err := p.hello(); err != nil {
			t.Fatal(err)
		}
	}
	h.finish()
}

// TestHostile_Flood: more silent connections than the session cap. A
// connection beyond the cap evicts the oldest one that never answered the
// incumbent's Hello, so while the flood holds every slot the incumbent
// keeps serving its clients, a well-behaved control client still gets its
// Snapshot, a swap still commits (the supervisor's connection is the newest
// and answers at once), and the flood's descriptors are all given back.
func TestHostile_Flood(t *testing.T) {
	h := startHostile(t)
	before, err := openFDs(h.pid)
	if err != nil {
		t.Fatal(err)
	}
	const n = 4 * sessionCap
	peers := flood(t, h.w.control, n)
	h.clientsServed("during the flood")
	if s, err := snapshot(h.w.control); err != nil || int(s.PID) != h.pid {
		t.Fatalf("during a flood of %d silent connections a well-behaved control client got no Snapshot from pid %d: %v", n, h.pid, err)
	}
	h.logged("handoff.session_limit")
	if closed := closedPeers(peers); closed < n-sessionCap {
		t.Errorf("flood of %d: %d connections closed by the incumbent, want at least %d (at most %d sessions)", n, closed, n-sessionCap, sessionCap)
	}
	waitFDs(t, h.pid, before)

	// A second flood, held open through the swap.
	peers = flood(t, h.w.control, n)
	defer func() {
		for _, p := range peers {
			p.close()
		}
	}()
	h.finish()
}

// flood opens n connections to the control socket that never send a byte.
func flood(t *testing.T, path string, n int) []*rawPeer {
	t.Helper()
	peers := make([]*rawPeer, 0, n)
	for range n {
		p, err := dialRaw(path)
		if err != nil {
			t.Fatalf("connection %d of the flood: %v", len(peers), err)
		}
		t.Cleanup(p.close)
		peers = append(peers, p)
	}
	return peers
}

// closedPeers waits until the incumbent has closed each of the flood's
// connections (evicted, or dropped by the silence limit) and counts those
// it closed; every connection is closed by the test afterwards.
func closedPeers(peers []*rawPeer) int {
	var mu sync.Mutex
	var wg sync.WaitGroup
	closed := 0
	for _, p := range peers {
		wg.Go(func() {
			_, err := p.expectClosed(closeWait)
			p.close()
			if err == nil {
				mu.Lock()
				closed++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return closed
}

// waitFDs waits until pid has want descriptors open again (its sessions
// are closed asynchronously).
func waitFDs(t *testing.T, pid, want int) {
	t.Helper()
	deadline := time.Now().Add(closeWait)
	got := -1
	for time.Now().Before(deadline) {
		if got, _ = openFDs(pid); got <= want {
			return
		}
		time.Sleep(10 * time.Millisecond) // polling another process's fd table
	}
	t.Errorf("incumbent pid %d has %d descriptors open after the flood, %d before: a leak", pid, got, want)
}

// TestHostile_ForeignUID: a process of another uid cannot use the control
// socket. With the socket's default mode 0600 the kernel refuses the
// connect; with the file opened up to everyone, the incumbent itself
// checks SO_PEERCRED and closes the connection without a Hello.
func TestHostile_ForeignUID(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a peer as uid 65534 (nobody)")
	}
	h := startHostile(t)
	if err := os.Chmod(h.w.dir, 0o711); err != nil { // let nobody reach the socket file
		t.Fatal(err)
	}
	out := runForeign(t, "foreign-control-peer", h.w.control)
	if !strings.HasPrefix(out, "connect-error") || !strings.Contains(out, "permission denied") {
		t.Errorf("uid 65534 connecting to the 0600 control socket: %q, want permission denied", out)
	}
	if err := os.Chmod(h.w.control, 0o666); err != nil {
		t.Fatal(err)
	}
	if out := runForeign(t, "foreign-control-peer", h.w.control); out != "closed" {
		t.Errorf("uid 65534 on a world-writable control socket: %q, want the incumbent to close without a Hello", out)
	}
	h.logged("runs as uid 65534")
	h.serving("after a foreign uid")
	h.finish()
}
