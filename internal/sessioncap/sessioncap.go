// Package sessioncap bounds the connections a server holds at once without
// letting silent ones lock out the peers that speak. When every slot is
// taken, a new connection evicts the oldest one that has not yet been
// vouched for (its peer has not completed a handshake or sent a request);
// the new one is refused only when every slot is held by a vouched peer.
//
// Evicting the oldest rather than the newest matters: a client that speaks
// at once is briefly unvouched too, and a flood arriving behind it must
// push out the connections that have been silent longest, never it.
package sessioncap

import (
	"io"
	"sync"
	"time"
)

// Table is the set of connections holding a slot. The zero value is not
// usable; call New.
type Table struct {
	limit int

	mu     sync.Mutex
	slots  map[*Slot]struct{}
	seq    uint64
	closed bool
	wg     sync.WaitGroup // one count per admitted slot until Release

	reported time.Time // the last time ReportLimit said yes
}

// Slot is one admitted connection's place in a Table.
type Slot struct {
	t        *Table
	c        io.Closer
	seq      uint64 // admission order
	vouched  bool
	released bool
}

// New returns a table of limit slots (at least 1).
func New(limit int) *Table {
	return &Table{limit: max(limit, 1), slots: make(map[*Slot]struct{})}
}

// Admission says what Admit did.
type Admission int

// The outcomes of Admit.
const (
	// Admitted: a slot was free.
	Admitted Admission = iota
	// AdmittedByEviction: the oldest unvouched connection was closed to
	// make room.
	AdmittedByEviction
	// Refused: every slot is held by a vouched peer, or the table is shut
	// down. The caller closes c.
	Refused
)

// String names the outcome.
func (a Admission) String() string {
	switch a {
	case Admitted:
		return "admitted"
	case AdmittedByEviction:
		return "admitted by eviction"
	case Refused:
		return "refused"
	}
	return "unknown admission"
}

// Admit gives c a slot, evicting (closing) the oldest unvouched connection
// when the table is full. An admitted slot must be released with Release
// once its connection is done, evicted or not.
func (t *Table) Admit(c io.Closer) (*Slot, Admission) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, Refused
	}
	how := Admitted
	if len(t.slots) >= t.limit {
		var victim *Slot
		for s := range t.slots {
			if !s.vouched && (victim == nil || s.seq < victim.seq) {
				victim = s
			}
		}
		if victim == nil {
			return nil, Refused
		}
		// The victim's owner sees its connection closed and calls Release;
		// its slot is given up now, so the table never holds more than
		// limit connections.
		delete(t.slots, victim)
		victim.c.Close()
		how = AdmittedByEviction
	}
	t.seq++
	s := &Slot{t: t, c: c, seq: t.seq}
	t.slots[s] = struct{}{}
	t.wg.Add(1)
	return s, how
}

// Vouch marks the slot's peer as one that speaks the protocol: it is no
// longer evicted to make room.
func (s *Slot) Vouch() {
	s.t.mu.Lock()
	defer s.t.mu.Unlock()
	s.vouched = true
}

// Release gives the slot back. It does not close the connection (its owner
// does); calling it more than once is harmless.
func (s *Slot) Release() {
	s.t.mu.Lock()
	defer s.t.mu.Unlock()
	if s.released {
		return
	}
	s.released = true
	delete(s.t.slots, s)
	s.t.wg.Done()
}

// ReportLimit says whether the caller should log that the limit was hit
// (an eviction or a refusal): yes at most once a second, so that a flood
// of connections does not flood the log as well.
func (t *Table) ReportLimit() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if now := time.Now(); now.Sub(t.reported) >= time.Second {
		t.reported = now
		return true
	}
	return false
}

// Len returns how many connections hold a slot.
func (t *Table) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.slots)
}

// Shutdown refuses every further connection, closes those holding a slot
// and waits until each admitted slot was released.
func (t *Table) Shutdown() {
	t.mu.Lock()
	t.closed = true
	for s := range t.slots {
		s.c.Close()
	}
	t.mu.Unlock()
	t.wg.Wait()
}
