package main

import (
	"context"
	"fmt"

	"github.com/handoff-go/handoff"
	"github.com/handoff-go/handoff/examples/kvd/store"
)

// kvd's Drainable. The library calls Drain, then Seal, and
// ResumeAfterAbort when a swap is abandoned after Drain started; never two
// of them at once.
var _ handoff.Drainable = (*server)(nil)

// Drain stops accepting on both listeners and waits until no HTTP request
// is in progress, then makes every acknowledged write durable. Requests
// on connections that are still open keep being answered until Seal,
// writes included: this process still holds the data-dir lock, the footer
// that Seal writes comes after them, and refusing them would be a failure
// the client sees. But each connection is closed after its next answer
// (HTTP: the response says "Connection: close"; RESP: the FIN follows the
// reply), so busy clients move to the listen backlog, where the successor
// will pick them up. kvd has no background writer to stop.
func (s *server) Drain(ctx context.Context) (handoff.DrainReport, error) {
	if err := pause(ctx, s.cfg.faults.slowDrain); err != nil {
		return handoff.DrainReport{}, err
	}
	// Both listeners at once: while one waits for its connections in use,
	// the other must not go on accepting new ones.
	type httpDrained struct {
		open int
		err  error
	}
	hc := make(chan httpDrained, 1)
	go func() {
		open, err := s.http.Drain(ctx)
		hc <- httpDrained{open, err}
	}()
	respErr := s.resp.drain(ctx)
	h := <-hc
	if respErr != nil {
		return handoff.DrainReport{}, respErr
	}
	if h.err != nil {
		return handoff.DrainReport{}, fmt.Errorf("kvd: drain: %w", h.err)
	}
	httpOpen := h.open
	if err := s.store().Sync(ctx); err != nil {
		return handoff.DrainReport{}, fmt.Errorf("kvd: drain: %w", err)
	}
	return handoff.DrainReport{
		OpenConnsRemaining: uint32(httpOpen + s.resp.openConns()),
		AcceptClosed:       true,
	}, nil
}

// Seal closes every client connection between requests (answering those
// already received) and then seals the store: the queued writes, the
// footer, fsync, close. After it returns kvd answers nothing: the
// successor may acknowledge writes this process cannot see.
func (s *server) Seal(ctx context.Context) (handoff.SealReport, error) {
	if err := pause(ctx, s.cfg.faults.slowSeal); err != nil {
		return handoff.SealReport{}, err
	}
	if err := s.http.Seal(ctx); err != nil {
		return handoff.SealReport{}, fmt.Errorf("kvd: seal: %w", err)
	}
	if err := s.resp.seal(ctx); err != nil {
		return handoff.SealReport{}, fmt.Errorf("kvd: seal: %w", err)
	}
	if s.cfg.faults.failSeal {
		return handoff.SealReport{}, errSealFault
	}
	return s.sealStore(ctx)
}

// sealStore seals the one shard, reporting progress around it.
func (s *server) sealStore(ctx context.Context) (handoff.SealReport, error) {
	st := s.store()
	handoff.ReportSealProgress(ctx, handoff.SealProgress{ShardsTotal: 1, LastRevision: st.LastRevision()})
	info, err := st.Seal(ctx)
	if err != nil {
		return handoff.SealReport{}, fmt.Errorf("kvd: seal store: %w", err)
	}
	handoff.ReportSealProgress(ctx, handoff.SealProgress{ShardsSealed: 1, ShardsTotal: 1, LastRevision: info.LastRevision})
	s.log.Info("kvd: sealed", "revision", info.LastRevision, "records", info.Records)
	return handoff.SealReport{
		LastRevisionPerShard: []uint64{info.LastRevision},
		DataDirFingerprint:   info.Fingerprint,
	}, nil
}

// ResumeAfterAbort reopens the store from the data directory (never from
// memory: after a seal the footer is on disk and writes continue after it)
// and accepts and answers again on the kept sockets. It is idempotent.
func (s *server) ResumeAfterAbort(ctx context.Context) error {
	if err := s.reopenStore(); err != nil {
		return err
	}
	if err := s.http.Resume(ctx); err != nil {
		return fmt.Errorf("kvd: resume: %w", err)
	}
	if err := s.resp.resume(); err != nil {
		return fmt.Errorf("kvd: resume: %w", err)
	}
	s.log.Info("kvd: resumed", "revision", s.store().LastRevision())
	return nil
}

// reopenStore replaces the store with a fresh one read from disk. Writes
// wait for it (writeMu); reads go on against the old index, which holds
// the same data.
func (s *server) reopenStore() error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if err := s.store().Close(); err != nil {
		return fmt.Errorf("kvd: resume: close store: %w", err)
	}
	st, err := store.Open(s.cfg.dataDir, store.WithLogger(s.log))
	if err != nil {
		return fmt.Errorf("kvd: resume: reopen store: %w", err)
	}
	if err := st.StartWrites(); err != nil {
		st.Close()
		return fmt.Errorf("kvd: resume: %w", err)
	}
	s.cur.Store(st)
	return nil
}

// SnapshotState reports the one shard and the open connections without
// blocking.
func (s *server) SnapshotState() handoff.StateSnapshot {
	return handoff.StateSnapshot{
		ShardCount:           1,
		OpenConns:            uint32(s.http.OpenConns() + s.resp.openConns()),
		LastRevisionPerShard: []uint64{s.store().LastRevision()},
	}
}
