package main

import (
	"time"

	"github.com/handoff-go/handoff/supervisor"
)

// The trigger protocol: newline-delimited JSON over the trigger socket. The
// client sends one request line; the supervisor answers with event lines
// and closes the connection after the last one (outcome, error or status).
// docs/operating.md documents it for operators.

// Operations a request may ask for.
const (
	opUpgrade = "upgrade"
	opStatus  = "status"
	// opUpgradeSupervisor replaces the supervisor's own binary in place.
	opUpgradeSupervisor = "upgrade-supervisor"
)

// Event kinds.
const (
	evProgress = "progress"
	evOutcome  = "outcome"
	evError    = "error"
	evStatus   = "status"
)

// Error codes of an error event: what the client (and a script) can act on.
const (
	codeInProgress  = "in-progress"  // another swap is running; retry later
	codeBadBinary   = "bad-binary"   // the binary is missing or cannot be executed
	codeNotAllowed  = "not-allowed"  // binary not on the allow-list, or uid not admitted
	codeNoIncumbent = "no-incumbent" // no daemon is running to swap from
	codeBadRequest  = "bad-request"  // the request line is not valid
	codeStopping    = "stopping"     // the supervisor is shutting down
	codeBusy        = "busy"         // every trigger connection slot holds a request; retry later
	codeInternal    = "internal"     // anything else; the message says what
	// codeReexecFailed: the new supervisor binary failed its pre-flight run
	// or could not be exec'd; the running supervisor carries on unchanged.
	codeReexecFailed = "reexec-failed"
)

// request is the one line a client sends.
type request struct {
	Op string `json:"op"`
	// Binary is an absolute path; empty means the configured binary.
	Binary string `json:"binary,omitempty"`
	DryRun bool   `json:"dry_run,omitempty"`
	// SHA256 pins the binary's content (hex digest; upgrade only).
	SHA256 string `json:"sha256,omitempty"`
}

// eventHead is decoded first, to learn which event a line carries.
type eventHead struct {
	Event string `json:"event"`
}

// progressEvent is one step of a swap as it happens.
type progressEvent struct {
	Event     string  `json:"event"`
	Step      string  `json:"step"`
	TookMS    float64 `json:"took_ms"`
	ElapsedMS float64 `json:"elapsed_ms"`
	Detail    string  `json:"detail,omitempty"`
}

// phaseJSON is one phase duration of an outcome.
type phaseJSON struct {
	Phase  string  `json:"phase"`
	TookMS float64 `json:"took_ms"`
}

// outcomeJSON is a finished swap (committed, rolled back or a dry run).
type outcomeJSON struct {
	Event     string      `json:"event,omitempty"`
	HandoffID string      `json:"handoff_id"`
	Committed bool        `json:"committed"`
	DryRun    bool        `json:"dry_run"`
	OldPID    int         `json:"old_pid"`
	NewPID    int         `json:"new_pid"`
	Binary    string      `json:"binary"`
	BuildID   string      `json:"build_id"`
	Reason    string      `json:"reason,omitempty"`
	Cause     string      `json:"cause,omitempty"`
	Phases    []phaseJSON `json:"phases"`
	TotalMS   float64     `json:"total_ms"`
	// Finished is when the outcome was recorded (status only).
	Finished *time.Time `json:"finished,omitempty"`
}

// errorEvent ends a request that could not be carried out.
type errorEvent struct {
	Event string `json:"event"`
	Code  string `json:"code"`
	Error string `json:"error"`
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func msDuration(v float64) time.Duration { return time.Duration(v * float64(time.Millisecond)) }

func newProgress(p supervisor.Progress) progressEvent {
	return progressEvent{Event: evProgress, Step: p.Step, TookMS: ms(p.Took), ElapsedMS: ms(p.Elapsed), Detail: p.Detail}
}

func newOutcome(o supervisor.Outcome) outcomeJSON {
	out := outcomeJSON{
		Event: evOutcome, HandoffID: o.HandoffID, Committed: o.Committed, DryRun: o.DryRun,
		OldPID: o.OldPID, NewPID: o.NewPID, Binary: o.Binary, BuildID: o.BuildID,
		Reason: o.Reason, Cause: o.Cause, TotalMS: ms(o.Total), Phases: []phaseJSON{},
	}
	for _, p := range o.Phases {
		out.Phases = append(out.Phases, phaseJSON{Phase: p.Phase, TookMS: ms(p.Duration)})
	}
	return out
}

// statusEvent answers a status request.
type statusEvent struct {
	Event          string         `json:"event"`
	SupervisorPID  int            `json:"supervisor_pid"`
	SupervisorBin  string         `json:"supervisor_binary"`
	SupervisorUpMS float64        `json:"supervisor_uptime_ms"`
	Config         string         `json:"config"`
	TriggerSocket  string         `json:"trigger_socket"`
	ControlSocket  string         `json:"control_socket"`
	MetricsAddr    string         `json:"metrics_addr,omitempty"`
	Incumbent      *incumbentJSON `json:"incumbent"`
	Listeners      []listenerJSON `json:"listeners"`
	Snapshot       *snapshotJSON  `json:"snapshot,omitempty"`
	SnapshotError  string         `json:"snapshot_error,omitempty"`
	LastOutcome    *outcomeJSON   `json:"last_outcome,omitempty"`
	Draining       []int          `json:"draining"`
	MaxDraining    int            `json:"max_draining"`
	Counters       countersJSON   `json:"counters"`
}

// incumbentJSON is the serving daemon as the supervisor sees it.
type incumbentJSON struct {
	PID      int       `json:"pid"`
	Binary   string    `json:"binary"`
	BuildID  string    `json:"build_id"`
	Started  time.Time `json:"started"`
	UptimeMS float64   `json:"uptime_ms"`
}

// listenerJSON is one listening socket the supervisor holds.
type listenerJSON struct {
	Name    string `json:"name"`
	Network string `json:"network"`
	Address string `json:"address"`
	// Source is "bound" (by this supervisor), "systemd" (socket activation
	// or the fd store) or "adopted" (taken back from a running incumbent).
	Source string `json:"source"`
}

// snapshotJSON is the incumbent's own report (its StateSnapshot).
type snapshotJSON struct {
	PID                  int       `json:"pid"`
	BuildID              string    `json:"build_id"`
	Started              time.Time `json:"started"`
	ShardCount           uint32    `json:"shards"`
	OpenConns            uint32    `json:"open_conns"`
	LastRevisionPerShard []uint64  `json:"revisions"`
	Listeners            []string  `json:"listeners"`
}

// countersJSON are the supervisor's counters since it started (the same
// numbers as /metrics).
type countersJSON struct {
	Handoffs  uint64 `json:"handoffs"`
	Rollbacks uint64 `json:"rollbacks"`
	Restarts  uint64 `json:"restarts"`
}
