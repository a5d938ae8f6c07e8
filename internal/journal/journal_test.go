package journal

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/handoff-go/handoff/internal/sysx"
	"github.com/handoff-go/handoff/internal/testproc"
)

func testRecord() Record {
	return Record{
		Phase:          Committed,
		HandoffID:      "6f1c2a9b8e7d4c3b2a1908f7e6d5c4b3",
		IncumbentPID:   4242,
		IncumbentStart: 987654,
		SuccessorPID:   4343,
		SuccessorStart: 987700,
		Binary:         "/usr/local/bin/kvd-next",
		AbortReason:    "",
		StartedAt:      time.Date(2025, 11, 25, 22, 0, 0, 123456789, time.UTC),
		UpdatedAt:      time.Date(2025, 11, 25, 22, 0, 3, 5, time.UTC),
	}
}

func wantRecord(t *testing.T, got, want Record) {
	t.Helper()
	if want.Version == 0 {
		want.Version = FormatVersion
	}
	if !got.StartedAt.Equal(want.StartedAt) || !got.UpdatedAt.Equal(want.UpdatedAt) {
		t.Fatalf("times %v %v, want %v %v", got.StartedAt, got.UpdatedAt, want.StartedAt, want.UpdatedAt)
	}
	got.StartedAt, got.UpdatedAt, want.StartedAt, want.UpdatedAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	if got != want {
		t.Fatalf("record %+v, want %+v", got, want)
	}
}

func TestWriteRead_roundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kvd.journal")
	for _, r := range []Record{
		testRecord(),
		{Phase: Aborting, HandoffID: "ab", SuccessorPID: 7, AbortReason: "successor exited", DryRun: true},
		{Phase: ResumingAfterAbort, IncumbentPID: 1, IncumbentStart: 2},
	} {
		if err := Write(path, r); err != nil {
			t.Fatal(err)
		}
		got, err := Read(path)
		if err != nil {
			t.Fatal(err)
		}
		wantRecord(t, got, r)
		assertNoTemps(t, path, 0)
	}
	if err := Clear(path); err != nil {
		t.Fatal(err)
	}
	if got, err := Read(path); err != nil || got.Phase != Idle || got.HandoffID != "" || got.UpdatedAt.IsZero() {
		t.Fatalf("after Clear: %+v, %v; want an Idle record with a timestamp", got, err)
	}
}

func TestRead_missingIsIdle(t *testing.T) {
	got, err := Read(filepath.Join(t.TempDir(), "never-written"))
	if err != nil {
		t.Fatal(err)
	}
	wantRecord(t, got, Record{Phase: Idle})
}

// DESIGN section 6: a crash before the rename leaves the old record intact.
func TestWrite_crashBeforeRenameKeepsOldRecord(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kvd.journal")
	old := testRecord()
	old.Phase = Sealing
	if err := Write(path, old); err != nil {
		t.Fatal(err)
	}
	// What a Write killed between writing its temporary file and renaming
	// it leaves behind: a (here half-written) temporary file.
	full, err := encode(testRecord())
	if err != nil {
		t.Fatal(err)
	}
	crashed := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp-deadbeef")
	if err := os.WriteFile(crashed, full[:len(full)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := Read(path)
	if err != nil {
		t.Fatal(err)
	}
	wantRecord(t, got, old)

	if err := Write(path, testRecord()); err != nil {
		t.Fatal(err)
	}
	if got, err = Read(path); err != nil {
		t.Fatal(err)
	}
	wantRecord(t, got, testRecord())
	assertNoTemps(t, path, 1) // only the simulated crash's file
}

func TestRead_corruptKeepsBrokenCopy(t *testing.T) {
	valid, err := encode(testRecord())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		data []byte
	}{
		{name: "empty", data: nil},
		{name: "not json", data: []byte("phase=Committed\n")},
		{name: "truncated", data: valid[:len(valid)-10]},
		{name: "flipped digit in body", data: bytes.Replace(valid, []byte("4242"), []byte("4243"), 1)},
		{name: "wrong checksum", data: rewrap(t, valid, func(e *envelope) { e.CRC32C = "00000000" })},
		{name: "other format", data: rewrap(t, valid, func(e *envelope) { e.Format = "something-else" })},
		{name: "unknown version", data: resealed(t, func(m map[string]any) { m["version"] = 2 })},
		{name: "unknown phase", data: resealed(t, func(m map[string]any) { m["phase"] = "Sleeping" })},
		{name: "numeric phase", data: resealed(t, func(m map[string]any) { m["phase"] = 5 })},
		{name: "trailing garbage", data: append(bytes.Clone(valid), "{}"...)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "kvd.journal")
			if err := os.WriteFile(path, tc.data, 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := Read(path)
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Read: %v, want ErrCorrupt", err)
			}
			if !strings.Contains(err.Error(), path+BrokenSuffix) {
				t.Fatalf("error %q does not name the kept copy", err)
			}
			kept, err := os.ReadFile(path + BrokenSuffix)
			if err != nil || !bytes.Equal(kept, tc.data) {
				t.Fatalf("broken copy %q (%v), want the original %q", kept, err, tc.data)
			}
		})
	}
}

// rewrap edits the envelope of a valid file, keeping the record bytes.
func rewrap(t *testing.T, valid []byte, edit func(*envelope)) []byte {
	t.Helper()
	var env envelope
	if err := json.Unmarshal(valid, &env); err != nil {
		t.Fatal(err)
	}
	edit(&env)
	out, err := json.Marshal(env)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// resealed builds a file whose checksum is right but whose record is not one
// this build accepts.
func resealed(t *testing.T, edit func(map[string]any)) []byte {
	t.Helper()
	m := map[string]any{"version": FormatVersion, "phase": "Committed"}
	edit(m)
	body, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	out, err := json.Marshal(envelope{Format: formatName, CRC32C: checksum(body), Record: body})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestWrite_rejectsBadRecords(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kvd.journal")
	if err := Write(path, Record{Phase: numPhases}); !errors.Is(err, ErrUnknownPhase) {
		t.Fatalf("Write with an invalid phase: %v, want ErrUnknownPhase", err)
	}
	if err := Write(path, Record{Version: FormatVersion + 1}); err == nil {
		t.Fatal("Write with a future version succeeded")
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a rejected Write created the journal: %v", err)
	}
	assertNoTemps(t, path, 0)
}

// Durability smoke test: a record written by a process that is killed with
// SIGKILL right after Write returned is there for the next reader.
func TestWrite_survivesSIGKILLOfWriter(t *testing.T) {
	testproc.CheckLeaks(t)
	path := filepath.Join(t.TempDir(), "kvd.journal")
	if err := Write(path, Record{Phase: Sealing}); err != nil {
		t.Fatal(err)
	}
	c := roles.Start(t, "write-journal", testproc.Spec{Env: []string{pathEnv + "=" + path}})
	c.Expect(t, "written")
	c.Crash(t) // no deferred cleanup, no flush
	got, err := Read(path)
	if err != nil {
		t.Fatal(err)
	}
	wantRecord(t, got, testRecord())
	assertNoTemps(t, path, 0)
}

func assertNoTemps(t *testing.T, path string, want int) {
	t.Helper()
	temps, err := filepath.Glob(filepath.Join(filepath.Dir(path), sysx.TempPattern(path)))
	if err != nil {
		t.Fatal(err)
	}
	if len(temps) != want {
		t.Fatalf("temporary files %v, want %d", temps, want)
	}
}
