package wire

import (
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestConn_handshakeThenSession(t *testing.T) {
	n, s := connPair(t)
	id := handshake(t, n, s)
	for _, tc := range []struct {
		from, to *Conn
		m        Message
	}{
		{s, n, &Begin{}},
		{n, s, &Heartbeat{}},
		{n, s, samples()[9]}, // Ready
		{s, n, &Commit{}},
	} {
		mustSend(t, tc.from, tc.m)
		rec := mustRecv(t, tc.to)
		if !reflect.DeepEqual(rec.Msg, tc.m) || rec.ID != id || rec.Version != MaxVersion || rec.Files != nil {
			t.Errorf("got %#v id %s v%d files %v, want %#v id %s v%d", rec.Msg, rec.ID, rec.Version, rec.Files, tc.m, id, MaxVersion)
		}
	}
	if v, got, ok := n.Negotiated(); !ok || v != MaxVersion || got != id {
		t.Errorf("Negotiated() = %d %s %v", v, got, ok)
	}
}

func TestConn_rejectsWrongID(t *testing.T) {
	a, b := connPair(t)
	idA, idB := mustID(t), mustID(t)
	a.SetNegotiated(1, idA)
	b.SetNegotiated(1, idB)
	mustSend(t, a, &Heartbeat{})
	_, err := b.Recv(later())
	if !errors.Is(err, ErrWrongID) || !errors.Is(err, ErrProtocol) {
		t.Fatalf("got %v, want ErrWrongID", err)
	}
	for _, id := range []ID{idA, idB} {
		if !strings.Contains(err.Error(), id.String()) {
			t.Errorf("error %q does not name id %s", err, id)
		}
	}
}

func TestConn_rejectsWrongVersion(t *testing.T) {
	a, b := connPair(t)
	id := mustID(t)
	a.SetNegotiated(2, id)
	b.SetNegotiated(1, id)
	mustSend(t, a, &Heartbeat{})
	if _, err := b.Recv(later()); !errors.Is(err, ErrWrongVersion) || !errors.Is(err, ErrProtocol) {
		t.Fatalf("got %v, want ErrWrongVersion", err)
	}
}

func TestConn_rejectsHandshakeFrameInOtherVersion(t *testing.T) {
	a, b := socketpair(t)
	frame, err := Encode(2, ID{}, &Hello{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Write(frame); err != nil {
		t.Fatal(err)
	}
	if _, err := NewConn(b).Recv(later()); !errors.Is(err, ErrWrongVersion) {
		t.Fatalf("got %v, want ErrWrongVersion", err)
	}
}

func TestConn_rejectsOutOfOrder(t *testing.T) {
	t.Run("message before handshake", func(t *testing.T) {
		a, b := connPair(t)
		a.SetNegotiated(1, mustID(t))
		mustSend(t, a, &Begin{})
		if _, err := b.Recv(later()); !errors.Is(err, ErrOutOfOrder) {
			t.Fatalf("got %v, want ErrOutOfOrder", err)
		}
	})
	t.Run("second Hello", func(t *testing.T) {
		n, s := connPair(t)
		handshake(t, n, s)
		mustSend(t, n, &Hello{})
		if _, err := s.Recv(later()); !errors.Is(err, ErrOutOfOrder) {
			t.Fatalf("got %v, want ErrOutOfOrder", err)
		}
	})
}

func TestConn_abortAcceptedBeforeHandshake(t *testing.T) {
	n, s := connPair(t)
	mustSend(t, n, &Hello{MinVersion: 7, MaxVersion: 9})
	mustRecv(t, s)
	s.SetNegotiated(HelloFrameVersion, mustID(t)) // refuse: Abort needs an id
	mustSend(t, s, &Abort{Reason: ReasonVersionMismatch, Detail: "speak 1..1"})
	rec := mustRecv(t, n)
	if a, ok := rec.Msg.(*Abort); !ok || a.Reason != ReasonVersionMismatch {
		t.Fatalf("got %#v, want Abort{version-mismatch}", rec.Msg)
	}
}

func TestConn_unusableAfterViolation(t *testing.T) {
	a, b := connPair(t)
	a.SetNegotiated(1, mustID(t))
	b.SetNegotiated(1, mustID(t))
	mustSend(t, a, &Heartbeat{})
	if _, err := b.Recv(later()); !errors.Is(err, ErrWrongID) {
		t.Fatalf("got %v, want ErrWrongID", err)
	}
	b.SetNegotiated(1, mustSessionID(t, a))
	mustSend(t, a, &Heartbeat{}) // valid now, but the session is over
	if _, err := b.Recv(later()); !errors.Is(err, ErrWrongID) {
		t.Fatalf("second Recv: %v, want the first violation again", err)
	}
}

func TestConn_silentPeerTimesOut(t *testing.T) {
	a, b := connPair(t)
	id := mustID(t)
	a.SetNegotiated(1, id)
	b.SetNegotiated(1, id)
	_, err := b.Recv(soon())
	if !errors.Is(err, ErrPeerTimeout) || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("got %v, want ErrPeerTimeout and os.ErrDeadlineExceeded", err)
	}
	// Nothing of a frame was read, so the stream is still in step.
	mustSend(t, a, &Heartbeat{})
	if rec := mustRecv(t, b); rec.Msg.Type() != TypeHeartbeat {
		t.Fatalf("after the timeout got %s, want Heartbeat", rec.Msg.Type())
	}
}

func TestConn_timeoutInsideFrameBreaksConn(t *testing.T) {
	a, b := socketpair(t)
	c := NewConn(b)
	frame, err := Encode(1, ID{}, &Hello{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Write(frame[:3]); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Recv(soon()); !errors.Is(err, ErrPeerTimeout) {
		t.Fatalf("got %v, want ErrPeerTimeout", err)
	}
	if _, err := a.Write(frame[3:]); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Recv(later()); err == nil || !errors.Is(err, ErrPeerTimeout) {
		t.Fatalf("after a timeout inside a frame: %v, want the timeout again", err)
	}
}

func TestConn_peerClose(t *testing.T) {
	t.Run("at a frame boundary", func(t *testing.T) {
		a, b := connPair(t)
		_ = a.Close()
		if _, err := b.Recv(later()); !errors.Is(err, io.EOF) || errors.Is(err, ErrProtocol) {
			t.Fatalf("got %v, want io.EOF", err)
		}
	})
	t.Run("inside a frame", func(t *testing.T) {
		a, b := socketpair(t)
		frame, err := Encode(1, ID{}, samples()[0])
		if err != nil {
			t.Fatal(err)
		}
		if _, err := a.Write(frame[:len(frame)-1]); err != nil {
			t.Fatal(err)
		}
		_ = a.Close()
		if _, err := NewConn(b).Recv(later()); !errors.Is(err, ErrTruncated) || !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("got %v, want ErrTruncated", err)
		}
	})
}

func TestConn_requiresDeadline(t *testing.T) {
	a, _ := connPair(t)
	var zeroTime time.Time
	if err := a.Send(zeroTime, &Hello{}); !errors.Is(err, ErrNoDeadline) {
		t.Errorf("Send: %v, want ErrNoDeadline", err)
	}
	if _, err := a.Recv(zeroTime); !errors.Is(err, ErrNoDeadline) {
		t.Errorf("Recv: %v, want ErrNoDeadline", err)
	}
}

func TestConn_sendRefusesBadFDs(t *testing.T) {
	a, _ := connPair(t)
	a.SetNegotiated(1, mustID(t))
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	if err := a.Send(later(), &Heartbeat{}, w); !errors.Is(err, ErrUnexpectedFDs) {
		t.Errorf("Heartbeat with a descriptor: %v, want ErrUnexpectedFDs", err)
	}
	if err := a.Send(later(), &Listeners{Names: []string{"a", "b"}}, w); !errors.Is(err, ErrUnexpectedFDs) {
		t.Errorf("two names, one descriptor: %v, want ErrUnexpectedFDs", err)
	}
}

// TestConn_concurrentSendersKeepFramesWhole sends frames larger than the
// socket buffer from several goroutines, so writes are partial and would
// interleave without the write lock.
func TestConn_concurrentSendersKeepFramesWhole(t *testing.T) {
	const senders, perSender, size = 4, 8, 300_000
	a, b := connPair(t)
	id := mustID(t)
	a.SetNegotiated(1, id)
	b.SetNegotiated(1, id)
	errs := make(chan error, senders)
	var wg sync.WaitGroup
	for s := range senders {
		wg.Go(func() { errs <- sendMany(a, s, perSender, size) })
	}
	next := make([]uint32, senders)
	for range senders * perSender {
		snap, ok := mustRecv(t, b).Msg.(*Snapshot)
		if !ok || int(snap.PID) >= senders || snap.OpenConns != next[snap.PID] ||
			snap.BuildID != strings.Repeat(string(rune('a'+snap.PID)), size) {
			t.Fatalf("frame corrupted or out of order: %T pid %d", snap, snap.PID)
		}
		next[snap.PID]++
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

// sendMany sends n large Snapshots tagged with sender and sequence number.
func sendMany(c *Conn, sender, n, size int) error {
	body := strings.Repeat(string(rune('a'+sender)), size)
	for i := range n {
		m := &Snapshot{PID: int32(sender), OpenConns: uint32(i), BuildID: body}
		if err := c.Send(later(), m); err != nil {
			return fmt.Errorf("sender %d frame %d: %w", sender, i, err)
		}
	}
	return nil
}

func mustID(t *testing.T) ID {
	t.Helper()
	id, err := NewID()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func mustSessionID(t *testing.T, c *Conn) ID {
	t.Helper()
	_, id, ok := c.Negotiated()
	if !ok {
		t.Fatal("not negotiated")
	}
	return id
}

// TestConn_sendToStalledPeer checks that a peer that stops reading cannot
// pin a sender: the write deadline fires, and a frame cut short leaves the
// Conn refusing further sends rather than corrupting the stream. (If the
// deadline passed before the first byte left, which a slow machine can
// cause, the stream is intact and the Conn must stay usable instead.)
func TestConn_sendToStalledPeer(t *testing.T) {
	a, b := connPair(t)
	a.SetNegotiated(1, sampleID)
	big := &SealFailed{Reason: strings.Repeat("x", MaxFrameSize-100)} // larger than the socket buffer
	err := a.Send(time.Now().Add(500*time.Millisecond), big)
	if !errors.Is(err, ErrPeerTimeout) || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("got %v, want ErrPeerTimeout", err)
	}
	err = a.Send(later(), &Heartbeat{})
	if queued := pending(t, b); queued > 0 && (err == nil || !strings.Contains(err.Error(), "partial write")) {
		t.Fatalf("after a partial frame (%d bytes queued): %v, want a refusal", queued, err)
	} else if queued == 0 && err != nil {
		t.Fatalf("after a timeout before the first byte: %v, want the Conn usable", err)
	}
}

// pending returns how many bytes wait unread in c's receive queue.
func pending(t *testing.T, c *Conn) int {
	t.Helper()
	n, err := unix.IoctlGetInt(rawFD(t, c.Raw()), unix.SIOCINQ)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestConn_sendToClosedPeer(t *testing.T) {
	a, b := connPair(t)
	a.SetNegotiated(1, sampleID)
	_ = b.Close()
	err := a.Send(later(), &Heartbeat{})
	if err == nil || errors.Is(err, ErrPeerTimeout) || !strings.HasPrefix(err.Error(), "handoff: send Heartbeat: ") {
		t.Fatalf("got %v, want a plain send error", err)
	}
}

func TestConn_closeIsIdempotent(t *testing.T) {
	a, _ := connPair(t)
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := a.Recv(later()); err == nil {
		t.Fatal("Recv on a closed Conn succeeded")
	}
}
