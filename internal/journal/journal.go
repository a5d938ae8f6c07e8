package journal

import (
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"strconv"
	"time"

	"github.com/handoff-go/handoff/internal/sysx"
)

// FormatVersion is the version of the record layout this package writes and
// the only one it reads. A reader of another version treats the file as
// corrupt rather than guess at its meaning.
const FormatVersion = 1

// formatName marks the file as a handoff journal.
const formatName = "handoff-journal"

// BrokenSuffix is appended to the journal path to name the copy Read keeps of
// a corrupt journal.
const BrokenSuffix = ".broken"

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Record is the journal content: the last step of the current handoff and who
// takes part in it. Pids are recorded with their process start times so that
// a restarted supervisor can tell the recorded process from a later one that
// reused its pid.
type Record struct {
	// Version is the record layout; Write fills in FormatVersion when zero.
	Version int `json:"version"`
	// Phase is the last step the supervisor completed.
	Phase Phase `json:"phase"`
	// HandoffID is the id from HelloAck (hex), empty when Idle.
	HandoffID string `json:"handoff_id,omitempty"`
	// IncumbentPID and IncumbentStart name the incumbent (start time in clock
	// ticks after boot, as read from /proc/<pid>/stat).
	IncumbentPID   int    `json:"incumbent_pid,omitempty"`
	IncumbentStart uint64 `json:"incumbent_start,omitempty"`
	// IncumbentBinary is the resolved path of the incumbent's executable:
	// what a restart after a crash of the incumbent runs.
	IncumbentBinary string `json:"incumbent_binary,omitempty"`
	// SuccessorPID and SuccessorStart name the spawned successor.
	SuccessorPID   int    `json:"successor_pid,omitempty"`
	SuccessorStart uint64 `json:"successor_start,omitempty"`
	// Binary is the resolved path of the successor's executable.
	Binary string `json:"binary,omitempty"`
	// DryRun marks a canary start that never touches the incumbent.
	DryRun bool `json:"dry_run,omitempty"`
	// AbortReason says why the handoff is aborting, in phases Aborting and
	// ResumingAfterAbort.
	AbortReason string `json:"abort_reason,omitempty"`
	// StartedAt is when the handoff began; UpdatedAt when this record was made.
	StartedAt time.Time `json:"started_at,omitzero"`
	UpdatedAt time.Time `json:"updated_at,omitzero"`
}

// envelope is the file layout: the record's JSON as stored, and its checksum.
type envelope struct {
	Format string          `json:"format"`
	CRC32C string          `json:"crc32c"`
	Record json.RawMessage `json:"record"`
}

// Write replaces the journal at path with r, durably: when it returns nil,
// the record survives a crash of the process or of the machine. A crash
// during Write leaves the previous record intact (and possibly a temporary
// file beside it, which Read ignores).
func Write(path string, r Record) error {
	data, err := encode(r)
	if err != nil {
		return fmt.Errorf("handoff: journal %s: %w", path, err)
	}
	return sysx.WriteFileAtomic(path, data, 0o644)
}

// Clear records that no handoff is in progress.
func Clear(path string) error {
	return Write(path, Record{Phase: Idle, UpdatedAt: time.Now().UTC()})
}

// Read returns the record at path. A missing file means the supervisor never
// recorded a handoff: Read returns Record{Version: FormatVersion, Phase: Idle}
// and a nil error. A file that is not a valid journal (bad JSON, checksum
// mismatch, unknown version or phase) yields an error wrapping [ErrCorrupt];
// its bytes are then kept at path+[BrokenSuffix] for an operator, and the
// caller decides how to recover (the lock holder and the control socket owner
// are the ground truth).
func Read(path string) (Record, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return Record{Version: FormatVersion, Phase: Idle}, nil
	}
	if err != nil {
		return Record{}, fmt.Errorf("handoff: read journal: %w", err)
	}
	r, err := decode(data)
	if err != nil {
		return Record{}, corruptError(path, data, err)
	}
	return r, nil
}

func corruptError(path string, data []byte, cause error) error {
	broken := path + BrokenSuffix
	if err := sysx.WriteFileAtomic(broken, data, 0o644); err != nil {
		return fmt.Errorf("handoff: journal %s: %w (%w); keeping a copy failed: %w", path, ErrCorrupt, cause, err)
	}
	return fmt.Errorf("handoff: journal %s: %w (%w); a copy is kept at %s", path, ErrCorrupt, cause, broken)
}

func encode(r Record) ([]byte, error) {
	if r.Version == 0 {
		r.Version = FormatVersion
	}
	if r.Version != FormatVersion {
		return nil, fmt.Errorf("record version %d, this build writes %d", r.Version, FormatVersion)
	}
	body, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	env := envelope{Format: formatName, CRC32C: checksum(body), Record: body}
	data, err := json.Marshal(env)
	if err != nil {
		return nil, err
	}
	return append(data, '\n'), nil
}

// decode checks the envelope and the checksum over the record bytes exactly
// as stored, then the record itself.
func decode(data []byte) (Record, error) {
	var env envelope
	if err := json.Unmarshal(data, &env); err != nil {
		return Record{}, err
	}
	if env.Format != formatName {
		return Record{}, fmt.Errorf("format %q, want %q", env.Format, formatName)
	}
	if got := checksum(env.Record); got != env.CRC32C {
		return Record{}, fmt.Errorf("checksum %s, stored %q", got, env.CRC32C)
	}
	var r Record
	if err := json.Unmarshal(env.Record, &r); err != nil {
		return Record{}, err
	}
	if r.Version != FormatVersion {
		return Record{}, fmt.Errorf("record version %d, this build reads %d", r.Version, FormatVersion)
	}
	return r, nil
}

func checksum(body []byte) string {
	return fmt.Sprintf("%08x", crc32.Checksum(body, castagnoli))
}

// String describes r for logs.
func (r Record) String() string {
	return "journal{" + r.Phase.String() + " id=" + r.HandoffID +
		" incumbent=" + strconv.Itoa(r.IncumbentPID) + " successor=" + strconv.Itoa(r.SuccessorPID) + "}"
}
