package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/handoff-go/handoff/internal/testproc"
)

var quiet = WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))

// openWritable opens dir and starts writes; the store is closed at cleanup.
func openWritable(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := Open(dir, quiet)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.StartWrites(); err != nil {
		t.Fatalf("StartWrites: %v", err)
	}
	return s
}

func mustPut(t *testing.T, s *Store, key, value string) uint64 {
	t.Helper()
	rev, err := s.Put(context.Background(), key, []byte(value))
	if err != nil {
		t.Fatalf("Put(%q): %v", key, err)
	}
	return rev
}

func wantValue(t *testing.T, s *Store, key, want string) {
	t.Helper()
	got, ok := s.Get(key)
	if !ok || string(got) != want {
		t.Errorf("Get(%q) = %q, %v; want %q", key, got, ok, want)
	}
}

func TestStore_roundTrip(t *testing.T) {
	dir := t.TempDir()
	s := openWritable(t, dir)
	for i := range 10 {
		if rev := mustPut(t, s, fmt.Sprint("k", i%4), fmt.Sprint("v", i)); rev != uint64(i+1) {
			t.Fatalf("Put %d got revision %d, want %d (revisions are dense)", i, rev, i+1)
		}
	}
	mustPut(t, s, "empty", "")
	fp := s.Fingerprint()
	s.Close()

	r := openWritable(t, dir)
	for i, last := range []int{8, 9, 6, 7} { // the last write to k0..k3
		wantValue(t, r, fmt.Sprint("k", i), fmt.Sprint("v", last))
	}
	wantValue(t, r, "empty", "")
	if _, ok := r.Get("missing"); ok {
		t.Error("Get(missing) found a value")
	}
	if r.LastRevision() != 11 || r.Len() != 5 {
		t.Errorf("reopened: revision %d, %d keys; want 11, 5", r.LastRevision(), r.Len())
	}
	if r.Fingerprint() != fp {
		t.Error("fingerprint after reopen differs from the writer's")
	}
	if r.OpenedSealed() {
		t.Error("OpenedSealed on a log without footer")
	}
}

func TestStore_writesNeedStartWrites(t *testing.T) {
	s, err := Open(t.TempDir(), quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Put(context.Background(), "k", nil); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("Put before StartWrites: %v, want ErrReadOnly", err)
	}
	if _, err := os.Stat(s.Path()); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Open created the log (stat: %v); Open must not write", err)
	}
}

func TestStore_rejectsBadKeysAndValues(t *testing.T) {
	s := openWritable(t, t.TempDir())
	cases := []struct {
		name  string
		key   string
		value []byte
		want  error
	}{
		{name: "empty key", key: "", want: ErrKey},
		{name: "long key", key: strings.Repeat("k", MaxKeySize+1), want: ErrKey},
		{name: "long value", key: "k", value: make([]byte, MaxValueSize+1), want: ErrTooLarge},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := s.Put(context.Background(), tc.key, tc.value); !errors.Is(err, tc.want) {
				t.Fatalf("Put: %v, want %v", err, tc.want)
			}
		})
	}
}

// TestStore_groupCommitConcurrent: 100 writers at once; every Put that
// returned must be in the log (reopen finds it), and the writes shared
// fsyncs (fewer batches than writes is not asserted: it depends on timing).
func TestStore_groupCommitConcurrent(t *testing.T) {
	dir := t.TempDir()
	s := openWritable(t, dir)
	const writers, each = 100, 20
	revs := make(chan uint64, writers*each)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				key := fmt.Sprintf("w%d-%d", w, i)
				rev, err := s.Put(context.Background(), key, []byte(key))
				if err != nil {
					t.Errorf("Put(%s): %v", key, err)
					return
				}
				if got, ok := s.Get(key); !ok || string(got) != key {
					t.Errorf("Get(%s) right after Put = %q, %v", key, got, ok)
				}
				revs <- rev
			}
		})
	}
	wg.Wait()
	close(revs)
	seen := map[uint64]bool{}
	for r := range revs {
		if seen[r] {
			t.Fatalf("revision %d returned twice", r)
		}
		seen[r] = true
	}
	s.Close()

	r := openWritable(t, dir)
	if r.LastRevision() != writers*each || r.Len() != writers*each {
		t.Fatalf("reopened: revision %d, %d keys; want %d each", r.LastRevision(), r.Len(), writers*each)
	}
	for w := range writers {
		for i := range each {
			key := fmt.Sprintf("w%d-%d", w, i)
			wantValue(t, r, key, key)
		}
	}
}

func TestStore_smallBatchesStillCommitEverything(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, quiet, WithMaxBatchBytes(1))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.StartWrites(); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			if _, err := s.Put(context.Background(), strconv.Itoa(i), []byte("v")); err != nil {
				t.Errorf("Put: %v", err)
			}
		})
	}
	wg.Wait()
	if s.LastRevision() != 50 || s.Len() != 50 {
		t.Fatalf("revision %d, %d keys; want 50 each", s.LastRevision(), s.Len())
	}
}

// TestStore_sealWritesFooter: Seal refuses later writes, writes a footer
// that Open validates, and the fingerprint it reports is the one a
// successor computes on open.
func TestStore_sealWritesFooter(t *testing.T) {
	dir := t.TempDir()
	s := openWritable(t, dir)
	mustPut(t, s, "a", "1")
	mustPut(t, s, "b", "2")
	info, err := s.Seal(context.Background())
	if err != nil {
		t.Fatalf("Seal: %v", err)
	}
	if info.LastRevision != 2 || info.Records != 2 {
		t.Errorf("SealInfo = %+v, want last revision 2, 2 records", info)
	}
	if _, err := s.Put(context.Background(), "c", nil); !errors.Is(err, ErrSealed) {
		t.Errorf("Put after Seal: %v, want ErrSealed", err)
	}
	if _, err := s.Seal(context.Background()); !errors.Is(err, ErrSealed) {
		t.Errorf("second Seal: %v, want ErrSealed", err)
	}
	if !s.Sealed() {
		t.Error("Sealed() = false after Seal")
	}
	wantValue(t, s, "a", "1") // reads of a sealed store still work

	r, err := Open(dir, quiet)
	if err != nil {
		t.Fatalf("Open sealed log: %v", err)
	}
	defer r.Close()
	if !r.OpenedSealed() || r.Fingerprint() != info.Fingerprint || r.LastRevision() != 2 {
		t.Errorf("reopened: sealed %v, revision %d, fingerprint match %v",
			r.OpenedSealed(), r.LastRevision(), r.Fingerprint() == info.Fingerprint)
	}
}

// TestStore_appendsAfterFooter: a sealed log reopened for writing keeps its
// footer and continues after it; a second seal validates both footers.
func TestStore_appendsAfterFooter(t *testing.T) {
	dir := t.TempDir()
	s := openWritable(t, dir)
	mustPut(t, s, "a", "1")
	first, err := s.Seal(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	s.Close()

	r := openWritable(t, dir)
	if rev := mustPut(t, r, "b", "2"); rev != 2 {
		t.Fatalf("first write after footer got revision %d, want 2", rev)
	}
	second, err := r.Seal(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	if first.Fingerprint == second.Fingerprint {
		t.Error("two different logs share a fingerprint")
	}

	q := openWritable(t, dir)
	wantValue(t, q, "a", "1")
	wantValue(t, q, "b", "2")
	if q.LastRevision() != 2 || q.Fingerprint() != second.Fingerprint {
		t.Errorf("after two seals: revision %d, fingerprint match %v", q.LastRevision(), q.Fingerprint() == second.Fingerprint)
	}
	fi, err := os.Stat(filepath.Join(dir, LogName))
	if err != nil {
		t.Fatal(err)
	}
	want := int64(2*footerSize + 2*(headerSize+2))
	if fi.Size() != want {
		t.Errorf("log is %d bytes, want %d (two puts and two footers)", fi.Size(), want)
	}
}

func TestStore_closeIsIdempotentAndFinal(t *testing.T) {
	s := openWritable(t, t.TempDir())
	mustPut(t, s, "a", "1")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := s.Put(context.Background(), "b", nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("Put after Close: %v, want ErrClosed", err)
	}
	if err := s.Sync(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Sync after Close: %v, want ErrClosed", err)
	}
}

func TestStore_syncIsABarrier(t *testing.T) {
	s := openWritable(t, t.TempDir())
	mustPut(t, s, "a", "1")
	if err := s.Sync(context.Background()); err != nil {
		t.Fatalf("Sync: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Put(ctx, "b", []byte("2")); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("Put with cancelled ctx: %v", err)
	}
	// Whether or not the cancelled Put reported success, Sync waits for it.
	if err := s.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	wantValue(t, s, "b", "2")
}

func TestPut_durableWhenChildKilledRightAfterAck(t *testing.T) {
	dir := t.TempDir()
	c := roles.Start(t, "writer", testproc.Spec{Env: []string{"KVD_STORE_DIR=" + dir}})
	acked := map[string]uint64{}
	record := func(line string) {
		var key string
		var rev uint64
		if _, err := fmt.Sscanf(line, "ack %s %d", &key, &rev); err != nil {
			t.Fatalf("child said %q: %v", line, err)
		}
		acked[key] = rev
	}
	for len(acked) < 2000 {
		record(c.Line(t))
	}
	c.Kill() // SIGKILL while the writers are mid-flight
	for _, l := range completeLines(c.Output(t)) {
		record(l)
	}

	s := openWritable(t, dir)
	for key, rev := range acked {
		wantValue(t, s, key, key)
		if rev > s.LastRevision() {
			t.Fatalf("acknowledged revision %d is beyond the reopened log's %d", rev, s.LastRevision())
		}
	}
	// The reopened store can write on.
	if rev := mustPut(t, s, "after", "crash"); rev != s.LastRevision() {
		t.Fatalf("Put after recovery got revision %d, LastRevision %d", rev, s.LastRevision())
	}
}

func TestStore_writeErrFollowsState(t *testing.T) {
	s, err := Open(t.TempDir(), quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	steps := []struct {
		name string
		do   func() error
		want error
	}{
		{name: "opened", do: func() error { return nil }, want: ErrReadOnly},
		{name: "writing", do: s.StartWrites, want: nil},
		{name: "sealed", do: func() error { _, err := s.Seal(context.Background()); return err }, want: ErrSealed},
		{name: "closed", do: s.Close, want: ErrClosed},
	}
	for _, st := range steps {
		if err := st.do(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if err := s.WriteErr(); !errors.Is(err, st.want) || (st.want == nil && err != nil) {
			t.Fatalf("%s: WriteErr = %v, want %v", st.name, err, st.want)
		}
	}
}
