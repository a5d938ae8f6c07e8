package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/handoff-go/handoff/internal/config"
	"github.com/handoff-go/handoff/internal/sdnotify"
	"github.com/handoff-go/handoff/internal/sysx"
	"github.com/handoff-go/handoff/supervisor"
)

const superviseAbout = `Run the daemon of the config under a supervisor: bind the listeners (or take
them from systemd socket activation), cold-start the daemon, restart it when it
crashes (clients wait in the backlog), and swap its binary on request (handoff
upgrade, SIGHUP). SIGTERM or SIGINT stop the daemon gracefully, then the
supervisor. With --check, validate the config, print what would be done and
exit: 0 valid, 2 invalid.`

// runSupervise is `handoff supervise`.
func runSupervise(args []string) int {
	fs := newFlagSet("supervise", "handoff supervise --config FILE [--check]", superviseAbout,
		"handoff supervise --config /etc/handoff/kvd.toml")
	cfgPath := fs.String("config", "", "the supervisor's TOML config `file` (required)")
	check := fs.Bool("check", false, "validate the config, print the plan and exit")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if *cfgPath == "" {
		fmt.Fprintln(os.Stderr, "handoff supervise: --config FILE is required")
		return exitError
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return exitError
	}
	if *check {
		printPlan(os.Stdout, cfg)
		return exitOK
	}
	if supervisor.IsPreflight() { // a running supervisor checks us before exec'ing us
		return exitOK
	}
	if err := supervise(cfg, slog.New(slog.NewTextHandler(os.Stderr, nil))); err != nil {
		fmt.Fprintf(os.Stderr, "handoff supervise: %v\n", err)
		return exitError
	}
	return exitOK
}

// service is a running supervisor with everything around it: listeners,
// trigger socket, metrics, systemd notifications.
type service struct {
	cfg       *config.Config
	log       *slog.Logger
	notify    *sdnotify.Notifier
	activated []sdnotify.NamedFile
	reg       *prometheus.Registry
	sup       *supervisor.Supervisor
	listeners []heldListener
	trigger   *triggerServer
	metrics   *metricsServer
	started   time.Time
	carried   bool // rebuilt from a previous binary's state (self-upgrade)

	carriedMetrics net.Listener   // the metrics listener carried through a self-upgrade, until serve
	swaps          sync.WaitGroup // SIGHUP swaps in flight

	mu     sync.Mutex
	lastAt time.Time // when the last swap finished
}

// supervise runs the service until SIGTERM or SIGINT.
func supervise(cfg *config.Config, log *slog.Logger) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	svc, err := newService(cfg, log)
	if err != nil {
		return err
	}
	if err := svc.start(ctx); err != nil {
		svc.shutdown()
		if ctx.Err() != nil {
			return nil // stopped by a signal while starting
		}
		return err
	}
	return svc.loop(ctx, stop, hup)
}

// loop serves until the stop signal; a second signal then kills the
// supervisor at once (the default action is restored).
func (svc *service) loop(ctx context.Context, stop context.CancelFunc, hup <-chan os.Signal) error {
	runCtx, cancelRun := context.WithCancel(ctx)
	defer cancelRun()
	runDone := make(chan error, 1)
	go func() { runDone <- svc.sup.Run(runCtx) }()
	for {
		select {
		case <-hup:
			svc.sighup(ctx)
		case <-ctx.Done():
			stop()
			svc.log.Info("handoff.stop", "signal", "received", "stop_grace", svc.cfg.StopGrace)
			cancelRun()
			<-runDone
			svc.shutdown()
			return nil
		case err := <-runDone:
			svc.shutdown()
			return fmt.Errorf("handoff: supervisor stopped: %w", err)
		}
	}
}

func newService(cfg *config.Config, log *slog.Logger) (*service, error) {
	if c, err := supervisor.InheritedState(); c != nil || err != nil {
		return newCarriedService(cfg, log, c, err)
	}
	notify, err := sdnotify.FromEnv()
	if err != nil {
		return nil, err
	}
	activated, err := sdnotify.ActivationFiles()
	if err != nil {
		return nil, err
	}
	svc := &service{cfg: cfg, log: log, notify: notify, activated: activated, reg: prometheus.NewRegistry(), started: time.Now()}
	svc.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if svc.trigger, err = listenTrigger(cfg.TriggerSocket, triggerMode(cfg)); err != nil {
		closeActivated(activated)
		return nil, err
	}
	svc.sup, err = supervisor.New(cfg.ControlSocket, svc.options()...)
	if err != nil {
		closeActivated(activated)
		_ = svc.trigger.close()
		return nil, err
	}
	return svc, nil
}

func (svc *service) options() []supervisor.Option {
	c := svc.cfg
	return []supervisor.Option{
		supervisor.WithJournal(c.Journal), supervisor.WithLogger(svc.log),
		supervisor.WithMetrics(supervisor.NewMetrics(svc.reg)), supervisor.WithDataDir(c.DataDir),
		supervisor.WithExitGrace(c.ExitGrace), supervisor.WithMaxDraining(c.MaxDraining),
	}
}

// triggerMode is 0600, or 0666 when other uids are admitted: the kernel's
// peer credentials (SO_PEERCRED) are then what admits or refuses a client.
func triggerMode(cfg *config.Config) os.FileMode {
	if len(cfg.AllowedUIDs) > 0 {
		return 0o666
	}
	return 0o600
}

func closeActivated(files []sdnotify.NamedFile) {
	for _, f := range files {
		f.File.Close()
	}
}

// spec is what a cold start, a restart or a swap to binary runs.
func (svc *service) spec(binary string, dryRun bool) supervisor.SpawnSpec {
	c := svc.cfg
	return supervisor.SpawnSpec{Binary: binary, Args: c.Args, Env: c.SortedEnv(),
		Deadline: c.Deadline, DrainGrace: c.DrainGrace, DryRun: dryRun}
}

// start reconciles the journal (adopting a daemon that outlived an earlier
// supervisor) or takes the listeners and cold-starts the daemon, then
// serves the trigger socket and metrics and tells systemd it is ready.
func (svc *service) start(ctx context.Context) error {
	warnBacklog(svc.log)
	if svc.carried {
		// Same process, new image: the uptime counts from the process's
		// start, which the exec did not change.
		svc.started = time.Now()
		if at, err := sysx.ProcStartedAt(os.Getpid()); err == nil {
			svc.started = at
		}
		return svc.serveReady(ctx)
	}
	spec := svc.spec(svc.cfg.Binary, false)
	adopted, err := svc.sup.ResumeFromJournal(ctx, spec)
	if err != nil {
		closeActivated(svc.activated)
		return err
	}
	if adopted {
		if err := svc.adopt(ctx); err != nil {
			return err
		}
	} else if err := svc.coldStart(ctx, spec); err != nil {
		return err
	}
	return svc.serveReady(ctx)
}

func (svc *service) serveReady(ctx context.Context) error {
	if err := svc.serve(ctx); err != nil {
		return err
	}
	svc.notifyLog(svc.notify.Ready())
	svc.updateStatus()
	return nil
}

func (svc *service) adopt(ctx context.Context) error {
	if len(svc.activated) > 0 {
		svc.log.Info("handoff.listen", "note", "an incumbent was adopted with its own sockets; closing the sockets systemd passed")
		closeActivated(svc.activated)
	}
	if err := svc.reconcileAdopted(ctx); err != nil {
		return err
	}
	svc.listeners = adoptedListeners(svc.cfg, svc.sup)
	return nil
}

func (svc *service) coldStart(ctx context.Context, spec supervisor.SpawnSpec) error {
	ls, err := svc.acquireListeners(ctx)
	if err != nil {
		return err
	}
	if err := svc.sup.SetListeners(toSupervisor(ls)); err != nil {
		releaseListeners(ls, true)
		return err
	}
	svc.listeners = ls
	svc.storeFDs()
	if err := svc.sup.Start(ctx, spec); err != nil {
		return fmt.Errorf("handoff: cold start of %s: %w", svc.cfg.Binary, err)
	}
	return nil
}

// acquireListeners takes the sockets systemd passed, or binds them.
func (svc *service) acquireListeners(ctx context.Context) ([]heldListener, error) {
	if len(svc.activated) > 0 {
		ls, err := takeActivated(svc.cfg, svc.activated, svc.log)
		svc.activated = nil
		return ls, err
	}
	return bindAll(ctx, svc.cfg)
}

// storeFDs hands sockets this supervisor bound to systemd's fd store, so
// that they survive even when the supervisor and the daemon die together.
func (svc *service) storeFDs() {
	for _, l := range svc.listeners {
		if l.source == sourceBound {
			svc.notifyLog(svc.notify.StoreFDs(l.name, l.file))
		}
	}
}

func (svc *service) serve(ctx context.Context) error {
	if err := svc.serveMetrics(); err != nil {
		return err
	}
	svc.trigger.admit = admitUIDs(svc.cfg.AllowedUIDs, svc.cfg.File)
	svc.trigger.handle = svc.handle
	svc.trigger.log = svc.log
	svc.trigger.serve(ctx)
	svc.log.Info("handoff.ready", "incumbent", svc.sup.Incumbent(), "trigger", svc.cfg.TriggerSocket, "listeners", len(svc.listeners))
	return nil
}

// serveMetrics serves /metrics when configured: on the listener carried
// through a self-upgrade when it still fits the config (so a scrape during
// the exec waits in its backlog instead of being refused), else on a new
// one.
func (svc *service) serveMetrics() error {
	carried := svc.carriedMetrics
	svc.carriedMetrics = nil
	if carried != nil && (svc.cfg.MetricsAddr == "" || !carriedMetricsFits(svc.cfg.MetricsAddr, carried)) {
		svc.log.Info("handoff.metrics", "dropped_carried", carried.Addr().String(), "metrics_addr", svc.cfg.MetricsAddr)
		carried.Close()
		carried = nil
	}
	if svc.cfg.MetricsAddr == "" {
		return nil
	}
	ln := carried
	if ln == nil {
		var err error
		if ln, err = listenMetrics(svc.cfg.MetricsAddr); err != nil {
			return err
		}
	}
	svc.metrics = serveMetrics(ln, svc.reg, svc.log)
	return nil
}

// sighup starts a swap to the configured binary, as `handoff upgrade` does.
func (svc *service) sighup(ctx context.Context) {
	svc.log.Info("handoff.trigger", "signal", "SIGHUP", "binary", svc.cfg.Binary)
	svc.swaps.Add(1)
	go func() {
		defer svc.swaps.Done()
		_, _ = svc.swap(ctx, svc.spec(svc.cfg.Binary, false))
	}()
}

// shutdown stops the daemon gracefully (SIGTERM: it drains, seals and
// exits, SIGKILL after stop_grace) and releases everything: the trigger
// socket, metrics, the listening sockets and the unix socket files this
// supervisor created.
func (svc *service) shutdown() {
	svc.notifyLog(svc.notify.Stopping())
	svc.trigger.ln.Close()
	svc.swaps.Wait()
	svc.sup.Stop(svc.cfg.StopGrace)
	if svc.metrics != nil {
		svc.metrics.close()
	}
	errs := []error{svc.trigger.close(), svc.sup.Close()}
	releaseListeners(svc.listeners, false)
	if err := errors.Join(errs...); err != nil {
		svc.log.Warn("handoff.stop", "err", err)
	}
	svc.log.Info("handoff.stop", "stopped", true)
}

func (svc *service) notifyLog(err error) {
	if err != nil {
		svc.log.Warn("handoff.sd_notify", "err", err)
	}
}
