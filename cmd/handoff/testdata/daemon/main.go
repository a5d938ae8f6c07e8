// Command daemon is the small daemon the end-to-end tests of cmd/handoff run
// under `handoff supervise`. It follows the library's daemon flow and serves
// one listener named "http" with a minimal HTTP responder that answers
// "<pid> <build id> <revision>" and closes the connection.
//
// Behaviour is chosen by the binary's name, so a test makes a variant by
// copying the binary: a name containing "broken" exits at once (a successor
// that fails before Hello); "gated" blocks before Hello until the FIFO named
// by $DAEMON_GATE is opened for writing and closed. A cold start waits at
// that gate too, but only when the FIFO exists (a test creates it to hold a
// restart back). $DAEMON_LINGER (a duration) keeps a committed-away
// generation alive that long, as a daemon still finishing reads would.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/handoff-go/handoff"
)

func main() {
	if err := run(); err != nil {
		log.Printf("daemon pid %d: %v", os.Getpid(), err)
		os.Exit(1)
	}
}

type flags struct {
	control, data, build string
}

func parseArgs() (flags, error) {
	f := flags{build: filepath.Base(os.Args[0])}
	args := os.Args[1:]
	for len(args) >= 2 {
		switch args[0] {
		case "--control":
			f.control = args[1]
		case "--data":
			f.data = args[1]
		default:
			return f, fmt.Errorf("unknown flag %s", args[0])
		}
		args = args[2:]
	}
	if f.control == "" || f.data == "" || len(args) > 0 {
		return f, errors.New("usage: daemon --control PATH --data DIR")
	}
	return f, nil
}

func run() error {
	f, err := parseArgs()
	if err != nil {
		return err
	}
	if strings.Contains(f.build, "broken") {
		return errors.New("broken build: exiting before Hello")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	role, err := handoff.DetectRole()
	if err != nil {
		return err
	}
	var inc *handoff.Incumbent
	var srv *server
	switch r := role.(type) {
	case *handoff.ColdStart:
		inc, srv, err = coldStart(f, r)
	case *handoff.Successor:
		inc, srv, err = takeOver(ctx, f, r)
	}
	if err != nil || inc == nil {
		return err
	}
	go srv.acceptLoop()
	if err := inc.Serve(ctx, srv); err != nil {
		return err
	}
	linger(ctx, inc)
	return nil
}

func coldStart(f flags, r *handoff.ColdStart) (*handoff.Incumbent, *server, error) {
	if fi, err := os.Stat(os.Getenv("DAEMON_GATE")); err == nil && fi.Mode()&os.ModeNamedPipe != 0 {
		if err := waitGate(); err != nil {
			return nil, nil, err
		}
	}
	lock, err := handoff.AcquireOrBreakStale(f.data)
	if err != nil {
		return nil, nil, err
	}
	srv, err := newServer(r.Listeners, f)
	if err != nil {
		lock.Release()
		return nil, nil, err
	}
	inc, err := handoff.BindColdStart(f.control, lock, handoff.WithListeners(r.Listeners), handoff.WithBuildID(f.build))
	if err != nil {
		lock.Release()
		return nil, nil, err
	}
	return inc, srv, nil
}

// takeOver is the successor's path: warm up, Hello, wait for Begin, take
// the lock, open the sealed state, Ready, and bind on Commit. An abort
// (a dry run, a rollback) ends it without writing: nil incumbent.
func takeOver(ctx context.Context, f flags, r *handoff.Successor) (*handoff.Incumbent, *server, error) {
	if strings.Contains(f.build, "gated") {
		if err := waitGate(); err != nil {
			return nil, nil, err
		}
	}
	hs, err := r.Handshake(ctx, f.build)
	if err != nil {
		return nil, nil, aborted(err)
	}
	begun, err := hs.WaitForBegin(ctx)
	if err != nil {
		return nil, nil, aborted(err)
	}
	lock, err := handoff.AcquireLock(f.data)
	if err != nil {
		return nil, nil, err
	}
	srv, err := newServer(begun.Listeners(), f)
	if err != nil {
		lock.Release()
		return nil, nil, err
	}
	ready := handoff.ReadinessSnapshot{ListeningOn: []string{"http"}, HealthzOK: true, AdvertisedRevisionPerShard: []uint64{srv.rev.Load()}}
	inc, err := begun.AnnounceAndBind(ctx, ready, f.control, lock)
	if err != nil {
		lock.Release()
		return nil, nil, aborted(err)
	}
	return inc, srv, nil
}

func aborted(err error) error {
	if errors.Is(err, handoff.ErrAborted) {
		log.Printf("daemon pid %d: aborted: %v", os.Getpid(), err)
		return nil
	}
	return err
}

// waitGate blocks until the test opens the gate FIFO for writing and
// closes it.
func waitGate() error {
	f, err := os.Open(os.Getenv("DAEMON_GATE"))
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(io.Discard, f)
	return err
}

// linger keeps a committed-away generation alive for $DAEMON_LINGER, or
// until it is told to stop.
func linger(ctx context.Context, inc *handoff.Incumbent) {
	select {
	case <-inc.Committed():
	default:
		return
	}
	d, err := time.ParseDuration(os.Getenv("DAEMON_LINGER"))
	if err != nil || d <= 0 {
		return
	}
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
