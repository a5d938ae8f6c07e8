package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// writeLog creates a log with n puts ("k1".."kn") and returns its bytes.
func writeLog(t *testing.T, dir string, n int) []byte {
	t.Helper()
	s := openWritable(t, dir)
	for i := 1; i <= n; i++ {
		mustPut(t, s, "k"+strconv.Itoa(i), "v")
	}
	s.Close()
	b, err := os.ReadFile(filepath.Join(dir, LogName))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeFile(t *testing.T, dir string, b []byte) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, LogName), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

const putSize = headerSize + 2 + 1 // key "kN", value "v"

// TestOpen_tornTail: an incomplete or CRC-failing last record is a torn
// tail. Open keeps the good records and writes nothing; StartWrites cuts
// the tail off, keeps the cut bytes in a .broken file and writes on.
func TestOpen_tornTail(t *testing.T) {
	cases := []struct {
		name   string
		damage func(good []byte) []byte
	}{
		{name: "half a header", damage: func(b []byte) []byte { return append(b, 1, 2, 3) }},
		{name: "half a record", damage: func(b []byte) []byte {
			return append(b, appendRecord(nil, 4, kindPut, "k4", []byte("v"))[:putSize-2]...)
		}},
		{name: "bad CRC on last record", damage: func(b []byte) []byte {
			b[len(b)-1] ^= 0xff
			return b
		}},
		{name: "zeros", damage: func(b []byte) []byte { return append(b, make([]byte, 4096)...) }},
		{name: "garbage", damage: func(b []byte) []byte { return append(b, []byte(strings.Repeat("torn!", 100))...) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			good := writeLog(t, dir, 3)
			damaged := tc.damage(append([]byte(nil), good...))
			writeFile(t, dir, damaged)
			keep := int64(len(good))
			if tc.name == "bad CRC on last record" {
				keep -= putSize
			}
			checkTornRepair(t, dir, damaged, keep)
		})
	}
}

// checkTornRepair opens a damaged log whose good part is damaged[:keep].
func checkTornRepair(t *testing.T, dir string, damaged []byte, keep int64) {
	t.Helper()
	s, err := Open(dir, quiet)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer s.Close()
	if wantRev := uint64(keep / putSize); s.LastRevision() != wantRev {
		t.Errorf("LastRevision = %d, want %d", s.LastRevision(), wantRev)
	}
	if got, _ := os.ReadFile(s.Path()); len(got) != len(damaged) {
		t.Fatalf("Open changed the log (%d bytes, was %d); Open must not write", len(got), len(damaged))
	}
	if err := s.StartWrites(); err != nil {
		t.Fatalf("StartWrites: %v", err)
	}
	cut, err := os.ReadFile(filepath.Join(dir, LogName+"."+strconv.FormatInt(keep, 10)+".broken"))
	if err != nil || string(cut) != string(damaged[keep:]) {
		t.Errorf(".broken file holds %q (err %v), want the cut bytes %q", cut, err, damaged[keep:])
	}
	mustPut(t, s, "new", "x")
	s.Close()
	r := openWritable(t, dir)
	wantValue(t, r, "new", "x")
	if fi, _ := os.Stat(r.Path()); fi.Size() != keep+headerSize+3+1 {
		t.Errorf("log is %d bytes after repair and one put, want %d", fi.Size(), keep+headerSize+4)
	}
}

// TestOpen_corruptMiddleRefused: a bad record followed by good ones is
// damage to acknowledged data: Open refuses with an error naming the file
// and the offset, and changes nothing.
func TestOpen_corruptMiddleRefused(t *testing.T) {
	cases := []struct {
		name   string
		offset int // byte to flip, inside the second record
	}{
		{name: "value byte", offset: 2*putSize - 1},
		{name: "length field", offset: putSize},
		{name: "CRC field", offset: putSize + 5},
		{name: "op byte", offset: putSize + 16},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			b := writeLog(t, dir, 4)
			b[tc.offset] ^= 0x40
			writeFile(t, dir, b)
			_, err := Open(dir, quiet)
			var ce *CorruptError
			if !errors.As(err, &ce) || !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Open: %v, want a *CorruptError", err)
			}
			if ce.Offset != putSize || ce.Path != filepath.Join(dir, LogName) {
				t.Errorf("error names %s offset %d, want %s offset %d", ce.Path, ce.Offset, filepath.Join(dir, LogName), putSize)
			}
			if !strings.Contains(err.Error(), ce.Path) || !strings.Contains(err.Error(), fmt.Sprintf("offset %d", putSize)) {
				t.Errorf("message %q does not name file and offset", err)
			}
			if got, _ := os.ReadFile(filepath.Join(dir, LogName)); string(got) != string(b) {
				t.Error("Open changed a corrupt log")
			}
		})
	}
}

// TestOpen_inconsistentRecordsRefused: records with valid CRCs that
// contradict each other are refused too.
func TestOpen_inconsistentRecordsRefused(t *testing.T) {
	put1 := appendRecord(nil, 1, kindPut, "a", []byte("1"))
	put2 := appendRecord(nil, 2, kindPut, "b", []byte("2"))
	good := footer{lastRev: 2, records: 2, fingerprint: fingerprintOf(t, put1, put2)}
	cases := []struct {
		name string
		log  [][]byte
	}{
		{name: "revision gap", log: [][]byte{put1, appendRecord(nil, 3, kindPut, "b", nil)}},
		{name: "revision repeated", log: [][]byte{put1, appendRecord(nil, 1, kindPut, "b", nil)}},
		{name: "footer revision", log: [][]byte{put1, put2, footerRec(footer{lastRev: 1, records: 2, fingerprint: good.fingerprint})}},
		{name: "footer count", log: [][]byte{put1, put2, footerRec(footer{lastRev: 2, records: 1, fingerprint: good.fingerprint})}},
		{name: "footer fingerprint", log: [][]byte{put1, put2, footerRec(footer{lastRev: 2, records: 2})}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			var b []byte
			for _, r := range tc.log {
				b = append(b, r...)
			}
			writeFile(t, dir, append(b, put2...)) // something follows: never a torn tail
			if _, err := Open(dir, quiet); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Open: %v, want ErrCorrupt", err)
			}
		})
	}
	t.Run("valid footer accepted", func(t *testing.T) {
		dir := t.TempDir()
		writeFile(t, dir, append(append(append([]byte(nil), put1...), put2...), footerRec(good)...))
		s, err := Open(dir, quiet)
		if err != nil || !s.OpenedSealed() {
			t.Fatalf("Open: %v (sealed %v)", err, s != nil && s.OpenedSealed())
		}
		s.Close()
	})
}

func footerRec(f footer) []byte {
	return appendRecord(nil, f.lastRev, kindFooter, "", f.encode())
}

// fingerprintOf opens records as a log and returns its fingerprint.
func fingerprintOf(t *testing.T, recs ...[]byte) [32]byte {
	t.Helper()
	dir := t.TempDir()
	var b []byte
	for _, r := range recs {
		b = append(b, r...)
	}
	writeFile(t, dir, b)
	s, err := Open(dir, quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	return s.Fingerprint()
}

// TestOpen_sealedStoreContinuesAfterAbortedHandoff models the incumbent's
// ResumeAfterAbort: reopen the sealed log from disk and write on.
func TestOpen_sealedStoreContinuesAfterAbortedHandoff(t *testing.T) {
	dir := t.TempDir()
	s := openWritable(t, dir)
	mustPut(t, s, "a", "1")
	if _, err := s.Seal(context.Background()); err != nil {
		t.Fatal(err)
	}
	s.Close()
	r := openWritable(t, dir)
	if rev := mustPut(t, r, "a", "2"); rev != 2 {
		t.Fatalf("revision after reopen = %d, want 2", rev)
	}
	wantValue(t, r, "a", "2")
}
