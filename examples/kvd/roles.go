package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"

	"github.com/handoff-go/handoff"
	"github.com/handoff-go/handoff/examples/kvd/store"
)

// listeners are the sockets kvd serves; either may be nil.
type listeners struct{ http, resp net.Listener }

func (l listeners) close() {
	for _, ln := range []net.Listener{l.http, l.resp} {
		if ln != nil {
			ln.Close()
		}
	}
}

// names are the listeners for Ready, for logs.
func (l listeners) names() []string {
	var names []string
	if l.http != nil {
		names = append(names, "http "+l.http.Addr().String())
	}
	if l.resp != nil {
		names = append(names, "resp "+l.resp.Addr().String())
	}
	return names
}

// take takes the inherited listeners, binding the flag addresses for the
// ones not inherited (pass "" to bind nothing).
func take(ls *handoff.Listeners, httpAddr, respAddr string) (listeners, error) {
	var l listeners
	var err error
	if l.http, err = takeOrListen(ls, "http", httpAddr); err != nil {
		return l, err
	}
	if l.resp, err = takeOrListen(ls, "resp", respAddr); err != nil {
		l.close()
		return l, err
	}
	if l.http == nil && l.resp == nil {
		return l, errNoListeners
	}
	return l, nil
}

// runCold is kvd without a predecessor: lock (breaking a dead holder's
// lock), open the store, bind the control socket, serve.
func runCold(ctx context.Context, cfg config, log *slog.Logger, r *handoff.ColdStart) error {
	if r.Note != "" {
		log.Warn("kvd: inherited listeners ignored", "why", r.Note)
	}
	lock, err := handoff.AcquireOrBreakStale(cfg.dataDir)
	if err != nil {
		return fmt.Errorf("kvd: lock data directory: %w", err)
	}
	defer lock.Release() // a no-op once the library released it after a seal
	st, err := store.Open(cfg.dataDir, store.WithLogger(log))
	if err != nil {
		return err
	}
	lns, err := take(r.Listeners, cfg.httpAddr, cfg.respAddr)
	if err != nil {
		st.Close()
		return err
	}
	inc, err := handoff.BindColdStart(cfg.control, lock, handoff.WithListeners(r.Listeners),
		handoff.WithBuildID(cfg.buildID), handoff.WithLogger(log))
	if err != nil {
		lns.close()
		st.Close()
		return fmt.Errorf("kvd: bind control socket: %w", err)
	}
	return serveIncumbent(ctx, cfg, log, inc, st, lns)
}

// runSuccessor is kvd spawned to take over: say Hello, wait for Begin,
// lock, open the sealed store, report Ready, and write nothing before the
// handoff committed (AnnounceAndBind returned).
func runSuccessor(ctx context.Context, cfg config, log *slog.Logger, r *handoff.Successor) error {
	hs, err := r.Handshake(ctx, cfg.buildID)
	if err != nil {
		return fmt.Errorf("kvd: handshake: %w", err)
	}
	begun, err := hs.WaitForBegin(ctx)
	if err != nil {
		return fmt.Errorf("kvd: wait for Begin: %w", err)
	}
	if err := cfg.faults.afterBegin(ctx); err != nil {
		return err
	}
	lock, err := handoff.AcquireLock(cfg.dataDir)
	if err != nil {
		return fmt.Errorf("kvd: lock data directory: %w", err)
	}
	defer lock.Release() // a no-op once the library released it after a seal
	st, lns, err := openSealed(ctx, cfg, log, begun.Listeners())
	if err != nil {
		return err
	}
	inc, err := begun.AnnounceAndBind(ctx, readiness(cfg, log, st, lns), cfg.control, lock, handoff.WithLogger(log))
	if err != nil {
		lns.close()
		st.Close()
		return notCommitted(err)
	}
	return serveIncumbent(ctx, cfg, log, inc, st, lns)
}

func notCommitted(err error) error {
	if errors.Is(err, handoff.ErrAborted) {
		return fmt.Errorf("kvd: handoff aborted; exiting without having written: %w", err)
	}
	return fmt.Errorf("kvd: not committed; exiting without having written: %w", err)
}

// openSealed opens the state the predecessor sealed (read-only) and takes
// the inherited listeners; a successor binds nothing itself. The library
// sends heartbeats while this runs, however long (--fail slow-open).
func openSealed(ctx context.Context, cfg config, log *slog.Logger, ls *handoff.Listeners) (*store.Store, listeners, error) {
	if err := pause(ctx, cfg.faults.slowOpen); err != nil {
		return nil, listeners{}, err
	}
	st, err := store.Open(cfg.dataDir, store.WithLogger(log))
	if err != nil {
		return nil, listeners{}, err
	}
	lns, err := take(ls, "", "")
	if err != nil {
		st.Close()
		return nil, listeners{}, err
	}
	return st, lns, nil
}

// readiness is the Ready report. A log that does not end with a valid
// footer was not sealed by the predecessor: something is wrong (another
// data directory?), so kvd says it is not healthy and the swap aborts.
func readiness(cfg config, log *slog.Logger, st *store.Store, lns listeners) handoff.ReadinessSnapshot {
	healthy := !cfg.faults.unhealthy
	if !st.OpenedSealed() {
		log.Error("kvd: the log does not end with a seal footer; reporting unhealthy", "path", st.Path())
		healthy = false
	}
	return handoff.ReadinessSnapshot{
		ListeningOn:                lns.names(),
		HealthzOK:                  healthy,
		AdvertisedRevisionPerShard: []uint64{st.LastRevision()},
		DataDirFingerprint:         st.Fingerprint(),
	}
}

// serveIncumbent starts writing and serving, and answers the supervisor
// until a handoff commits (nil), a graceful stop (nil) or an error.
func serveIncumbent(ctx context.Context, cfg config, log *slog.Logger, inc *handoff.Incumbent, st *store.Store, lns listeners) error {
	if err := st.StartWrites(); err != nil {
		lns.close()
		st.Close()
		return err
	}
	srv := newServer(cfg, log, st)
	if err := srv.start(lns.http, lns.resp); err != nil {
		lns.close()
		srv.close()
		return err
	}
	log.Info("kvd: serving", "listeners", lns.names(), "revision", st.LastRevision())
	err := inc.Serve(ctx, srv)
	srv.close()
	return err
}
