package journal

import (
	"errors"
	"testing"
)

func TestParsePhase_inverseOfString(t *testing.T) {
	names := []string{"Idle", "Negotiating", "Draining", "Sealing", "AwaitingReady", "Committed", "Aborting", "ResumingAfterAbort"}
	if len(names) != int(numPhases) {
		t.Fatalf("%d names for %d phases", len(names), numPhases)
	}
	for i, name := range names {
		p, err := ParsePhase(name)
		if err != nil || p != Phase(i) || p.String() != name {
			t.Fatalf("ParsePhase(%q) = %v (%d), %v; want phase %d", name, p, p, err, i)
		}
		text, err := p.MarshalText()
		if err != nil || string(text) != name {
			t.Fatalf("MarshalText(%v) = %q, %v", p, text, err)
		}
	}
	for _, bad := range []string{"", "idle", "Phase(9)", "Committed "} {
		if _, err := ParsePhase(bad); !errors.Is(err, ErrUnknownPhase) {
			t.Fatalf("ParsePhase(%q): %v, want ErrUnknownPhase", bad, err)
		}
	}
	if _, err := numPhases.MarshalText(); !errors.Is(err, ErrUnknownPhase) || numPhases.Valid() {
		t.Fatalf("MarshalText of an invalid phase: %v, want ErrUnknownPhase", err)
	}
}
