package supervisor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/handoff-go/handoff/internal/journal"
)

// Listener is one listening socket the supervisor holds for the whole
// service lifetime and hands to every daemon generation, under a name.
type Listener struct {
	Name string
	// File is the supervisor's own descriptor for the socket. The
	// supervisor owns it from New on and closes it only at Close.
	File *os.File
}

// Supervisor owns the listening sockets, spawns daemon generations and runs
// handoffs between them. Its methods are safe for concurrent use; at most one
// handoff runs at a time.
type Supervisor struct {
	controlPath string
	opts        options

	excl *exclusive // held for a whole handoff, cold start, restart or adoption

	mu        sync.Mutex
	listeners []Listener
	current   *generation   // the incumbent
	draining  []*generation // committed-away generations still exiting
	last      *Outcome
	closed    bool
}

// Option configures a Supervisor.
type Option func(*options)

type options struct {
	listeners   []Listener
	journalPath string
	logger      *slog.Logger
	metrics     *Metrics
	stdout      *os.File
	stderr      *os.File
	dataDir     string
	exitGrace   time.Duration
	killGrace   time.Duration
	maxDraining int
}

func defaultOptions() options {
	return options{
		logger:      slog.Default(),
		stdout:      os.Stdout,
		stderr:      os.Stderr,
		exitGrace:   10 * time.Second,
		killGrace:   2 * time.Second,
		maxDraining: 2,
	}
}

// WithListeners hands the supervisor its listening sockets, in the fixed
// order daemons receive them (fd 3, 4, …). Default: none.
func WithListeners(ls ...Listener) Option {
	return func(o *options) { o.listeners = append(o.listeners, ls...) }
}

// WithJournal sets the journal path. Default: none (a restarted supervisor
// then cannot tell which successor was in flight).
func WithJournal(path string) Option { return func(o *options) { o.journalPath = path } }

// WithLogger sets the logger. Default: [slog.Default].
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithMetrics records handoff metrics. Default: none.
func WithMetrics(m *Metrics) Option { return func(o *options) { o.metrics = m } }

// WithStdio sets the stdout and stderr every daemon generation inherits, so
// logs follow the service across swaps. Default: the supervisor's own.
func WithStdio(stdout, stderr *os.File) Option {
	return func(o *options) { o.stdout, o.stderr = stdout, stderr }
}

// WithDataDir names the daemon's data directory, so the supervisor can find
// the lock holder (from /proc/locks, never by taking the lock). Default: none.
func WithDataDir(dir string) Option { return func(o *options) { o.dataDir = dir } }

// WithExitGrace sets how long an old incumbent may take to exit after Commit
// before it is stopped (SIGTERM, then SIGKILL). Default: 10 s.
func WithExitGrace(d time.Duration) Option { return func(o *options) { o.exitGrace = d } }

// WithMaxDraining caps old generations still exiting after Commit; a handoff
// beyond the cap first stops the oldest. Default: 2.
func WithMaxDraining(n int) Option { return func(o *options) { o.maxDraining = n } }

// New creates a supervisor for the daemon whose control socket is at
// controlSocket.
func New(controlSocket string, opts ...Option) (*Supervisor, error) {
	if controlSocket == "" {
		return nil, errors.New("handoff: supervisor: control socket path is required")
	}
	o := defaultOptions()
	for _, opt := range opts {
		opt(&o)
	}
	if err := checkListenerNames(o.listeners); err != nil {
		return nil, err
	}
	return &Supervisor{controlPath: controlSocket, opts: o, listeners: o.listeners, excl: newExclusive()}, nil
}

func checkListenerNames(ls []Listener) error {
	seen := make(map[string]bool, len(ls))
	for _, l := range ls {
		if l.Name == "" || l.File == nil {
			return fmt.Errorf("handoff: supervisor: listener %q: name and file are required", l.Name)
		}
		if seen[l.Name] {
			return fmt.Errorf("handoff: supervisor: listener name %q used twice", l.Name)
		}
		seen[l.Name] = true
	}
	return nil
}

// ControlSocket returns the control socket path.
func (s *Supervisor) ControlSocket() string { return s.controlPath }

// Incumbent returns the pid of the current incumbent, or 0.
func (s *Supervisor) Incumbent() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.current == nil {
		return 0
	}
	return s.current.pid
}

// LastOutcome returns the outcome of the last handoff, if any.
func (s *Supervisor) LastOutcome() (Outcome, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.last == nil {
		return Outcome{}, false
	}
	return *s.last, true
}

// Close releases the supervisor's listening sockets. It does not stop the
// incumbent (see Stop). Idempotent.
func (s *Supervisor) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	var errs []error
	for _, l := range s.listeners {
		errs = append(errs, l.File.Close())
	}
	return errors.Join(errs...)
}

func (s *Supervisor) record(rec journal.Record) error {
	if s.opts.journalPath == "" {
		return nil
	}
	rec.UpdatedAt = time.Now()
	if err := journal.Write(s.opts.journalPath, rec); err != nil {
		return fmt.Errorf("handoff: supervisor: journal: %w", err)
	}
	return nil
}

func (s *Supervisor) logf() *slog.Logger { return s.opts.logger }

var _ io.Closer = (*Supervisor)(nil)

func (s *Supervisor) ctxErr(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	return nil
}
