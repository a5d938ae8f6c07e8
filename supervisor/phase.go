package supervisor

import (
	"github.com/handoff-go/handoff/internal/journal"
)

// Event is what moves the supervisor's phase machine.
type Event uint8

// Events of a swap.
const (
	EvStart   Event = iota + 1 // trigger accepted, talking to the peers
	EvPrepare                  // PrepareHandoff sent
	EvDrained                  // Drained received
	EvSealed                   // SealComplete received
	EvReady                    // Ready accepted; about to commit
	EvAbort                    // any failure before the swap is final
	EvStopped                  // successor stopped and reaped after an abort
	EvDone                     // swap finished (committed, or incumbent told to resume)
)

var eventNames = [...]string{"", "start", "prepare", "drained", "sealed", "ready", "abort", "stopped", "done"}

// String names the event.
func (e Event) String() string {
	if int(e) < len(eventNames) && e > 0 {
		return eventNames[e]
	}
	return "event?"
}

// transitions is the whole phase machine: phase → event → next phase.
var transitions = map[journal.Phase]map[Event]journal.Phase{
	journal.Idle:               {EvStart: journal.Negotiating},
	journal.Negotiating:        {EvPrepare: journal.Draining, EvAbort: journal.Aborting},
	journal.Draining:           {EvDrained: journal.Sealing, EvAbort: journal.Aborting},
	journal.Sealing:            {EvSealed: journal.AwaitingReady, EvAbort: journal.Aborting},
	journal.AwaitingReady:      {EvReady: journal.Committed, EvAbort: journal.Aborting},
	journal.Committed:          {EvDone: journal.Idle, EvAbort: journal.Aborting},
	journal.Aborting:           {EvStopped: journal.ResumingAfterAbort},
	journal.ResumingAfterAbort: {EvDone: journal.Idle},
}

// next is the pure transition function: no I/O, no clock, no goroutines.
// Committed → Aborting exists for one case only: Commit could not be
// delivered to the successor (it died first), so nothing was committed.
func next(p journal.Phase, e Event) (journal.Phase, error) {
	if to, ok := transitions[p][e]; ok {
		return to, nil
	}
	return p, &TransitionError{From: p, Event: e}
}
