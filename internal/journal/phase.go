package journal

import "fmt"

//go:generate stringer -type=Phase

// Phase is the step of a handoff the supervisor last completed and recorded
// (DESIGN section 6). A restarted supervisor reads it to decide what it may
// have sent before it died; in particular Committed is written before Commit
// is sent, so anything earlier proves no Commit went out.
type Phase uint8

// The phases, in the order a successful swap passes them. The numeric values
// are not part of the file format (the journal stores names), but keep them
// stable anyway.
const (
	// Idle: no handoff in progress.
	Idle Phase = iota
	// Negotiating: the successor is spawned and the handshakes run.
	Negotiating
	// Draining: PrepareHandoff was sent to the incumbent.
	Draining
	// Sealing: SealRequest was sent; the incumbent may release the lock.
	Sealing
	// AwaitingReady: Begin was sent to the successor.
	AwaitingReady
	// Committed: the decision to commit is durable; Commit may have been sent.
	Committed
	// Aborting: the successor is being stopped after an abort decision.
	Aborting
	// ResumingAfterAbort: ResumeAfterAbort was sent to the incumbent.
	ResumingAfterAbort
)

// numPhases is one past the last valid Phase.
const numPhases = ResumingAfterAbort + 1

// Valid reports whether p is one of the defined phases.
func (p Phase) Valid() bool { return p < numPhases }

// ParsePhase returns the Phase named s (its String form, e.g. "Committed").
// It is the inverse of String for every valid phase.
func ParsePhase(s string) (Phase, error) {
	for p := range numPhases {
		if p.String() == s {
			return p, nil
		}
	}
	return 0, fmt.Errorf("handoff: journal phase %q: %w", s, ErrUnknownPhase)
}

// MarshalText encodes p by name, so the journal stays readable by people and
// independent of the numbering.
func (p Phase) MarshalText() ([]byte, error) {
	if !p.Valid() {
		return nil, fmt.Errorf("handoff: journal phase %d: %w", uint8(p), ErrUnknownPhase)
	}
	return []byte(p.String()), nil
}

// UnmarshalText decodes a phase name written by MarshalText.
func (p *Phase) UnmarshalText(b []byte) error {
	q, err := ParsePhase(string(b))
	if err != nil {
		return err
	}
	*p = q
	return nil
}
