package supervisor

import (
	"context"
	"time"
)

// SpawnSpec says what to run for a handoff (or a cold start).
type SpawnSpec struct {
	// Binary is the daemon executable. It is resolved (absolute path, links
	// followed) at every spawn, and the resolved path is reported: a swap
	// never re-executes a stale argv[0].
	Binary string
	// Args are the arguments after the program name.
	Args []string
	// Env is added to the supervisor's own environment (without any
	// LISTEN_* or HANDOFF_* variables, which the supervisor sets itself).
	Env []string
	// Dir is the working directory; empty means the supervisor's.
	Dir string
	// SHA256, if set (64 hex digits), pins the binary's content: the file is
	// opened and hashed, a mismatch fails with ErrBadBinary before anything
	// is spawned, and the process is executed from that open descriptor, so
	// what runs is what was checked even if the path is replaced meanwhile.
	// It applies to this spawn only; a later crash restart runs the path.
	SHA256 string
	// Deadline bounds the whole handoff. Zero means 60 s.
	Deadline time.Duration
	// DrainGrace bounds the incumbent's Drain. Zero means 25 s.
	DrainGrace time.Duration
	// DryRun starts the successor, lets it warm up and handshake, then
	// aborts it without touching the incumbent (a canary start).
	DryRun bool
	// Probe, if set, is a health check run after Ready and before Commit;
	// an error aborts the swap (reason probe-failed).
	Probe func(ctx context.Context) error
	// OnEvent, if set, is called for each phase as it happens (from the
	// goroutine running the handoff; it must not block for long).
	OnEvent func(Progress)
}

// Defaults of SpawnSpec.
const (
	DefaultDeadline   = 60 * time.Second
	DefaultDrainGrace = 25 * time.Second
)

func (s SpawnSpec) deadline() time.Duration {
	if s.Deadline <= 0 {
		return DefaultDeadline
	}
	return s.Deadline
}

func (s SpawnSpec) drainGrace() time.Duration {
	if s.DrainGrace <= 0 {
		return DefaultDrainGrace
	}
	return s.DrainGrace
}

// Progress is one step of a handoff as it happens.
type Progress struct {
	// Step is one of spawned, hello, drained, seal-progress, sealed, ready,
	// committed, aborted.
	Step string
	// Elapsed is the time since the handoff started.
	Elapsed time.Duration
	// Took is the duration of this step alone.
	Took time.Duration
	// Detail is a short human-readable note (pid, revisions, reason).
	Detail string
}

// PhaseDuration is how long one phase of a handoff took.
type PhaseDuration struct {
	Phase    string
	Duration time.Duration
}

// Outcome reports a finished handoff.
type Outcome struct {
	// HandoffID is the 128-bit id of the handoff, in hex.
	HandoffID string
	// Committed is true when the successor became the incumbent.
	Committed bool
	// DryRun is true for a canary start (never committed).
	DryRun bool
	// OldPID is the incumbent's pid before the handoff.
	OldPID int
	// NewPID is the successor's pid (the new incumbent when committed).
	NewPID int
	// Binary is the resolved path of the binary that was started.
	Binary string
	// BuildID is the successor's build id from its Hello.
	BuildID string
	// Reason is the abort reason (empty when committed), e.g.
	// "successor-exited", "unhealthy", "seal-failed", "dry-run".
	Reason string
	// Cause is the underlying error text of an abort.
	Cause string
	// Phases lists each phase's duration in order.
	Phases []PhaseDuration
	// Total is the time from trigger to the outcome.
	Total time.Duration
}
