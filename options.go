package handoff

import (
	"log/slog"
)

// Option configures an [Incumbent] (see [BindColdStart] and
// [Begun.AnnounceAndBind]).
type Option func(*options)

type options struct {
	listeners *Listeners
	buildID   string
	logger    *slog.Logger
}

func defaultOptions() options {
	return options{logger: slog.Default()}
}

// WithListeners gives the incumbent the daemon's inherited listeners, so that
// it can hand duplicates to a restarted supervisor. Default: none.
func WithListeners(ls *Listeners) Option { return func(o *options) { o.listeners = ls } }

// WithBuildID sets the build id the incumbent reports in Hello and status.
// Default: empty.
func WithBuildID(id string) Option { return func(o *options) { o.buildID = id } }

// WithLogger sets the logger for protocol events. Default: [slog.Default].
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }
