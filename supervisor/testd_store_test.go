package supervisor

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sync"
)

// The test daemon's state: one append-only log file in the data directory,
// one record per acknowledged write, fsynced before the write is answered.
// A single shard. Recovery truncates a torn tail at the last record whose
// CRC checks. The test process reads the same file (readStoreFile) to check,
// after every process is gone, that every acknowledged write is on disk.

const storeFile = "kv.log"

var storeCRC = crc32.MakeTable(crc32.Castagnoli)

// record layout: rev u64 | klen u16 | vlen u32 | key | value | crc32c of all
// the preceding bytes of the record.
const recordHeader = 8 + 2 + 4

type kvRecord struct {
	Rev   uint64
	Key   string
	Value string
}

func encodeRecord(r kvRecord) []byte {
	b := make([]byte, 0, recordHeader+len(r.Key)+len(r.Value)+4)
	b = binary.LittleEndian.AppendUint64(b, r.Rev)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(r.Key)))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(r.Value)))
	b = append(b, r.Key...)
	b = append(b, r.Value...)
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, storeCRC))
}

// decodeRecords returns the good records of data and the length of the good
// prefix (where a torn tail starts).
func decodeRecords(data []byte) ([]kvRecord, int) {
	var recs []kvRecord
	off := 0
	for len(data)-off >= recordHeader+4 {
		h := data[off:]
		klen := int(binary.LittleEndian.Uint16(h[8:10]))
		vlen := int(binary.LittleEndian.Uint32(h[10:14]))
		n := recordHeader + klen + vlen + 4
		if len(h) < n || vlen > 1<<20 {
			break
		}
		body := h[:n-4]
		if crc32.Checksum(body, storeCRC) != binary.LittleEndian.Uint32(h[n-4:n]) {
			break
		}
		recs = append(recs, kvRecord{
			Rev:   binary.LittleEndian.Uint64(h[0:8]),
			Key:   string(h[recordHeader : recordHeader+klen]),
			Value: string(h[recordHeader+klen : recordHeader+klen+vlen]),
		})
		off += n
	}
	return recs, off
}

// readStoreFile reads the log of dir without touching the lock (for the
// test's final check, once every daemon is gone).
func readStoreFile(dir string) (map[string]kvRecord, error) {
	data, err := os.ReadFile(filepath.Join(dir, storeFile))
	if errors.Is(err, os.ErrNotExist) {
		return map[string]kvRecord{}, nil
	}
	if err != nil {
		return nil, err
	}
	recs, _ := decodeRecords(data)
	out := make(map[string]kvRecord, len(recs))
	for _, r := range recs {
		out[r.Key] = r
	}
	return out, nil
}

// kvStore is the open log. It is only ever opened by the data-dir lock
// holder; put checks that again before every write (invariant 1).
type kvStore struct {
	dir string

	mu  sync.Mutex
	f   *os.File
	rev uint64
	kv  map[string]string
}

func openStore(dir string) (*kvStore, error) {
	f, err := os.OpenFile(filepath.Join(dir, storeFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	data, err := io.ReadAll(f)
	if err != nil {
		f.Close()
		return nil, err
	}
	recs, good := decodeRecords(data)
	if good != len(data) {
		if err := f.Truncate(int64(good)); err != nil {
			f.Close()
			return nil, err
		}
	}
	if _, err := f.Seek(int64(good), io.SeekStart); err != nil {
		f.Close()
		return nil, err
	}
	s := &kvStore{dir: dir, f: f, kv: make(map[string]string, len(recs))}
	for _, r := range recs {
		s.kv[r.Key] = r.Value
		s.rev = r.Rev
	}
	return s, nil
}

// put appends one record and fsyncs it; only then is the write acknowledged.
func (s *kvStore) put(key, value string) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return 0, errors.New("store closed")
	}
	rec := kvRecord{Rev: s.rev + 1, Key: key, Value: value}
	if _, err := s.f.Write(encodeRecord(rec)); err != nil {
		return 0, err
	}
	if err := s.f.Sync(); err != nil {
		return 0, err
	}
	s.rev = rec.Rev
	s.kv[key] = value
	return rec.Rev, nil
}

func (s *kvStore) get(key string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.kv[key]
	return v, ok
}

func (s *kvStore) revision() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rev
}

// close fsyncs and closes the log; idempotent.
func (s *kvStore) close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return nil
	}
	err := s.f.Sync()
	if cerr := s.f.Close(); err == nil {
		err = cerr
	}
	s.f = nil
	if err != nil {
		return fmt.Errorf("close store: %w", err)
	}
	return nil
}
