package peer

import (
	"context"
	"errors"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/handoff-go/handoff/internal/wire"
)

// pair returns two negotiated protocol connections over a socketpair.
func pair(t *testing.T) (*wire.Conn, *wire.Conn) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	conn := func(fd int) *wire.Conn {
		f := os.NewFile(uintptr(fd), "peer")
		defer f.Close()
		c, err := net.FileConn(f)
		if err != nil {
			t.Fatal(err)
		}
		wc := wire.NewConn(c.(*net.UnixConn))
		t.Cleanup(func() { wc.Close() })
		return wc
	}
	a, b := conn(fds[0]), conn(fds[1])
	id, err := wire.NewID()
	if err != nil {
		t.Fatal(err)
	}
	a.SetNegotiated(1, id)
	b.SetNegotiated(1, id)
	return a, b
}

// TestNext_skipsHeartbeats: Next returns the first message that is not a
// Heartbeat, however many heartbeats came before it.
func TestNext_skipsHeartbeats(t *testing.T) {
	a, b := pair(t)
	deadline := time.Now().Add(time.Minute) // turns a hang into a failure
	for range 3 {
		if err := a.Send(deadline, &wire.Heartbeat{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Send(deadline, &wire.SealRequest{}); err != nil {
		t.Fatal(err)
	}
	r, err := Next(context.Background(), b, time.Time{})
	if err != nil || r.Msg.Type() != wire.TypeSealRequest {
		t.Fatalf("Next = %v, %v; want SealRequest", r.Msg, err)
	}
}

// TestNext_budgetEndsTheWait: a phase budget shorter than the silence limit
// ends the wait with ErrPeerTimeout naming the budget, even while the peer
// keeps sending heartbeats.
func TestNext_budgetEndsTheWait(t *testing.T) {
	a, b := pair(t)
	hb := StartHeartbeats(a)
	defer hb.Stop()
	_, err := Next(context.Background(), b, time.Now().Add(50*time.Millisecond))
	if !errors.Is(err, wire.ErrPeerTimeout) || !strings.Contains(err.Error(), "phase budget") {
		t.Fatalf("Next = %v; want a phase-budget ErrPeerTimeout", err)
	}
}

// TestNext_contextEnds: a cancelled context ends the wait at once.
func TestNext_contextEnds(t *testing.T) {
	_, b := pair(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Next(ctx, b, time.Time{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Next = %v; want context.Canceled", err)
	}
}

// TestHeartbeats_stopEndsThem: after Stop (idempotent, also on nil) no
// heartbeat reaches the peer, not even after a whole interval.
func TestHeartbeats_stopEndsThem(t *testing.T) {
	a, b := pair(t)
	hb := StartHeartbeats(a)
	hb.Stop()
	hb.Stop()
	var none *Heartbeats
	none.Stop()
	r, err := b.Recv(time.Now().Add(HeartbeatInterval + HeartbeatInterval/2))
	if !errors.Is(err, wire.ErrPeerTimeout) {
		t.Fatalf("after Stop: received %v, %v; want nothing until the deadline", r.Msg, err)
	}
}

// TestHeartbeats_sent: while running, heartbeats arrive every interval.
func TestHeartbeats_sent(t *testing.T) {
	a, b := pair(t)
	hb := StartHeartbeats(a)
	defer hb.Stop()
	r, err := b.Recv(time.Now().Add(time.Minute)) // turns a hang into a failure
	if err != nil || r.Msg.Type() != wire.TypeHeartbeat {
		t.Fatalf("Recv = %v, %v; want a Heartbeat", r.Msg, err)
	}
}
