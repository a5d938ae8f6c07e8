package wire

import (
	"fmt"
)

// Protocol versions this implementation speaks. Negotiation picks the highest
// version inside both peers' ranges.
const (
	MinVersion uint16 = 1
	MaxVersion uint16 = 1
)

// HelloFrameVersion is the frame version every Hello and HelloAck is encoded
// with, whatever the peers later agree on, so that any two implementations can
// always read each other's first message.
const HelloFrameVersion uint16 = 1

// Capabilities this implementation knows. Peers intersect their sets; a
// feature is used only when both sides list it.
const (
	CapSealProgress = "seal-progress"
	CapFingerprint  = "fingerprint"
	CapListenerFDs  = "listener-fds"
	CapSnapshot     = "snapshot"
)

// DefaultCapabilities is the capability set this implementation offers.
var DefaultCapabilities = []string{CapSealProgress, CapFingerprint, CapListenerFDs, CapSnapshot}

// Type identifies a message on the wire. Values are part of the protocol and
// never change meaning.
type Type uint8

// The message types of PROTOCOL.md.
const (
	TypeHello            Type = 1
	TypeHelloAck         Type = 2
	TypePrepareHandoff   Type = 3
	TypeDrained          Type = 4
	TypeSealRequest      Type = 5
	TypeSealProgress     Type = 6
	TypeSealComplete     Type = 7
	TypeSealFailed       Type = 8
	TypeBegin            Type = 9
	TypeReady            Type = 10
	TypeCommit           Type = 11
	TypeAbort            Type = 12
	TypeResumeAfterAbort Type = 13
	TypeHeartbeat        Type = 14
	TypeListenersRequest Type = 15
	TypeListeners        Type = 16
	TypeSnapshotRequest  Type = 17
	TypeSnapshot         Type = 18
	TypeDrainFailed      Type = 19
)

var typeNames = map[Type]string{
	TypeHello: "Hello", TypeHelloAck: "HelloAck", TypePrepareHandoff: "PrepareHandoff",
	TypeDrained: "Drained", TypeSealRequest: "SealRequest", TypeSealProgress: "SealProgress",
	TypeSealComplete: "SealComplete", TypeSealFailed: "SealFailed", TypeBegin: "Begin",
	TypeReady: "Ready", TypeCommit: "Commit", TypeAbort: "Abort",
	TypeResumeAfterAbort: "ResumeAfterAbort", TypeHeartbeat: "Heartbeat",
	TypeListenersRequest: "ListenersRequest", TypeListeners: "Listeners",
	TypeSnapshotRequest: "SnapshotRequest", TypeSnapshot: "Snapshot",
	TypeDrainFailed: "DrainFailed",
}

// String returns the message name used in PROTOCOL.md and in logs.
func (t Type) String() string {
	if n, ok := typeNames[t]; ok {
		return n
	}
	return fmt.Sprintf("Type(%d)", uint8(t))
}

// Message is one decoded protocol message.
type Message interface {
	// Type returns the wire type of the message.
	Type() Type
}

// Role says which side of the protocol a peer plays.
type Role uint8

// Roles, as sent in Hello.
const (
	RoleSupervisor Role = 1
	RoleIncumbent  Role = 2
	RoleSuccessor  Role = 3
	// RoleClient is a peer that only asks for listeners or a snapshot
	// (a restarted supervisor, `handoff status`); it never starts a swap.
	RoleClient Role = 4
)

// String returns the role's name.
func (r Role) String() string {
	switch r {
	case RoleSupervisor:
		return "supervisor"
	case RoleIncumbent:
		return "incumbent"
	case RoleSuccessor:
		return "successor"
	case RoleClient:
		return "client"
	}
	return fmt.Sprintf("Role(%d)", uint8(r))
}

// AbortReason says why a handoff was abandoned. Values are part of the
// protocol.
type AbortReason uint8

// Abort reasons.
const (
	ReasonUnspecified         AbortReason = 0
	ReasonVersionMismatch     AbortReason = 1
	ReasonTimeout             AbortReason = 2
	ReasonSuccessorExited     AbortReason = 3
	ReasonUnhealthy           AbortReason = 4
	ReasonRevisionBehind      AbortReason = 5
	ReasonFingerprintMismatch AbortReason = 6
	ReasonSealFailed          AbortReason = 7
	ReasonDryRun              AbortReason = 8
	ReasonOperator            AbortReason = 9
	ReasonDrainFailed         AbortReason = 10
	ReasonPeerLost            AbortReason = 11
	ReasonProtocol            AbortReason = 12
	ReasonSpawnFailed         AbortReason = 13
	ReasonIdentity            AbortReason = 14
	ReasonProbeFailed         AbortReason = 15
)

var reasonNames = map[AbortReason]string{
	ReasonUnspecified: "unspecified", ReasonVersionMismatch: "version-mismatch",
	ReasonTimeout: "timeout", ReasonSuccessorExited: "successor-exited",
	ReasonUnhealthy: "unhealthy", ReasonRevisionBehind: "revision-behind",
	ReasonFingerprintMismatch: "fingerprint-mismatch", ReasonSealFailed: "seal-failed",
	ReasonDryRun: "dry-run", ReasonOperator: "operator", ReasonDrainFailed: "drain-failed",
	ReasonPeerLost: "peer-lost", ReasonProtocol: "protocol", ReasonSpawnFailed: "spawn-failed",
	ReasonIdentity: "identity", ReasonProbeFailed: "probe-failed",
}

// String returns the reason's stable, hyphenated name (used in logs, JSON and
// metrics labels).
func (r AbortReason) String() string {
	if n, ok := reasonNames[r]; ok {
		return n
	}
	return fmt.Sprintf("reason-%d", uint8(r))
}

// Hello is the first message on every connection, from the side that did not
// create it: the incumbent on the control socket (answering a connect), the
// successor on its socketpair, or a client.
type Hello struct {
	Role         Role     `cbor:"role"`
	PID          int32    `cbor:"pid"`
	BuildID      string   `cbor:"build_id"`
	MinVersion   uint16   `cbor:"min_version"`
	MaxVersion   uint16   `cbor:"max_version"`
	Capabilities []string `cbor:"caps"`
}

// HelloAck answers Hello with the chosen version and capabilities; the frame
// carries the new handoff id that every later message repeats.
type HelloAck struct {
	Version      uint16   `cbor:"version"`
	Capabilities []string `cbor:"caps"`
	// Role is the role of the side sending the ack.
	Role Role `cbor:"role"`
}

// PrepareHandoff asks the incumbent to drain.
type PrepareHandoff struct {
	SuccessorPID int32 `cbor:"successor_pid"`
	// DeadlineMillis is the time left for the whole handoff, from receipt.
	DeadlineMillis uint64 `cbor:"deadline_ms"`
	// DrainGraceMillis bounds Drainable.Drain.
	DrainGraceMillis uint64 `cbor:"drain_grace_ms"`
}

// Drained reports a finished drain.
type Drained struct {
	OpenConnsRemaining uint32 `cbor:"open_conns"`
	AcceptClosed       bool   `cbor:"accept_closed"`
}

// DrainFailed reports that Drain failed or ran past its grace; the incumbent
// has already resumed.
type DrainFailed struct {
	Reason string `cbor:"reason"`
}

// SealRequest asks the drained incumbent to seal.
type SealRequest struct{}

// SealProgress reports progress of a long seal.
type SealProgress struct {
	ShardsSealed uint32 `cbor:"shards_sealed"`
	ShardsTotal  uint32 `cbor:"shards_total"`
	LastRevision uint64 `cbor:"last_revision"`
}

// SealComplete says the incumbent sealed and released the data-dir lock.
type SealComplete struct {
	LastRevisionPerShard []uint64 `cbor:"revisions"`
	// Fingerprint is 32 bytes, or empty when the daemon reports none.
	Fingerprint []byte `cbor:"fingerprint"`
}

// SealFailed says sealing failed; the incumbent kept the lock and resumed.
type SealFailed struct {
	Reason string `cbor:"reason"`
}

// Begin tells the successor to take the lock and open the sealed state.
type Begin struct{}

// Ready is the successor's readiness report.
type Ready struct {
	ListeningOn                []string `cbor:"listening_on"`
	HealthzOK                  bool     `cbor:"healthz_ok"`
	AdvertisedRevisionPerShard []uint64 `cbor:"revisions"`
	Fingerprint                []byte   `cbor:"fingerprint"`
}

// Commit makes the swap final.
type Commit struct{}

// Abort abandons the handoff.
type Abort struct {
	Reason AbortReason `cbor:"reason"`
	Detail string      `cbor:"detail"`
}

// ResumeAfterAbort tells the incumbent to take its lock back (if it released
// it) and serve again.
type ResumeAfterAbort struct {
	Reason AbortReason `cbor:"reason"`
}

// Heartbeat keeps a waiting peer's liveness clock fresh.
type Heartbeat struct{}

// ListenersRequest asks the incumbent for duplicates of every listener it
// holds (sent by a restarted supervisor).
type ListenersRequest struct{}

// Listeners carries listener names; the fds travel with the same frame as
// SCM_RIGHTS, in the same order.
type Listeners struct {
	Names []string `cbor:"names"`
}

// SnapshotRequest asks the incumbent for its state.
type SnapshotRequest struct{}

// Snapshot is the incumbent's state, for status reports.
type Snapshot struct {
	PID                  int32    `cbor:"pid"`
	BuildID              string   `cbor:"build_id"`
	StartedUnixMillis    int64    `cbor:"started_ms"`
	ShardCount           uint32   `cbor:"shards"`
	OpenConns            uint32   `cbor:"open_conns"`
	LastRevisionPerShard []uint64 `cbor:"revisions"`
	Listeners            []string `cbor:"listeners"`
}

// Type implementations.

func (*Hello) Type() Type            { return TypeHello }
func (*HelloAck) Type() Type         { return TypeHelloAck }
func (*PrepareHandoff) Type() Type   { return TypePrepareHandoff }
func (*Drained) Type() Type          { return TypeDrained }
func (*DrainFailed) Type() Type      { return TypeDrainFailed }
func (*SealRequest) Type() Type      { return TypeSealRequest }
func (*SealProgress) Type() Type     { return TypeSealProgress }
func (*SealComplete) Type() Type     { return TypeSealComplete }
func (*SealFailed) Type() Type       { return TypeSealFailed }
func (*Begin) Type() Type            { return TypeBegin }
func (*Ready) Type() Type            { return TypeReady }
func (*Commit) Type() Type           { return TypeCommit }
func (*Abort) Type() Type            { return TypeAbort }
func (*ResumeAfterAbort) Type() Type { return TypeResumeAfterAbort }
func (*Heartbeat) Type() Type        { return TypeHeartbeat }
func (*ListenersRequest) Type() Type { return TypeListenersRequest }
func (*Listeners) Type() Type        { return TypeListeners }
func (*SnapshotRequest) Type() Type  { return TypeSnapshotRequest }
func (*Snapshot) Type() Type         { return TypeSnapshot }
