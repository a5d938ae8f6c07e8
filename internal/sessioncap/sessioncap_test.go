package sessioncap

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"
)

// pair returns both ends of a real unix stream socketpair; the table holds
// the server end, the test reads the client end to see it closed.
func pair(t *testing.T) (server, client net.Conn) {
	t.Helper()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	conn := func(fd int) net.Conn {
		f := os.NewFile(uintptr(fd), "socketpair")
		defer f.Close()
		c, err := net.FileConn(f)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	return conn(fds[0]), conn(fds[1])
}

// closedByPeer reports whether the other end of c was closed (EOF now).
func closedByPeer(t *testing.T, c net.Conn) bool {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	_, err := c.Read(make([]byte, 1))
	var ne net.Error
	switch {
	case errors.Is(err, io.EOF):
		return true
	case errors.As(err, &ne) && ne.Timeout():
		return false
	}
	t.Fatalf("reading the client end: %v", err)
	return false
}

func TestAdmit_evictsOldestUnvouched(t *testing.T) {
	tab := New(3)
	var clients []net.Conn
	var slots []*Slot
	for i := range 3 {
		s, c := pair(t)
		slot, how := tab.Admit(s)
		if how != Admitted {
			t.Fatalf("connection %d: %v, want Admitted while slots are free", i, how)
		}
		clients, slots = append(clients, c), append(slots, slot)
	}
	slots[0].Vouch() // the oldest speaks: it must survive

	s, c := pair(t)
	slot, how := tab.Admit(s)
	if how != AdmittedByEviction || slot == nil {
		t.Fatalf("fourth connection: %v, want AdmittedByEviction", how)
	}
	if !closedByPeer(t, clients[1]) {
		t.Error("the oldest unvouched connection (the second) was not closed")
	}
	for _, i := range []int{0, 2} {
		if closedByPeer(t, clients[i]) {
			t.Errorf("connection %d was closed; only the oldest unvouched one may be", i)
		}
	}
	if closedByPeer(t, c) {
		t.Error("the newly admitted connection was closed")
	}
	if n := tab.Len(); n != 3 {
		t.Errorf("table holds %d connections, want its limit 3", n)
	}
	slots[1].Release() // the evicted one's owner gives its slot back
	if n := tab.Len(); n != 3 {
		t.Errorf("releasing the evicted slot changed the count to %d", n)
	}
}

func TestAdmit_refusesWhenEveryPeerVouched(t *testing.T) {
	tab := New(2)
	var clients []net.Conn
	for range 2 {
		s, c := pair(t)
		slot, _ := tab.Admit(s)
		slot.Vouch()
		clients = append(clients, c)
	}
	s, _ := pair(t)
	if slot, how := tab.Admit(s); how != Refused || slot != nil {
		t.Fatalf("third connection: %v, want Refused", how)
	}
	for i, c := range clients {
		if closedByPeer(t, c) {
			t.Errorf("vouched connection %d was closed to make room", i)
		}
	}
}

func TestRelease_freesTheSlot(t *testing.T) {
	tab := New(1)
	s1, c1 := pair(t)
	slot, _ := tab.Admit(s1)
	slot.Vouch()
	slot.Release()
	slot.Release() // twice is harmless
	s2, _ := pair(t)
	if _, how := tab.Admit(s2); how != Admitted {
		t.Fatalf("after Release: %v, want Admitted", how)
	}
	if closedByPeer(t, c1) {
		t.Error("Release closed the connection; its owner does that")
	}
}

func TestShutdown_closesAndWaitsForReleases(t *testing.T) {
	tab := New(4)
	var released sync.WaitGroup
	for range 3 {
		s, _ := pair(t)
		slot, _ := tab.Admit(s)
		released.Go(func() {
			// The owner: serve until the connection is closed under it.
			_, _ = s.Read(make([]byte, 1))
			slot.Release()
		})
	}
	done := make(chan struct{})
	go func() {
		tab.Shutdown()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Shutdown did not return after every owner released its slot")
	}
	released.Wait()
	if n := tab.Len(); n != 0 {
		t.Errorf("%d slots held after Shutdown", n)
	}
	s, _ := pair(t)
	if _, how := tab.Admit(s); how != Refused {
		t.Errorf("Admit after Shutdown: %v, want Refused", how)
	}
}

// TestAdmit_boundUnderConcurrency: many goroutines admit and release at
// once; the table never holds more than its limit (run with -race).
func TestAdmit_boundUnderConcurrency(t *testing.T) {
	const limit = 4
	tab := New(limit)
	var wg sync.WaitGroup
	var mu sync.Mutex
	maxSeen := 0
	for range 64 {
		s, _ := pair(t)
		wg.Go(func() {
			slot, how := tab.Admit(s)
			if how == Refused {
				return
			}
			mu.Lock()
			maxSeen = max(maxSeen, tab.Len())
			mu.Unlock()
			slot.Release()
		})
	}
	wg.Wait()
	if maxSeen > limit || maxSeen == 0 {
		t.Errorf("table held up to %d connections, want between 1 and %d", maxSeen, limit)
	}
}

// TestReportLimit: the first report passes, one right after does not (at
// most one a second), so a flood writes one warning, not thousands.
func TestReportLimit(t *testing.T) {
	tab := New(1)
	if !tab.ReportLimit() {
		t.Fatal("the first report was held back")
	}
	for i := range 100 {
		if tab.ReportLimit() {
			t.Fatalf("report %d right after the first one was let through", i+2)
		}
	}
}
