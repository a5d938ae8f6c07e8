package store

import (
	"bytes"
	"context"
	"fmt"
)

// opKind says what the writer should do with an op.
type opKind int

const (
	opPut     opKind = iota
	opBarrier        // reply once everything queued before is durable
	opSeal           // write the footer, sync, close, exit
	opClose          // close without a footer, exit
)

// op is one request to the writer goroutine. done has room for the one
// reply, so the writer never blocks on a caller that gave up.
type op struct {
	kind  opKind
	key   string
	value []byte
	done  chan result
}

type result struct {
	rev  uint64
	seal SealInfo
	err  error
}

// SealInfo describes a sealed log.
type SealInfo struct {
	// LastRevision is the revision of the last put in the log.
	LastRevision uint64
	// Records counts the put records in the log.
	Records uint64
	// Fingerprint is the log's fingerprint including the new footer.
	Fingerprint [32]byte
}

// Put stores value under key and returns the revision of the write. It
// returns only once the write is durable (written and fdatasync'd together
// with the writes that queued alongside it). If ctx ends first Put returns
// its error; the write may then still become durable.
func (s *Store) Put(ctx context.Context, key string, value []byte) (uint64, error) {
	if len(key) == 0 || len(key) > MaxKeySize {
		return 0, fmt.Errorf("%w: length %d (1 to %d bytes)", ErrKey, len(key), MaxKeySize)
	}
	if len(value) > MaxValueSize {
		return 0, fmt.Errorf("%w: %d bytes (at most %d)", ErrTooLarge, len(value), MaxValueSize)
	}
	o := &op{kind: opPut, key: key, value: bytes.Clone(value), done: make(chan result, 1)}
	r, err := s.submit(ctx, o, stateWritable)
	return r.rev, err
}

// Sync returns once every write queued before the call is durable. On a
// store that is read-only or sealed there is nothing to wait for.
func (s *Store) Sync(ctx context.Context) error {
	s.mu.Lock()
	st := s.state
	s.mu.Unlock()
	if st == stateReadOnly || st == stateSealing || st == stateSealed {
		return nil
	}
	_, err := s.submit(ctx, &op{kind: opBarrier, done: make(chan result, 1)}, stateWritable)
	return err
}

// Seal stops accepting writes (later puts fail with [ErrSealed]), lets the
// writer finish every queued write, appends the footer, syncs and closes
// the log. If ctx ends first Seal returns its error while the seal goes on.
func (s *Store) Seal(ctx context.Context) (SealInfo, error) {
	r, err := s.submit(ctx, &op{kind: opSeal, done: make(chan result, 1)}, stateSealing)
	return r.seal, err
}

// submit queues o if the store is writable, moving it to next, and waits
// for the reply.
func (s *Store) submit(ctx context.Context, o *op, next state) (result, error) {
	s.mu.Lock()
	if s.state != stateWritable {
		err := s.stateErr()
		s.mu.Unlock()
		return result{}, err
	}
	s.state = next
	s.queue = append(s.queue, o)
	s.signal()
	s.mu.Unlock()
	select {
	case r := <-o.done:
		return r, r.err
	case <-ctx.Done():
		return result{}, fmt.Errorf("kvd: store: %w", ctx.Err())
	}
}

// signal wakes the writer. Called with mu held.
func (s *Store) signal() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// run is the writer goroutine: it owns the file, the hash and the record
// count.
func (s *Store) run() {
	defer close(s.done)
	for range s.kick {
		if !s.process(s.take()) {
			s.failQueued()
			return
		}
	}
}

// take removes every queued op.
func (s *Store) take() []*op {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.queue
	s.queue = nil
	return q
}

// process commits the puts in ops as batches, in order, and runs control
// ops between them. It returns false once the writer must exit.
func (s *Store) process(ops []*op) bool {
	var batch []*op
	size := 0
	for _, o := range ops {
		if o.kind == opPut {
			batch = append(batch, o)
			if size += headerSize + len(o.key) + len(o.value); size >= s.cfg.maxBatch {
				s.commit(batch)
				batch, size = nil, 0
			}
			continue
		}
		s.commit(batch)
		batch, size = nil, 0
		if !s.control(o) {
			return false
		}
	}
	s.commit(batch)
	return true
}

// commit writes one batch, syncs once, applies it to the index and then
// releases its waiters: a write is visible and acknowledged only once it
// is durable.
func (s *Store) commit(batch []*op) {
	if len(batch) == 0 {
		return
	}
	rev := s.lastRev.Load()
	buf := s.buf[:0]
	for _, o := range batch {
		rev++
		buf = appendRecord(buf, rev, kindPut, o.key, o.value)
	}
	s.buf = buf
	if err := s.writeSync(buf); err != nil {
		s.replyAll(batch, 0, err)
		return
	}
	s.hash.Write(buf)
	s.records += uint64(len(batch))
	s.applyBatch(batch)
	s.lastRev.Store(rev)
	s.publishFingerprint()
	s.replyAll(batch, rev-uint64(len(batch)), nil)
}

// applyBatch puts a durable batch into the index.
func (s *Store) applyBatch(batch []*op) {
	s.idxMu.Lock()
	defer s.idxMu.Unlock()
	for _, o := range batch {
		s.index[o.key] = o.value
	}
}

// replyAll answers a batch; on success the i-th op got revision base+i+1.
func (s *Store) replyAll(batch []*op, base uint64, err error) {
	for i, o := range batch {
		if err != nil {
			o.done <- result{err: err}
			continue
		}
		o.done <- result{rev: base + uint64(i) + 1}
	}
}

// control runs a non-put op; it returns false when the writer must exit.
func (s *Store) control(o *op) bool {
	switch o.kind {
	case opBarrier:
		o.done <- result{err: s.failure()}
		return true
	case opSeal:
		info, err := s.writeFooter()
		o.done <- result{seal: info, err: err}
		return false
	default: // opClose
		if err := s.w.Close(); err != nil {
			s.cfg.logger.Error("kvd: close log", "path", s.path, "err", err)
		}
		return false
	}
}

// writeFooter seals the log: footer, sync, close.
func (s *Store) writeFooter() (SealInfo, error) {
	if err := s.failure(); err != nil {
		return SealInfo{}, err
	}
	f := footer{lastRev: s.lastRev.Load(), records: s.records}
	s.hash.Sum(f.fingerprint[:0])
	rec := appendRecord(nil, f.lastRev, kindFooter, "", f.encode())
	if err := s.writeSync(rec); err != nil {
		return SealInfo{}, err
	}
	s.hash.Write(rec)
	s.publishFingerprint()
	if err := s.w.Close(); err != nil {
		return SealInfo{}, s.setFailed(fmt.Errorf("kvd: close log %s: %w", s.path, err))
	}
	s.mu.Lock()
	if s.state == stateSealing {
		s.state = stateSealed
	}
	s.mu.Unlock()
	return SealInfo{LastRevision: f.lastRev, Records: f.records, Fingerprint: s.Fingerprint()}, nil
}

// failQueued answers whatever is still queued after the writer stopped.
func (s *Store) failQueued() {
	for _, o := range s.take() {
		if o.done != nil {
			o.done <- result{err: ErrClosed}
		}
	}
}
