package handoff

import "context"

// Drainable is what a daemon implements so that the library can hand it off.
// The library calls the hooks in a fixed order during a swap (see DESIGN and
// ARCHITECTURE.md): Drain, then Seal, and ResumeAfterAbort whenever a swap is
// abandoned after Drain started. Hooks may take as long as they need; the
// library sends heartbeats while they run, and ctx carries the deadline.
type Drainable interface {
	// Drain stops accepting new connections, stops background writers,
	// finishes in-flight requests and fsyncs, so that no acknowledged write
	// is lost, and tells clients to move (for HTTP, every further response
	// says Connection: close). Requests on connections already open may go
	// on until Seal, writes included: this process still holds the data-dir
	// lock, every write it acknowledges is durable before Seal, and answering
	// them instead of refusing them is what keeps clients from seeing errors.
	// A daemon may also refuse new writes here. ctx expires at the drain
	// grace.
	Drain(ctx context.Context) (DrainReport, error)

	// Seal flushes and closes the writer state (per shard: flush, footer,
	// fsync, close) and closes every remaining client connection cleanly,
	// between requests. After Seal returns successfully the daemon must
	// answer no further request: a successor may acknowledge writes this
	// process cannot see. The library releases the data-dir lock after a
	// successful Seal. Seal may report progress with [ReportSealProgress].
	Seal(ctx context.Context) (SealReport, error)

	// ResumeAfterAbort undoes Drain (and Seal, if it ran): it reopens writer
	// state from the data directory, never from memory, and accepts again.
	// It must be idempotent. When it is called after a successful Seal the
	// library already holds the data-dir lock again.
	ResumeAfterAbort(ctx context.Context) error

	// SnapshotState is best-effort introspection for status reports. It must
	// not block.
	SnapshotState() StateSnapshot
}

// DrainReport is the result of [Drainable.Drain].
type DrainReport struct {
	// OpenConnsRemaining counts client connections still open (reads may
	// continue on them until Seal).
	OpenConnsRemaining uint32
	// AcceptClosed is true when the daemon no longer accepts connections.
	AcceptClosed bool
}

// Fingerprint identifies the content of a sealed data directory. The zero
// value means "not reported"; the supervisor compares fingerprints only when
// both sides report one.
type Fingerprint [32]byte

// IsZero reports whether f is the zero (unreported) fingerprint.
func (f Fingerprint) IsZero() bool { return f == Fingerprint{} }

// SealReport is the result of [Drainable.Seal].
type SealReport struct {
	// LastRevisionPerShard is the last durable revision of each shard; the
	// successor must advertise at least these.
	LastRevisionPerShard []uint64
	// DataDirFingerprint optionally identifies the sealed state.
	DataDirFingerprint Fingerprint
}

// StateSnapshot is a daemon's state for status reports.
type StateSnapshot struct {
	ShardCount           uint32
	OpenConns            uint32
	LastRevisionPerShard []uint64
}

// ReadinessSnapshot is what a successor reports in Ready.
type ReadinessSnapshot struct {
	// ListeningOn names the listeners the successor serves (for logs).
	ListeningOn []string
	// HealthzOK is false when the successor knows it cannot serve; the
	// supervisor then aborts and the incumbent resumes.
	HealthzOK bool
	// AdvertisedRevisionPerShard is the revision per shard the successor
	// opened; it must not be behind the sealed revisions.
	AdvertisedRevisionPerShard []uint64
	// DataDirFingerprint optionally identifies the state the successor
	// opened; compared with the seal's when both are set.
	DataDirFingerprint Fingerprint
}

// SealProgress is a progress report from a long [Drainable.Seal].
type SealProgress struct {
	ShardsSealed uint32
	ShardsTotal  uint32
	LastRevision uint64
}
