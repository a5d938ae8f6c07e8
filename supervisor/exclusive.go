package supervisor

import (
	"context"
	"sync"
)

// exclusive serialises everything that changes which daemon runs: a
// handoff, a cold start, a crash restart, an adoption, a self-upgrade. A
// handoff that finds another handoff running fails at once; one that finds
// a start or restart finishing waits for it (within its context), since
// the daemon it will hand off from is being started right then.
type exclusive struct {
	mu      sync.Mutex
	kind    string        // what holds it; "" when free
	changed chan struct{} // closed and replaced at every release
}

// Kinds of work that hold the exclusive section.
const (
	kindHandoff = "handoff"
	kindStart   = "start" // cold start, restart, adoption, self-upgrade
)

func newExclusive() *exclusive { return &exclusive{changed: make(chan struct{})} }

// lock waits until the section is free and takes it for kind.
func (e *exclusive) lock(kind string) {
	for {
		ch, ok := e.try(kind)
		if ok {
			return
		}
		<-ch
	}
}

// lockHandoff takes the section for a handoff: at once, or once a start or
// restart finishes; ErrHandoffInProgress while another handoff runs.
func (e *exclusive) lockHandoff(ctx context.Context) error {
	for {
		ch, ok := e.try(kindHandoff)
		if ok {
			return nil
		}
		if e.holder() == kindHandoff {
			return ErrHandoffInProgress
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// try takes the section if it is free; otherwise it returns the channel
// that closes at the next release.
func (e *exclusive) try(kind string) (<-chan struct{}, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.kind != "" {
		return e.changed, false
	}
	e.kind = kind
	return nil, true
}

func (e *exclusive) unlock() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.kind = ""
	close(e.changed)
	e.changed = make(chan struct{})
}

func (e *exclusive) holder() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.kind
}
