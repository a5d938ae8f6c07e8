package store

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzOpen: no log content makes Open panic. Open either refuses with
// ErrCorrupt or accepts; an accepted log can be written and reopened, and
// the reopened store continues exactly where the first one ended.
func FuzzOpen(f *testing.F) {
	put1 := appendRecord(nil, 1, kindPut, "a", []byte("1"))
	put2 := appendRecord(nil, 2, kindPut, "b", []byte("2"))
	f.Add(put1)
	f.Add(append(append([]byte(nil), put1...), put2...))
	f.Add(append(append([]byte(nil), put1...), put2[:10]...))
	f.Add(append(append([]byte(nil), put2...), put1...))
	f.Add(appendRecord(nil, 0, kindFooter, "", footer{}.encode()))
	f.Fuzz(func(t *testing.T, log []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, LogName), log, 0o644); err != nil {
			t.Fatal(err)
		}
		s, err := Open(dir, quiet)
		if errors.Is(err, ErrCorrupt) {
			return
		}
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		defer s.Close()
		if err := s.StartWrites(); err != nil {
			t.Fatalf("StartWrites: %v", err)
		}
		rev, err := s.Put(context.Background(), "fuzz", []byte("x"))
		if err != nil || rev != s.LastRevision() {
			t.Fatalf("Put: revision %d, %v", rev, err)
		}
		fp := s.Fingerprint()
		s.Close()
		r, err := Open(dir, quiet)
		if err != nil {
			t.Fatalf("reopen after a write: %v", err)
		}
		defer r.Close()
		if r.LastRevision() != rev || r.Fingerprint() != fp {
			t.Fatalf("reopened at revision %d (want %d), fingerprint match %v", r.LastRevision(), rev, r.Fingerprint() == fp)
		}
	})
}
