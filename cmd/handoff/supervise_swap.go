package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/handoff-go/handoff/internal/config"
	"github.com/handoff-go/handoff/supervisor"
)

// handle answers one trigger request.
func (svc *service) handle(ctx context.Context, w *eventWriter, req request) {
	switch req.Op {
	case opStatus:
		w.finish(svc.status(ctx))
	case opUpgrade:
		w.finish(svc.upgrade(ctx, req, w.emit))
	case opUpgradeSupervisor:
		w.finish(svc.reexec(req, w.emit))
	}
}

// upgrade runs the swap a client asked for, streaming its progress, and
// returns the final event: the outcome, or an error.
func (svc *service) upgrade(ctx context.Context, req request, emit func(any)) any {
	bin, err := svc.allowedBinary(req.Binary)
	if err != nil {
		return errorFor(err)
	}
	spec := svc.spec(bin, req.DryRun)
	spec.SHA256 = req.SHA256
	spec.OnEvent = func(p supervisor.Progress) { emit(newProgress(p)) }
	out, err := svc.swap(ctx, spec)
	if err != nil && (!errors.Is(err, supervisor.ErrRolledBack) || errors.Is(err, supervisor.ErrBadBinary)) {
		return errorFor(err)
	}
	return newOutcome(out)
}

// allowedBinary resolves the binary a request names: empty means the
// configured one; any other must resolve (links followed) to the same file
// as the configured binary or an allowed_binaries entry, resolved now. The
// resolved path is what runs, so a link flipped after the check changes
// nothing.
func (svc *service) allowedBinary(bin string) (string, error) {
	if bin == "" {
		bin = svc.cfg.Binary
		if err := config.CheckExecutable(bin); err != nil {
			return "", fmt.Errorf("%w: configured binary: %w", supervisor.ErrBadBinary, err)
		}
		return bin, nil
	}
	real, err := realPath(bin)
	if err != nil {
		return "", fmt.Errorf("%w: %w", supervisor.ErrBadBinary, err)
	}
	if !isAllowed(real, append([]string{svc.cfg.Binary}, svc.cfg.AllowedBinaries...)) {
		return "", fmt.Errorf("%w: binary %s (resolved %s) is neither the configured binary %s nor in allowed_binaries of %s",
			errNotAllowed, bin, real, svc.cfg.Binary, svc.cfg.File)
	}
	if err := config.CheckExecutable(real); err != nil {
		return "", fmt.Errorf("%w: %w", supervisor.ErrBadBinary, err)
	}
	return real, nil
}

// isAllowed reports whether real (resolved) is one of names, each resolved
// now.
func isAllowed(real string, names []string) bool {
	for _, c := range names {
		if r, err := realPath(c); err == nil && r == real {
			return true
		}
	}
	return false
}

// realPath is the absolute path with every symlink resolved.
func realPath(p string) (string, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	return filepath.EvalSymlinks(abs)
}

// swap performs one handoff, telling systemd about the reload around it
// (a dry run is no reload), and logs and records the outcome.
func (svc *service) swap(ctx context.Context, spec supervisor.SpawnSpec) (supervisor.Outcome, error) {
	if !spec.DryRun {
		svc.notifyLog(svc.notify.Reloading())
	}
	out, err := svc.sup.PerformHandoff(ctx, spec)
	if !spec.DryRun {
		svc.notifyLog(svc.notify.Ready())
	}
	svc.mu.Lock()
	svc.lastAt = time.Now()
	svc.mu.Unlock()
	svc.logOutcome(out, err)
	svc.updateStatus()
	return out, err
}

func (svc *service) logOutcome(out supervisor.Outcome, err error) {
	switch {
	case err == nil && out.Committed:
		svc.log.Info("handoff.outcome", "committed", true, "old_pid", out.OldPID, "new_pid", out.NewPID, "binary", out.Binary, "build", out.BuildID, "total", out.Total)
	case err == nil:
		svc.log.Info("handoff.outcome", "dry_run", true, "pid", out.NewPID, "binary", out.Binary, "build", out.BuildID, "total", out.Total)
	case errors.Is(err, supervisor.ErrRolledBack):
		svc.log.Warn("handoff.outcome", "rolled_back", true, "reason", out.Reason, "cause", out.Cause, "pid", out.OldPID)
	default:
		svc.log.Warn("handoff.outcome", "err", err)
	}
}

// errorFor turns an error into the event a client gets, with the code it
// can act on.
func errorFor(err error) errorEvent {
	return errorEvent{Event: evError, Code: errorCode(err), Error: err.Error()}
}

func errorCode(err error) string {
	switch {
	case errors.Is(err, supervisor.ErrHandoffInProgress):
		return codeInProgress
	case errors.Is(err, supervisor.ErrBadBinary):
		return codeBadBinary
	case errors.Is(err, errNotAllowed):
		return codeNotAllowed
	case errors.Is(err, supervisor.ErrNoIncumbent):
		return codeNoIncumbent
	case errors.Is(err, errBadRequest):
		return codeBadRequest
	case errors.Is(err, supervisor.ErrClosed), errors.Is(err, context.Canceled):
		return codeStopping
	}
	return codeInternal
}
