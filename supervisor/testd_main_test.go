package supervisor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/handoff-go/handoff"
)

// Environment of the test daemon (role "daemon"), set by each test per
// spawn.
const (
	envData    = "TESTD_DATA"    // data directory
	envControl = "TESTD_CONTROL" // control socket path
	envBuild   = "TESTD_BUILD"   // build id
	envFail    = "TESTD_FAIL"    // comma-separated behaviours, some with =value
	envHold    = "TESTD_HOLD"    // comma-separated hold points
	envNotify  = "TESTD_NOTIFY"  // the test's event socket
	envTag     = "TESTD_TAG"     // marks every process of one test
)

// Behaviours (TESTD_FAIL):
//
//	exit-at-start      successor exits before Hello
//	exit-before-ready  successor exits after taking the lock, before Ready
//	never-ready        successor takes the lock and never sends Ready
//	unhealthy          successor reports HealthzOK=false
//	behind             successor advertises a revision behind the sealed one
//	seal               Seal fails (after closing its state)
//	drain-slow         Drain runs until its grace expires
//	seal-slow=DUR      Seal takes DUR (heartbeats must cover it)
//	open-slow=DUR      successor takes DUR to open its state, holding the lock
//	slow-term          SIGTERM is ignored (only SIGKILL stops the process)
//
// Hold points (TESTD_HOLD) make the daemon report "<point> <pid>" on the
// event socket and block until the test releases it:
//
//	warmup   successor, before Hello
//	begun    successor, after Begin, before taking the lock
//	open     successor, holding the lock, before opening its state
//	drain    incumbent, in Drain after it stopped accepting
//	seal     incumbent, at the start of Seal
//	exit     incumbent, after Serve returned on Commit, before exiting

type daemonConfig struct {
	data, control, build, notify string
	failSet                      map[string]string
	holdSet                      map[string]bool
	log                          *slog.Logger
}

func loadDaemonConfig() *daemonConfig {
	cfg := &daemonConfig{
		data: os.Getenv(envData), control: os.Getenv(envControl), build: os.Getenv(envBuild),
		notify: os.Getenv(envNotify), failSet: map[string]string{}, holdSet: map[string]bool{},
	}
	for _, f := range splitList(os.Getenv(envFail)) {
		k, v, _ := strings.Cut(f, "=")
		cfg.failSet[k] = v
	}
	for _, h := range splitList(os.Getenv(envHold)) {
		cfg.holdSet[h] = true
	}
	cfg.log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).
		With("proc", "testd", "pid", os.Getpid(), "build", cfg.build)
	return cfg
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func (c *daemonConfig) fails(name string) bool { _, ok := c.failSet[name]; return ok }

func (c *daemonConfig) duration(name string) time.Duration {
	d, _ := time.ParseDuration(c.failSet[name])
	return d
}

// hold reports point to the test and blocks until the test releases it (or
// goes away). Each point holds once per process.
func (c *daemonConfig) hold(point string) {
	if !c.holdSet[point] {
		return
	}
	delete(c.holdSet, point)
	c.log.Info("testd.hold", "point", point)
	conn := c.report("hold", point)
	if conn == nil {
		return
	}
	_, _ = io.Copy(io.Discard, conn)
	conn.Close()
	c.log.Info("testd.released", "point", point)
}

// event reports point to the test without waiting.
func (c *daemonConfig) event(point string) {
	if conn := c.report("event", point); conn != nil {
		conn.Close()
	}
}

func (c *daemonConfig) report(kind, point string) net.Conn {
	if c.notify == "" {
		return nil
	}
	conn, err := net.Dial("unix", c.notify)
	if err != nil {
		c.log.Warn("testd.notify", "err", err)
		return nil
	}
	if _, err := fmt.Fprintf(conn, "%s %s %d\n", kind, point, os.Getpid()); err != nil {
		conn.Close()
		return nil
	}
	return conn
}

// roleDaemon is the test daemon: it follows the library's daemon flow
// (DetectRole, then a cold start or the successor's steps, then Serve).
func roleDaemon() int {
	cfg := loadDaemonConfig()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var incumbent atomic.Bool
	watchSignals(cfg, &incumbent, cancel)
	role, err := handoff.DetectRole()
	if err != nil {
		cfg.log.Error("testd.detect", "err", err)
		return 2
	}
	switch r := role.(type) {
	case *handoff.ColdStart:
		return coldStart(ctx, cfg, r, &incumbent)
	case *handoff.Successor:
		return takeOver(ctx, cfg, r, &incumbent)
	}
	return 2
}

// watchSignals: before it is the incumbent the daemon has nothing to save
// and exits at once on SIGTERM; afterwards SIGTERM is a graceful stop.
func watchSignals(cfg *daemonConfig, incumbent *atomic.Bool, cancel context.CancelFunc) {
	if cfg.fails("slow-term") {
		signal.Ignore(syscall.SIGTERM)
		return
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		sig := <-sigs
		cfg.log.Info("testd.signal", "signal", sig, "incumbent", incumbent.Load())
		if !incumbent.Load() {
			os.Exit(143)
		}
		cancel()
	}()
}

func coldStart(ctx context.Context, cfg *daemonConfig, r *handoff.ColdStart, incumbent *atomic.Bool) int {
	lock, err := handoff.AcquireOrBreakStale(cfg.data)
	if err != nil {
		cfg.log.Error("testd.lock", "err", err)
		return 1
	}
	st, err := openStore(cfg.data)
	if err != nil {
		cfg.log.Error("testd.open", "err", err)
		return 1
	}
	ln, err := r.Listeners.Listener("http")
	if err != nil {
		cfg.log.Error("testd.listener", "err", err)
		return 1
	}
	inc, err := handoff.BindColdStart(cfg.control, lock, handoff.WithListeners(r.Listeners),
		handoff.WithBuildID(cfg.build), handoff.WithLogger(cfg.log))
	if err != nil {
		cfg.log.Error("testd.bind", "err", err)
		return 1
	}
	incumbent.Store(true)
	return serve(ctx, cfg, inc, ln, st)
}

func takeOver(ctx context.Context, cfg *daemonConfig, r *handoff.Successor, incumbent *atomic.Bool) int {
	cfg.hold("warmup")
	if cfg.fails("exit-at-start") {
		return 3
	}
	hs, err := r.Handshake(ctx, cfg.build)
	if err != nil {
		cfg.log.Error("testd.handshake", "err", err)
		return 1
	}
	begun, err := hs.WaitForBegin(ctx)
	if err != nil {
		cfg.log.Info("testd.begin", "err", err, "aborted", errors.Is(err, handoff.ErrAborted))
		return 0 // aborted (or a dry run): exit without having written
	}
	cfg.hold("begun")
	lock, err := handoff.AcquireLock(cfg.data)
	if err != nil {
		cfg.log.Error("testd.lock", "err", err)
		return 1
	}
	cfg.hold("open")
	if d := cfg.duration("open-slow"); d > 0 {
		cfg.log.Info("testd.open", "slow", d)
		time.Sleep(d) // opening is slow on purpose; heartbeats must cover it
	}
	if cfg.fails("exit-before-ready") {
		return 3
	}
	st, err := openStore(cfg.data)
	if err != nil {
		cfg.log.Error("testd.open", "err", err)
		return 1
	}
	if cfg.fails("never-ready") {
		cfg.log.Info("testd.never-ready")
		<-ctx.Done()
		return 1
	}
	inc, err := begun.AnnounceAndBind(ctx, readiness(cfg, st), cfg.control, lock, handoff.WithLogger(cfg.log))
	if err != nil {
		cfg.log.Info("testd.announce", "err", err, "aborted", errors.Is(err, handoff.ErrAborted))
		_ = st.close()
		_ = lock.Release()
		return 1
	}
	incumbent.Store(true)
	ln, err := begun.Listeners().Listener("http")
	if err != nil {
		cfg.log.Error("testd.listener", "err", err)
		return 1
	}
	return serve(ctx, cfg, inc, ln, st)
}

func readiness(cfg *daemonConfig, st *kvStore) handoff.ReadinessSnapshot {
	revs := []uint64{st.revision()}
	if cfg.fails("behind") {
		if revs[0] == 0 {
			revs = nil
		} else {
			revs[0]--
		}
	}
	return handoff.ReadinessSnapshot{ListeningOn: []string{"http"}, HealthzOK: !cfg.fails("unhealthy"),
		AdvertisedRevisionPerShard: revs}
}

func serve(ctx context.Context, cfg *daemonConfig, inc *handoff.Incumbent, ln net.Listener, st *kvStore) int {
	srv, err := newTestServer(ln, st, cfg, cfg.log)
	if err != nil {
		cfg.log.Error("testd.serve", "err", err)
		return 1
	}
	srv.start()
	cfg.log.Info("testd.serving", "revision", st.revision())
	cfg.event("serving")
	err = inc.Serve(ctx, srv)
	select {
	case <-inc.Committed():
		cfg.log.Info("testd.committed-away")
		cfg.hold("exit")
	default:
	}
	srv.shutdown()
	ln.Close()
	if err != nil {
		cfg.log.Error("testd.serve", "err", err)
		return 1
	}
	cfg.log.Info("testd.exit")
	return 0
}
