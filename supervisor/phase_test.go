package supervisor

import (
	"errors"
	"testing"

	"github.com/handoff-go/handoff/internal/journal"
)

var allPhases = []journal.Phase{journal.Idle, journal.Negotiating, journal.Draining, journal.Sealing,
	journal.AwaitingReady, journal.Committed, journal.Aborting, journal.ResumingAfterAbort}

var allEvents = []Event{EvStart, EvPrepare, EvDrained, EvSealed, EvReady, EvAbort, EvStopped, EvDone}

// TestNext_legalMoves lists every legal move of the supervisor's phase
// machine (DESIGN section 2 steps 1-9, journal phases of section 6). Every
// pair not listed must be refused.
func TestNext_legalMoves(t *testing.T) {
	legal := []struct {
		from journal.Phase
		ev   Event
		to   journal.Phase
	}{
		{journal.Idle, EvStart, journal.Negotiating},
		{journal.Negotiating, EvPrepare, journal.Draining},
		{journal.Draining, EvDrained, journal.Sealing},
		{journal.Sealing, EvSealed, journal.AwaitingReady},
		// Committed is written before Commit is sent (step 7).
		{journal.AwaitingReady, EvReady, journal.Committed},
		{journal.Committed, EvDone, journal.Idle},
		// Any failure before the swap is final aborts (step 9) ...
		{journal.Negotiating, EvAbort, journal.Aborting},
		{journal.Draining, EvAbort, journal.Aborting},
		{journal.Sealing, EvAbort, journal.Aborting},
		{journal.AwaitingReady, EvAbort, journal.Aborting},
		// ... including Commit that could not reach the successor.
		{journal.Committed, EvAbort, journal.Aborting},
		// The successor is stopped and reaped before O is told to resume.
		{journal.Aborting, EvStopped, journal.ResumingAfterAbort},
		{journal.ResumingAfterAbort, EvDone, journal.Idle},
	}
	allowed := map[journal.Phase]map[Event]journal.Phase{}
	for _, m := range legal {
		if allowed[m.from] == nil {
			allowed[m.from] = map[Event]journal.Phase{}
		}
		allowed[m.from][m.ev] = m.to
	}
	for _, from := range allPhases {
		for _, ev := range allEvents {
			to, err := next(from, ev)
			want, ok := allowed[from][ev]
			switch {
			case ok && (err != nil || to != want):
				t.Errorf("next(%v, %v) = %v, %v; want %v", from, ev, to, err, want)
			case !ok && err == nil:
				t.Errorf("next(%v, %v) = %v; want the move refused", from, ev, to)
			}
		}
	}
}

// TestNext_illegalMoveIsTransitionError: an illegal move stays put and
// returns a *TransitionError that names the move and unwraps to ErrProtocol
// (STYLE point 3), never a panic.
func TestNext_illegalMoveIsTransitionError(t *testing.T) {
	cases := []struct {
		name string
		from journal.Phase
		ev   Event
	}{
		{name: "commit without ready", from: journal.Sealing, ev: EvReady},
		{name: "seal before drain", from: journal.Negotiating, ev: EvSealed},
		{name: "abort while idle", from: journal.Idle, ev: EvAbort},
		{name: "second start", from: journal.Draining, ev: EvStart},
		{name: "resume before the successor is stopped", from: journal.Aborting, ev: EvDone},
		{name: "unknown event", from: journal.Idle, ev: Event(200)},
		{name: "unknown phase", from: journal.Phase(99), ev: EvStart},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			to, err := next(tc.from, tc.ev)
			if to != tc.from {
				t.Errorf("illegal move went to %v, want it to stay at %v", to, tc.from)
			}
			var te *TransitionError
			if !errors.As(err, &te) || te.From != tc.from || te.Event != tc.ev {
				t.Fatalf("error %v, want *TransitionError{%v, %v}", err, tc.from, tc.ev)
			}
			if !errors.Is(err, ErrProtocol) {
				t.Errorf("error %v does not unwrap to ErrProtocol", err)
			}
			if te.Error() == "" {
				t.Error("empty error message")
			}
		})
	}
}

// TestNext_everySwapEndsIdle walks each path of a swap (commit, abort at
// each step, dry run) through next and checks it ends Idle: the journal is
// at rest after every handoff.
func TestNext_everySwapEndsIdle(t *testing.T) {
	paths := map[string][]Event{
		"commit":               {EvStart, EvPrepare, EvDrained, EvSealed, EvReady, EvDone},
		"dry run":              {EvStart, EvAbort, EvStopped, EvDone},
		"drain failed":         {EvStart, EvPrepare, EvAbort, EvStopped, EvDone},
		"seal failed":          {EvStart, EvPrepare, EvDrained, EvAbort, EvStopped, EvDone},
		"not ready":            {EvStart, EvPrepare, EvDrained, EvSealed, EvAbort, EvStopped, EvDone},
		"commit undeliverable": {EvStart, EvPrepare, EvDrained, EvSealed, EvReady, EvAbort, EvStopped, EvDone},
	}
	for name, evs := range paths {
		p := journal.Idle
		for _, ev := range evs {
			var err error
			if p, err = next(p, ev); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
		}
		if p != journal.Idle {
			t.Errorf("%s ends at %v, want Idle", name, p)
		}
	}
}

func TestEvent_String(t *testing.T) {
	for _, ev := range allEvents {
		if s := ev.String(); s == "" || s == "event?" {
			t.Errorf("event %d has no name", ev)
		}
	}
	if s := Event(0).String(); s != "event?" {
		t.Errorf("Event(0) = %q", s)
	}
}
