// Command nopd is the smallest daemon that takes part in a handoff: it
// serves a trivial HTTP API on every listener it inherits and implements
// Drainable with hooks that do nothing. The benchmark uses it to measure
// what the protocol itself costs (no state to drain or seal), how that cost
// grows with the number of listeners (any number of them, named freely),
// and the spawn floor of a minimal daemon that uses the library.
//
//	nopd --data DIR --control PATH [--build-id ID]
//
// With no-op hooks the old process keeps accepting until it has committed
// away; it then closes its listeners, lets the connections it accepted
// finish and exits. That is fine for a stateless responder and for the
// accept-blackout probe, which opens a new connection per request; it is
// not a drain a stateful daemon should copy (see httpdrain).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"sync"
	"syscall"
	"time"

	"github.com/handoff-go/handoff"
)

func main() { os.Exit(run()) }

type config struct {
	dataDir, control, buildID string
}

func run() int {
	var cfg config
	flag.StringVar(&cfg.dataDir, "data", "", "data directory for the handoff lock (required)")
	flag.StringVar(&cfg.control, "control", "", "control socket path (required)")
	flag.StringVar(&cfg.buildID, "build-id", "nopd", "build id for Hello")
	flag.Parse()
	if cfg.dataDir == "" || cfg.control == "" {
		fmt.Fprintln(os.Stderr, "nopd: --data and --control are required")
		return 2
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := dispatch(ctx, cfg, log); err != nil {
		log.Error("nopd: exiting", "err", err)
		return 1
	}
	return 0
}

func dispatch(ctx context.Context, cfg config, log *slog.Logger) error {
	role, err := handoff.DetectRole()
	if err != nil {
		return err
	}
	switch r := role.(type) {
	case *handoff.ColdStart:
		return runCold(ctx, cfg, log, r.Listeners)
	case *handoff.Successor:
		return runSuccessor(ctx, cfg, log, r)
	}
	return fmt.Errorf("nopd: unknown role %T", role)
}

func runCold(ctx context.Context, cfg config, log *slog.Logger, ls *handoff.Listeners) error {
	lock, err := handoff.AcquireOrBreakStale(cfg.dataDir)
	if err != nil {
		return err
	}
	defer lock.Release()
	inc, err := handoff.BindColdStart(cfg.control, lock, handoff.WithListeners(ls),
		handoff.WithBuildID(cfg.buildID), handoff.WithLogger(log))
	if err != nil {
		return err
	}
	return serve(ctx, inc, ls)
}

func runSuccessor(ctx context.Context, cfg config, log *slog.Logger, r *handoff.Successor) error {
	hs, err := r.Handshake(ctx, cfg.buildID)
	if err != nil {
		return err
	}
	begun, err := hs.WaitForBegin(ctx)
	if err != nil {
		return err
	}
	lock, err := handoff.AcquireLock(cfg.dataDir)
	if err != nil {
		return err
	}
	defer lock.Release()
	ls := begun.Listeners()
	ready := handoff.ReadinessSnapshot{ListeningOn: ls.Names(), HealthzOK: true}
	inc, err := begun.AnnounceAndBind(ctx, ready, cfg.control, lock, handoff.WithLogger(log))
	if err != nil {
		return err
	}
	return serve(ctx, inc, ls)
}

// serve answers HTTP on every inherited listener until the incumbent's
// Serve returns (committed away, or stopped), then stops accepting and
// exits once the connections it accepted are done (bounded).
//
// It does not use http.Server.Shutdown: a request read after Shutdown
// began is dropped without an answer.
func serve(ctx context.Context, inc *handoff.Incumbent, ls *handoff.Listeners) error {
	var open sync.WaitGroup
	srv := &http.Server{Handler: routes(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		ConnState: func(_ net.Conn, st http.ConnState) {
			switch st {
			case http.StateNew:
				open.Add(1)
			case http.StateClosed, http.StateHijacked:
				open.Done()
			}
		}}
	var lns []net.Listener
	var serving sync.WaitGroup
	for _, name := range ls.Names() {
		ln, err := ls.Listener(name)
		if err != nil {
			return err
		}
		lns = append(lns, ln)
		serving.Go(func() {
			if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
				fmt.Fprintln(os.Stderr, "nopd: serve:", err)
			}
		})
	}
	err := inc.Serve(ctx, nopHooks{})
	for _, ln := range lns {
		ln.Close()
	}
	serving.Wait()                  // no connection is accepted (no StateNew) after this
	srv.SetKeepAlivesEnabled(false) // closes idle keep-alive connections; the others close after their response
	done := make(chan struct{})
	go func() { open.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
	}
	srv.Close()
	return err
}

func routes() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, _ *http.Request) {
		json.NewEncoder(w).Encode(map[string]int{"pid": os.Getpid(), "goroutines": runtime.NumGoroutine()})
	})
	return mux
}

// nopHooks is a Drainable whose hooks do nothing.
type nopHooks struct{}

func (nopHooks) Drain(context.Context) (handoff.DrainReport, error) {
	return handoff.DrainReport{}, nil
}

func (nopHooks) Seal(context.Context) (handoff.SealReport, error) {
	return handoff.SealReport{}, nil
}

func (nopHooks) ResumeAfterAbort(context.Context) error { return nil }

func (nopHooks) SnapshotState() handoff.StateSnapshot { return handoff.StateSnapshot{} }
