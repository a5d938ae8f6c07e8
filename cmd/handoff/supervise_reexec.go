package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/handoff-go/handoff/internal/config"
	"github.com/handoff-go/handoff/internal/sdnotify"
	"github.com/handoff-go/handoff/internal/sysx"
	"github.com/handoff-go/handoff/supervisor"
)

// The supervisor upgrades itself in place (`handoff upgrade --supervisor`):
// it execs the new supervisor binary with the same pid, so systemd and other
// process managers see no change, carrying its listening sockets, its
// trigger socket and its state (the incumbent, draining generations, the
// last outcome) through the exec. The incumbent is not touched. A binary
// that fails its pre-flight run replaces nothing; one that rejects the
// carried state execs the previous binary back.

// Names of the program's own sockets among the carried files.
const (
	triggerName = "trigger"
	metricsName = "metrics"
)

// reexec handles an upgrade-supervisor request. On success the process is
// replaced and never returns here; the client sees the connection close
// after the "reexec" step and asks the new image for its status.
func (svc *service) reexec(req request, emit func(any)) any {
	bin, err := svc.allowedSupervisorBinary(req.Binary)
	if err != nil {
		return errorFor(err)
	}
	trig, err := sysx.DupFile(svc.trigger.ln, triggerName)
	if err != nil {
		return errorFor(err)
	}
	defer trig.Close()
	extra := []supervisor.Listener{{Name: triggerName, File: trig}}
	if svc.metrics != nil {
		// The same metrics socket, so a scrape during the exec waits in
		// its backlog instead of being refused.
		sc, ok := svc.metrics.ln.(syscall.Conn)
		if !ok {
			return errorFor(fmt.Errorf("handoff: metrics listener %T has no descriptor to carry", svc.metrics.ln))
		}
		m, err := sysx.DupFile(sc, metricsName)
		if err != nil {
			return errorFor(err)
		}
		defer m.Close()
		extra = append(extra, supervisor.Listener{Name: metricsName, File: m})
	}
	emit(progressEvent{Event: evProgress, Step: "reexec", Detail: fmt.Sprintf("pid %d execs %s", os.Getpid(), bin)})
	svc.notifyLog(svc.notify.Reloading())
	err = svc.sup.Reexec(bin, os.Args, svc.execEnv(), extra)
	svc.notifyLog(svc.notify.Ready())
	return errorEvent{Event: evError, Code: codeReexecFailed, Error: err.Error()}
}

// allowedSupervisorBinary resolves the supervisor binary a request names:
// empty means this program's own path (which a package upgrade has replaced
// with the new file); any other must be in allowed_binaries.
func (svc *service) allowedSupervisorBinary(bin string) (string, error) {
	self, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("%w: own executable: %w", supervisor.ErrBadBinary, err)
	}
	if bin == "" {
		bin = self
	}
	real, err := realPath(bin)
	if err != nil {
		return "", fmt.Errorf("%w: %w", supervisor.ErrBadBinary, err)
	}
	if ownReal, err := realPath(self); (err != nil || real != ownReal) && !isAllowed(real, svc.cfg.AllowedBinaries) {
		return "", fmt.Errorf("%w: supervisor binary %s (resolved %s) is neither this program (%s) nor in allowed_binaries of %s",
			errNotAllowed, bin, real, self, svc.cfg.File)
	}
	if err := config.CheckExecutable(real); err != nil {
		return "", fmt.Errorf("%w: %w", supervisor.ErrBadBinary, err)
	}
	return real, nil
}

// execEnv is the environment of the next image: ours, with the systemd
// notify socket put back (reading it removed it, so that daemons do not
// inherit it).
func (svc *service) execEnv() []string {
	env := os.Environ()
	if s := svc.notify.Socket(); s != "" {
		env = append(env, "NOTIFY_SOCKET="+s)
	}
	return env
}

// newCarriedService rebuilds the service from the state a previous
// supervisor binary carried through exec. Anything it cannot take over
// sends the process back to the previous binary with the same state.
func newCarriedService(cfg *config.Config, log *slog.Logger, c *supervisor.Carried, cerr error) (*service, error) {
	if cerr != nil {
		return nil, c.ExecBack(os.Args, cerr)
	}
	svc, err := carriedService(cfg, log, c)
	if err != nil {
		return nil, c.ExecBack(os.Args, err)
	}
	log.Info("handoff.reexec", "carried", true, "incumbent", svc.sup.Incumbent(), "listeners", svc.sup.Listeners())
	return svc, nil
}

func carriedService(cfg *config.Config, log *slog.Logger, c *supervisor.Carried) (*service, error) {
	notify, err := sdnotify.FromEnv()
	if err != nil {
		return nil, err
	}
	extra, err := c.Extra()
	if err != nil {
		return nil, err
	}
	// The carried descriptors stay open until the service is built: if it
	// cannot be, ExecBack hands them to the previous binary at the same
	// numbers. Once built, the servers hold duplicates of their own.
	built := false
	defer func() {
		if built {
			for _, f := range extra {
				f.Close()
			}
		}
	}()
	svc := &service{cfg: cfg, log: log, notify: notify, reg: prometheus.NewRegistry(), carried: true}
	svc.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if svc.trigger, err = carriedTrigger(cfg.TriggerSocket, extra[triggerName]); err != nil {
		return nil, err
	}
	if f := extra[metricsName]; f != nil {
		ln, err := net.FileListener(f)
		if err != nil {
			return nil, fmt.Errorf("handoff: carried metrics socket: %w", err)
		}
		svc.carriedMetrics = ln
	}
	if svc.sup, err = c.Supervisor(svc.options()...); err != nil {
		return nil, err
	}
	svc.listeners = adoptedListeners(cfg, svc.sup)
	built = true
	return svc, nil
}

// carriedTrigger serves the trigger socket the previous image listened on:
// the same socket, so no client that connected meanwhile is refused.
func carriedTrigger(path string, f *os.File) (*triggerServer, error) {
	if f == nil {
		return nil, errors.New("handoff: the carried state has no trigger socket")
	}
	l, err := net.FileListener(f)
	if err != nil {
		return nil, fmt.Errorf("handoff: carried trigger socket: %w", err)
	}
	ln, ok := l.(*net.UnixListener)
	if !ok {
		l.Close()
		return nil, fmt.Errorf("handoff: carried trigger socket is a %T", l)
	}
	ln.SetUnlinkOnClose(false)
	owned, err := own(path)
	if err != nil {
		ln.Close()
		return nil, err
	}
	return newTriggerServer(ln, path, owned), nil
}

// reconcileAdopted makes the listeners taken back from an adopted incumbent
// match the config: a configured listener the incumbent does not hold is
// bound now (daemons get it from the next swap on), and one no longer
// configured is dropped with a warning. The order is the config's.
func (svc *service) reconcileAdopted(ctx context.Context) error {
	have := svc.sup.Listeners()
	var keep []supervisor.Listener
	var held []heldListener
	for _, l := range svc.cfg.Listeners {
		if slices.Contains(have, l.Name) {
			keep = append(keep, supervisor.Listener{Name: l.Name, File: svc.sup.ListenerFile(l.Name)})
			continue
		}
		h, err := bindOne(ctx, l)
		if err != nil {
			return fmt.Errorf("handoff: listener %s, configured but not held by the adopted incumbent: %w", l.Name, err)
		}
		svc.log.Info("handoff.listen", "listener", l.Name, "note", "bound now; daemons receive it from the next swap on")
		keep = append(keep, supervisor.Listener{Name: l.Name, File: h.file})
		held = append(held, h)
	}
	for _, name := range have {
		if !slices.ContainsFunc(svc.cfg.Listeners, func(l config.Listener) bool { return l.Name == name }) {
			svc.log.Warn("handoff.listen", "listener", name, "warning", "held by the adopted incumbent but no longer configured; dropped")
		}
	}
	if err := svc.sup.SetListeners(keep); err != nil {
		releaseListeners(held, true)
		return err
	}
	return nil
}
