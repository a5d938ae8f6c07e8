package journal

import "errors"

// Sentinel errors of the journal.
var (
	// ErrCorrupt means the journal file exists but cannot be trusted: it is
	// not valid JSON, its checksum does not match, or its format version is
	// unknown. Read keeps a copy of the file beside it for inspection.
	ErrCorrupt = errors.New("handoff: supervisor journal corrupt")

	// ErrUnknownPhase means a phase name or number is not one of the
	// defined phases.
	ErrUnknownPhase = errors.New("handoff: unknown journal phase")
)
