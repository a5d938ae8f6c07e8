package store

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
)

// logState is what a scan of the log establishes. Open turns it into a
// Store; the writer continues from it (the hash keeps running).
type logState struct {
	index   map[string][]byte
	lastRev uint64
	records uint64 // put records
	hash    hash.Hash
	end     int64 // offset just after the last good record
	size    int64 // file size when scanned; size > end means a torn tail
	sealed  bool  // the last good record is a footer
}

// scanLog reads the whole log at path, rebuilding the index and the
// fingerprint. A missing file is an empty log.
func scanLog(path string) (*logState, error) {
	st := &logState{index: make(map[string][]byte), hash: sha256.New()}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return nil, fmt.Errorf("kvd: open log: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("kvd: open log: %w", err)
	}
	st.size = fi.Size()
	if err := st.scan(f, path); err != nil {
		return nil, err
	}
	return st, nil
}

// scan applies records until the end of the file or the first bad one.
func (st *logState) scan(f *os.File, path string) error {
	r := bufio.NewReaderSize(io.NewSectionReader(f, 0, st.size), 1<<20)
	var buf []byte
	for st.end < st.size {
		frame, rec, err := readFrame(r, st.size-st.end, &buf)
		if err != nil {
			return st.badFrame(f, path, err)
		}
		if err := st.apply(frame, rec); err != nil {
			return &CorruptError{Path: path, Offset: st.end, Reason: err.Error()}
		}
		st.end += int64(len(frame))
	}
	return nil
}

// readFrame reads the next record; remaining is the number of bytes left in
// the file. buf is reused between calls, so the result aliases it.
func readFrame(r *bufio.Reader, remaining int64, buf *[]byte) ([]byte, record, error) {
	if remaining < headerSize {
		return nil, record{}, errShortFrame
	}
	h, err := r.Peek(headerSize)
	if err != nil {
		return nil, record{}, err
	}
	n, err := frameLen(h)
	if err != nil {
		return nil, record{}, err
	}
	if int64(n) > remaining {
		return nil, record{}, errShortFrame
	}
	if cap(*buf) < n {
		*buf = make([]byte, n)
	}
	frame := (*buf)[:n]
	if _, err := io.ReadFull(r, frame); err != nil {
		return nil, record{}, err
	}
	rec, err := decodeFrame(frame)
	return frame, rec, err
}

// badFrame decides what a bad record at st.end means. An incomplete last
// record is a torn tail. A malformed or CRC-failing record is a torn tail
// only if no valid record follows it anywhere; otherwise it is corruption
// in the middle, which is refused. It returns nil for a torn tail.
func (st *logState) badFrame(f *os.File, path string, cause error) error {
	switch {
	case errors.Is(cause, errShortFrame):
		return nil
	case !errors.Is(cause, errBadHeader) && !errors.Is(cause, errBadCRC):
		return fmt.Errorf("kvd: read log %s at offset %d: %w", path, st.end, cause)
	}
	next, found, err := findValidRecord(f, st.end+1, st.size, st.lastRev)
	if err != nil {
		return fmt.Errorf("kvd: read log %s after offset %d: %w", path, st.end, err)
	}
	if !found {
		return nil
	}
	reason := fmt.Sprintf("%v, and a valid record follows at offset %d", cause, next)
	return &CorruptError{Path: path, Offset: st.end, Reason: reason}
}

// findValidRecord looks for a record that passes every check at any byte
// offset in [from, size) and carries a revision after lastRev. It runs only
// after a bad record, so its cost (one header check per byte, a CRC only
// for the rare header that is structurally sound) does not matter.
func findValidRecord(f *os.File, from, size int64, lastRev uint64) (int64, bool, error) {
	r := bufio.NewReaderSize(io.NewSectionReader(f, from, size-from), maxFrame)
	for pos := from; size-pos >= headerSize; pos++ {
		ok, err := validAt(r, size-pos, lastRev)
		if err != nil || ok {
			return pos, ok, err
		}
		if _, err := r.Discard(1); err != nil {
			return 0, false, err
		}
	}
	return 0, false, nil
}

// validAt reports whether a valid record starts at the reader's position.
func validAt(r *bufio.Reader, remaining int64, lastRev uint64) (bool, error) {
	h, err := r.Peek(headerSize)
	if err != nil {
		return false, err
	}
	n, err := frameLen(h)
	if err != nil || int64(n) > remaining {
		return false, nil
	}
	frame, err := r.Peek(n)
	if err != nil {
		return false, err
	}
	rec, err := decodeFrame(frame)
	return err == nil && rec.rev > lastRev, nil
}

// apply adds one good record to the state.
func (st *logState) apply(frame []byte, rec record) error {
	switch rec.kind {
	case kindPut:
		if rec.rev != st.lastRev+1 {
			return fmt.Errorf("revision %d follows revision %d (revisions are dense)", rec.rev, st.lastRev)
		}
		st.index[string(rec.key)] = bytes.Clone(rec.value)
		st.lastRev = rec.rev
		st.records++
		st.sealed = false
	case kindFooter:
		if err := st.checkFooter(rec); err != nil {
			return err
		}
		st.sealed = true
	}
	st.hash.Write(frame)
	return nil
}

// checkFooter validates a footer against the records before it.
func (st *logState) checkFooter(rec record) error {
	f, err := decodeFooter(rec.value)
	if err != nil {
		return err
	}
	if rec.rev != st.lastRev || f.lastRev != st.lastRev {
		return fmt.Errorf("footer says last revision %d, the records before it end at %d", f.lastRev, st.lastRev)
	}
	if f.records != st.records {
		return fmt.Errorf("footer counts %d records, %d precede it", f.records, st.records)
	}
	if !bytes.Equal(f.fingerprint[:], st.hash.Sum(nil)) {
		return errors.New("footer fingerprint does not match the records before it")
	}
	return nil
}
