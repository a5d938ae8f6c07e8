package supervisor

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestExclusive_handoffWaitsForStartButNotForHandoff: a handoff triggered
// while a restart finishes starts right after it; one triggered during
// another handoff fails at once with ErrHandoffInProgress (DESIGN step 1).
func TestExclusive_handoffWaitsForStartButNotForHandoff(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // turns a hang into a failure
	defer cancel()
	e := newExclusive()
	e.lock(kindStart)
	got := make(chan error, 1)
	go func() { got <- e.lockHandoff(ctx) }()
	select {
	case err := <-got:
		t.Fatalf("handoff did not wait for the restart: %v", err)
	default:
	}
	e.unlock()
	if err := <-got; err != nil {
		t.Fatalf("handoff after the restart: %v", err)
	}
	if err := e.lockHandoff(ctx); !errors.Is(err, ErrHandoffInProgress) {
		t.Fatalf("second handoff: %v, want ErrHandoffInProgress", err)
	}
	e.unlock()
	if err := e.lockHandoff(ctx); err != nil {
		t.Fatalf("handoff once free: %v", err)
	}
	e.unlock()
}

// TestExclusive_handoffWaitEndsWithContext: the wait for a restart is
// bounded by the caller's context.
func TestExclusive_handoffWaitEndsWithContext(t *testing.T) {
	e := newExclusive()
	e.lock(kindStart)
	defer e.unlock()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := e.lockHandoff(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("lockHandoff = %v, want context.Canceled", err)
	}
}
