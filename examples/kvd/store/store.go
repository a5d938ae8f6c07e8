package store

import (
	"fmt"
	"hash"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
)

// LogName is the name of the log file inside the data directory.
const LogName = "kvd.log"

// state is the lifecycle of a Store. It only moves forward.
type state int

const (
	stateReadOnly state = iota // opened, writes not started
	stateWritable              // the writer goroutine runs
	stateSealing               // Seal queued: no new writes
	stateSealed                // footer written, file closed
	stateFailed                // a write or sync failed
	stateClosed
)

// Option configures [Open].
type Option func(*config)

type config struct {
	logger   *slog.Logger
	maxBatch int
}

// WithLogger sets the logger for recovery and failures. Default:
// [slog.Default].
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.logger = l } }

// WithMaxBatchBytes caps the bytes written per fsync; a larger backlog is
// written as several batches. Default: 4 MiB.
func WithMaxBatchBytes(n int) Option { return func(c *config) { c.maxBatch = n } }

// Store is an open log with its index. Its methods are safe for concurrent
// use.
type Store struct {
	path      string
	cfg       config
	wasSealed bool // the log ended with a valid footer at Open

	idxMu sync.RWMutex
	index map[string][]byte

	lastRev atomic.Uint64
	fp      atomic.Pointer[[32]byte]

	mu      sync.Mutex // guards state, failErr, queue, done
	state   state
	failErr error
	queue   []*op
	kick    chan struct{}
	done    chan struct{} // closed when the writer exits; nil before StartWrites

	// Owned by the writer goroutine once StartWrites ran.
	w       *os.File
	hash    hash.Hash
	records uint64
	buf     []byte
	torn    tornTail
}

// tornTail is the part of the file Open could not use.
type tornTail struct{ at, size int64 }

// Open reads the log in dir and rebuilds the index. It writes nothing: the
// store is read-only until [Store.StartWrites]. A corrupt log yields a
// [*CorruptError]; a torn tail is logged here and repaired by StartWrites.
func Open(dir string, opts ...Option) (*Store, error) {
	cfg := config{logger: slog.Default(), maxBatch: 4 << 20}
	for _, o := range opts {
		o(&cfg)
	}
	path := filepath.Join(dir, LogName)
	st, err := scanLog(path)
	if err != nil {
		return nil, err
	}
	s := &Store{
		path: path, cfg: cfg, index: st.index, hash: st.hash, records: st.records,
		torn: tornTail{at: st.end, size: st.size}, wasSealed: st.sealed && st.end == st.size,
		kick: make(chan struct{}, 1),
	}
	s.lastRev.Store(st.lastRev)
	s.publishFingerprint()
	if st.end < st.size {
		cfg.logger.Warn("kvd: torn tail in log; it will be cut off when writes start",
			"path", path, "offset", st.end, "bytes", st.size-st.end)
	}
	return s, nil
}

// StartWrites makes the store writable: it repairs a torn tail found by
// Open (the cut bytes are kept in kvd.log.<offset>.broken), opens the log
// for appending and starts the writer. Calling it again is a no-op.
func (s *Store) StartWrites() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state == stateWritable {
		return nil
	}
	if s.state != stateReadOnly {
		return s.stateErr()
	}
	if err := s.repairTail(); err != nil {
		return err
	}
	w, err := openAppend(s.path)
	if err != nil {
		return err
	}
	s.w, s.state, s.done = w, stateWritable, make(chan struct{})
	go s.run()
	return nil
}

// Get returns the value of key. The caller must not modify the result.
func (s *Store) Get(key string) ([]byte, bool) {
	s.idxMu.RLock()
	defer s.idxMu.RUnlock()
	v, ok := s.index[key]
	return v, ok
}

// Len returns the number of keys.
func (s *Store) Len() int {
	s.idxMu.RLock()
	defer s.idxMu.RUnlock()
	return len(s.index)
}

// LastRevision returns the revision of the last durable write (0 for an
// empty log).
func (s *Store) LastRevision() uint64 { return s.lastRev.Load() }

// Fingerprint returns the SHA-256 of the log's records so far (see the
// package documentation). It never rehashes the log.
func (s *Store) Fingerprint() [32]byte { return *s.fp.Load() }

// OpenedSealed reports whether the log ended with a valid footer when it
// was opened, as it does after a predecessor's successful Seal.
func (s *Store) OpenedSealed() bool { return s.wasSealed }

// Sealed reports whether this store has been sealed (or is sealing).
func (s *Store) Sealed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state == stateSealing || s.state == stateSealed
}

// Path returns the log file's path.
func (s *Store) Path() string { return s.path }

// Close stops the writer after it finished every queued write, and closes
// the log without writing a footer. It is idempotent.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.state == stateClosed {
		s.mu.Unlock()
		return nil
	}
	s.state = stateClosed
	done := s.done
	if done != nil {
		s.queue = append(s.queue, &op{kind: opClose})
		s.signal()
	}
	s.mu.Unlock()
	if done != nil {
		<-done
	}
	return nil
}

// stateErr is the error a write gets in the current state. Called with mu.
func (s *Store) stateErr() error {
	switch s.state {
	case stateReadOnly:
		return ErrReadOnly
	case stateSealing, stateSealed:
		return ErrSealed
	case stateFailed:
		return fmt.Errorf("%w: %w", ErrFailed, s.failErr)
	case stateClosed:
		return ErrClosed
	}
	return nil
}

// publishFingerprint makes the running hash visible to readers. Called by
// Open and by the writer after each batch.
func (s *Store) publishFingerprint() {
	var fp [32]byte
	s.hash.Sum(fp[:0])
	s.fp.Store(&fp)
}
