package handoff

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/handoff-go/handoff/internal/sessioncap"
)

// maxSessions bounds concurrent control connections, so a flood of
// connections cannot exhaust the incumbent. When every slot is taken, a new
// connection evicts the oldest one that has not completed its handshake:
// silent peers cannot lock the supervisor out (see internal/sessioncap).
const maxSessions = 16

// stopBudget bounds a graceful stop (Drain and Seal) started by cancelling
// Serve's context.
const stopBudget = 30 * time.Second

// Incumbent is the serving daemon's side of the protocol: it owns the control
// socket path and the data-dir lock, answers the supervisor, and runs the
// daemon's [Drainable] hooks during a swap.
type Incumbent struct {
	ctl     *controlSocket
	lock    *DataDirLock
	opts    options
	started time.Time
	d       Drainable

	swapMu    sync.Mutex // held for a whole swap; one swap at a time
	sealed    bool       // guarded by swapMu: Seal succeeded, not resumed
	committed chan struct{}
	commitOne sync.Once
	stopping  chan struct{}
	stopOne   sync.Once
	served    atomic.Bool

	sessions *sessioncap.Table
}

// BindColdStart binds the control socket path for a daemon started without a
// predecessor and returns its incumbent. lock must be held. A path on which a
// live process answers is never replaced ([ErrSocketPathTaken]); a stale
// socket file is replaced atomically.
func BindColdStart(socketPath string, lock *DataDirLock, opts ...Option) (*Incumbent, error) {
	if lock == nil || !lock.held() {
		return nil, fmt.Errorf("handoff: BindColdStart needs the data-dir lock held: %w", ErrLockHeld)
	}
	if err := checkNotLive(socketPath); err != nil {
		return nil, err
	}
	return newIncumbent(socketPath, lock, opts)
}

func newIncumbent(socketPath string, lock *DataDirLock, opts []Option) (*Incumbent, error) {
	o := defaultOptions()
	for _, opt := range opts {
		opt(&o)
	}
	ctl, err := bindControl(socketPath)
	if err != nil {
		return nil, err
	}
	return &Incumbent{
		ctl:       ctl,
		lock:      lock,
		opts:      o,
		started:   time.Now(),
		committed: make(chan struct{}),
		stopping:  make(chan struct{}),
		sessions:  sessioncap.New(maxSessions),
	}, nil
}

// Serve answers the supervisor until a swap commits or ctx is cancelled.
//
// It returns nil after Commit: the daemon has sealed, a successor serves,
// and the daemon should exit. When ctx is cancelled outside a swap it stops
// gracefully (Drain, Seal, release the lock, remove the control socket path
// while it is still ours) and returns nil, or the hook's error.
func (inc *Incumbent) Serve(ctx context.Context, d Drainable) error {
	if inc.served.Swap(true) {
		return fmt.Errorf("handoff: Incumbent.Serve called twice: %w", ErrUsed)
	}
	inc.d = d
	acceptDone := make(chan error, 1)
	go func() { acceptDone <- inc.acceptLoop() }()
	var err error
	select {
	case <-inc.committed:
	case <-ctx.Done():
		err = inc.stop()
	case err = <-acceptDone:
		err = fmt.Errorf("handoff: control socket %s: %w", inc.ctl.path, err)
	}
	inc.shutdownSessions()
	return err
}

// Committed is closed once a swap committed (for daemons that watch it
// besides Serve's return).
func (inc *Incumbent) Committed() <-chan struct{} { return inc.committed }

func (inc *Incumbent) acceptLoop() error {
	for {
		c, err := inc.ctl.ln.AcceptUnix()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		slot, how := inc.sessions.Admit(c)
		switch how {
		case sessioncap.Refused:
			c.Close()
			inc.reportSessionLimit("refused a control connection: every session has completed its handshake")
			continue
		case sessioncap.AdmittedByEviction:
			inc.reportSessionLimit("closed the oldest control connection that had not completed its handshake")
		}
		go func() {
			defer slot.Release()
			defer c.Close()
			inc.session(c, slot)
		}()
	}
}

// reportSessionLimit logs that the session limit was hit (rate-limited by
// the table).
func (inc *Incumbent) reportSessionLimit(what string) {
	if inc.sessions.ReportLimit() {
		inc.opts.logger.Warn("handoff.session_limit", "limit", maxSessions, "what", what)
	}
}

// shutdownSessions stops accepting, closes every open control connection and
// waits for their goroutines.
func (inc *Incumbent) shutdownSessions() {
	inc.ctl.close()
	inc.sessions.Shutdown()
}

func (inc *Incumbent) markCommitted() {
	inc.commitOne.Do(func() { close(inc.committed) })
}

// stop is the graceful stop of a cancelled Serve.
func (inc *Incumbent) stop() error {
	inc.stopOne.Do(func() { close(inc.stopping) })
	inc.ctl.close()
	inc.swapMu.Lock()
	defer inc.swapMu.Unlock()
	select {
	case <-inc.committed:
		return nil
	default:
	}
	if inc.sealed { // stopped while waiting for the lock: nothing to write
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), stopBudget)
	defer cancel()
	inc.opts.logger.Info("handoff.stop", "pid", os.Getpid())
	if _, err := inc.d.Drain(ctx); err != nil {
		return fmt.Errorf("handoff: graceful stop: drain: %w", err)
	}
	if _, err := inc.d.Seal(ctx); err != nil {
		return fmt.Errorf("handoff: graceful stop: seal: %w", err)
	}
	inc.ctl.removeIfOwned()
	return inc.lock.Release()
}
