// Command kvd is the example stateful daemon of handoff: a small durable
// key-value store with an HTTP and a RESP (Redis protocol) front end, whose
// binary can be swapped under load without losing an acknowledged write.
//
//	kvd --data /var/lib/kvd --http 127.0.0.1:8080 --resp 127.0.0.1:6380
//
// Under a supervisor the listeners named "http" and "resp" are inherited
// and --http/--resp are ignored. Exit status: 0 after handing off (or a
// graceful stop on SIGTERM/SIGINT), 1 on an error, 2 on bad flags, 3 when
// a --fail mode says so.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/handoff-go/handoff"
)

// config is what the flags say.
type config struct {
	dataDir  string
	control  string
	httpAddr string
	respAddr string
	buildID  string
	faults   faults
}

func main() { os.Exit(run(os.Args[1:])) }

// run is main with an exit status.
func run(args []string) int {
	cfg, err := parseFlags(args, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	log := newLogger(os.Getenv("KVD_LOG")).With("pid", os.Getpid(), "build_id", cfg.buildID)
	if cfg.faults.exitAtStart {
		log.Error("kvd: exiting at start on purpose (--fail exit-at-start)")
		return 3
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	return exitStatus(log, dispatch(ctx, cfg, log))
}

// dispatch runs kvd in the role the environment says.
func dispatch(ctx context.Context, cfg config, log *slog.Logger) error {
	role, err := handoff.DetectRole()
	if err != nil {
		return err
	}
	switch r := role.(type) {
	case *handoff.ColdStart:
		return runCold(ctx, cfg, log, r)
	case *handoff.Successor:
		return runSuccessor(ctx, cfg, log, r)
	}
	return fmt.Errorf("kvd: unknown role %T", role)
}

func exitStatus(log *slog.Logger, err error) int {
	switch {
	case err == nil:
		log.Info("kvd: exiting")
		return 0
	case errors.Is(err, errExitFault):
		log.Error("kvd: exiting", "err", err)
		return 3
	}
	log.Error("kvd: exiting", "err", err)
	return 1
}

// parseFlags reads the command line; the build id defaults to a hash of
// the executable and the control socket to DATA/control.sock.
func parseFlags(args []string, stderr io.Writer) (config, error) {
	var cfg config
	fs := flag.NewFlagSet("kvd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.dataDir, "data", "", "data directory (required)")
	fs.StringVar(&cfg.control, "control", "", "control socket path (default DATA/control.sock)")
	fs.StringVar(&cfg.httpAddr, "http", "", "HTTP address to bind when no listener named http is inherited")
	fs.StringVar(&cfg.respAddr, "resp", "", "RESP address to bind when no listener named resp is inherited")
	fs.StringVar(&cfg.buildID, "build-id", "", "build id for status and Hello (default: hash of the executable)")
	fs.Func("fail", "fail on purpose, comma-separated: "+faultModes, cfg.faults.parse)
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	switch {
	case fs.NArg() > 0:
		return cfg, fmt.Errorf("kvd: unexpected argument %q", fs.Arg(0))
	case cfg.dataDir == "":
		return cfg, errors.New("kvd: --data is required")
	}
	if cfg.control == "" {
		cfg.control = filepath.Join(cfg.dataDir, "control.sock")
	}
	if cfg.buildID != "" {
		return cfg, nil
	}
	id, err := defaultBuildID()
	cfg.buildID = id
	return cfg, err
}

// newLogger logs text to stderr at the level KVD_LOG names (default info).
func newLogger(level string) *slog.Logger {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		l = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l}))
}
