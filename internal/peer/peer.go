// Package peer holds the liveness rules both ends of a handoff session share:
// heartbeats every two seconds while a swap is in progress, a peer declared
// dead after ten seconds of silence, and every read bounded by a deadline so
// that no side can be pinned by a silent peer.
package peer

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/handoff-go/handoff/internal/wire"
)

// Liveness rules of the protocol (PROTOCOL.md, "Liveness").
const (
	// HeartbeatInterval is how often a side that has nothing else to say
	// sends Heartbeat during a swap.
	HeartbeatInterval = 2 * time.Second
	// Silence is how long a peer may send nothing before it is declared
	// dead.
	Silence = 10 * time.Second
	// WireSlack is added to every wall-clock budget so that a reply produced
	// right at the budget is not cut off in flight.
	WireSlack = time.Second
)

// Heartbeats sends Heartbeat on c every HeartbeatInterval until stopped.
type Heartbeats struct {
	stop chan struct{}
	done chan struct{}
	once sync.Once
}

// StartHeartbeats starts sending heartbeats on c. Send errors end the loop
// quietly: the session notices a dead peer on its own reads.
func StartHeartbeats(c *wire.Conn) *Heartbeats {
	h := &Heartbeats{stop: make(chan struct{}), done: make(chan struct{})}
	go h.run(c)
	return h
}

func (h *Heartbeats) run(c *wire.Conn) {
	defer close(h.done)
	t := time.NewTicker(HeartbeatInterval)
	defer t.Stop()
	for {
		select {
		case <-h.stop:
			return
		case <-t.C:
			if err := c.Send(time.Now().Add(HeartbeatInterval), &wire.Heartbeat{}); err != nil {
				return
			}
		}
	}
}

// Stop ends the heartbeats and waits until no heartbeat is being written. It
// is idempotent and safe on a nil receiver.
func (h *Heartbeats) Stop() {
	if h == nil {
		return
	}
	h.once.Do(func() { close(h.stop) })
	<-h.done
}

// Next returns the next message from c that is not a Heartbeat. Each read
// waits at most Silence; the whole wait ends at until (zero: no budget) or
// when ctx ends. A budget overrun and a silent peer both wrap
// wire.ErrPeerTimeout, with a message that says which.
func Next(ctx context.Context, c *wire.Conn, until time.Time) (wire.Received, error) {
	if d, ok := ctx.Deadline(); ok && (until.IsZero() || d.Before(until)) {
		until = d
	}
	for {
		if err := ctx.Err(); err != nil {
			return wire.Received{}, err
		}
		readBy := time.Now().Add(Silence)
		budget := !until.IsZero() && until.Before(readBy)
		if budget {
			readBy = until
		}
		r, err := c.Recv(readBy)
		if err != nil {
			return r, explainTimeout(err, budget)
		}
		if r.Msg.Type() != wire.TypeHeartbeat {
			return r, nil
		}
	}
}

func explainTimeout(err error, budget bool) error {
	if !errors.Is(err, wire.ErrPeerTimeout) {
		return err
	}
	if budget {
		return fmt.Errorf("handoff: phase budget exceeded: %w", err)
	}
	return fmt.Errorf("handoff: peer silent for %v: %w", Silence, err)
}
