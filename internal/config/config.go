package config

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// Defaults of the optional fields.
const (
	DefaultDeadline    = 60 * time.Second
	DefaultDrainGrace  = 25 * time.Second
	DefaultExitGrace   = 10 * time.Second
	DefaultStopGrace   = 30 * time.Second
	DefaultMaxDraining = 2
	// JournalSuffix is appended to trigger_socket to form the default
	// journal path.
	JournalSuffix = ".journal"
)

// Config is a validated supervisor configuration. Every path in it is
// absolute (or an abstract unix address starting with '@').
type Config struct {
	// File is the absolute path of the file it was read from.
	File string
	// ControlSocket is where the incumbent daemon listens for the supervisor
	// (key control_socket). Required.
	ControlSocket string
	// TriggerSocket is where `handoff upgrade` and `handoff status` talk to
	// the supervisor (key trigger_socket), mode 0600. Required.
	TriggerSocket string
	// Binary is the daemon executable started at cold start, on restarts
	// and by a swap without --binary (key binary). Required; it must exist
	// and be executable when the config is loaded.
	Binary string
	// Args are the daemon's arguments after the program name (key args).
	// Default: none.
	Args []string
	// Env is added to the supervisor's environment for the daemon (key env).
	// LISTEN_* and HANDOFF_ROLE/HANDOFF_SOCK_FD are refused: the supervisor
	// sets them. Default: none.
	Env map[string]string
	// DataDir is the daemon's data directory; the supervisor only reads who
	// holds its lock, never takes it (key data_dir). Default: unset.
	DataDir string
	// Journal is the supervisor's durable record of a swap in flight (key
	// journal). Default: trigger_socket + ".journal".
	Journal string
	// AllowedBinaries may be named by `handoff upgrade --binary` besides
	// Binary; compared after resolving symlinks on both sides, at request
	// time (key allowed_binaries). They need not exist yet. Default: none.
	AllowedBinaries []string
	// AllowedUIDs may use the trigger socket besides the supervisor's own
	// uid and root (key allowed_uids). Default: none.
	AllowedUIDs []uint32
	// Deadline bounds a whole swap (key deadline). Default: 60s.
	Deadline time.Duration
	// DrainGrace bounds the incumbent's Drain; shorter than Deadline (key
	// drain_grace). Default: 25s.
	DrainGrace time.Duration
	// ExitGrace is how long an old incumbent may keep finishing reads after
	// Commit before it is stopped (key exit_grace). Default: 10s.
	ExitGrace time.Duration
	// StopGrace is how long the incumbent may take to drain, seal and exit
	// when the supervisor stops, before SIGKILL (key stop_grace). Default: 30s.
	StopGrace time.Duration
	// MaxDraining caps old generations still exiting after Commit; a swap
	// beyond the cap first stops the oldest. 0 stops the old generation
	// before the next swap starts (key max_draining). Default: 2.
	MaxDraining int
	// MetricsAddr is the host:port where /metrics is served (key
	// metrics_addr). Default: unset, no metrics endpoint.
	MetricsAddr string
	// Listeners are the sockets the supervisor binds (or takes from systemd)
	// and hands to every daemon generation, in this order (tables
	// [[listener]]). Default: none.
	Listeners []Listener
}

// Listener is one [[listener]] table.
type Listener struct {
	// Name is the listener's name in LISTEN_FDNAMES (and, under socket
	// activation, the FileDescriptorName= of the systemd socket). Required,
	// unique.
	Name string
	// Network is one of tcp, tcp4, tcp6, unix, udp, udp4, udp6, unixgram.
	// Required.
	Network string
	// Address is host:port for tcp and udp, a path (or @abstract name) for
	// unix and unixgram. Required.
	Address string
}

// IsPacket reports whether the listener is a datagram socket (udp*,
// unixgram), bound with ListenPacket rather than Listen.
func (l Listener) IsPacket() bool {
	switch l.Network {
	case "udp", "udp4", "udp6", "unixgram":
		return true
	}
	return false
}

// IsUnixPath reports whether the listener is a unix socket bound to a file
// path (not an abstract address), whose file the supervisor manages.
func (l Listener) IsUnixPath() bool {
	return (l.Network == "unix" || l.Network == "unixgram") && !isAbstract(l.Address)
}

// Load reads, parses and validates the config file at path.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("handoff: config: %w", err)
	}
	return Parse(data, path)
}

// Parse validates data as the config file at path: path names the file in
// errors, and relative paths in data are resolved against its directory.
func Parse(data []byte, path string) (*Config, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("handoff: config %s: %w", path, err)
	}
	raw, err := decode(data, path)
	if err != nil {
		return nil, err
	}
	v := &validator{file: path, dir: filepath.Dir(abs), lines: keyLines(data)}
	cfg, err := v.build(raw)
	if err != nil {
		return nil, err
	}
	cfg.File = abs
	return cfg, nil
}

// SortedEnv returns Env as KEY=VALUE strings, sorted by key, as exec wants.
func (c *Config) SortedEnv() []string {
	keys := make([]string, 0, len(c.Env))
	for k := range c.Env {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		out = append(out, k+"="+c.Env[k])
	}
	return out
}

// TriggerSocket reads only trigger_socket from the config file at path,
// resolved as Load resolves it. Clients (`handoff upgrade`, `handoff
// status`) use it: they need nothing else, and may run as a user for whom
// the rest (the daemon binary, say) would not validate.
func TriggerSocket(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("handoff: config: %w", err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", fmt.Errorf("handoff: config %s: %w", path, err)
	}
	raw, err := decode(data, path)
	if err != nil {
		return "", err
	}
	v := &validator{file: path, dir: filepath.Dir(abs), lines: keyLines(data)}
	return v.socketPath("trigger_socket", "the path where `handoff upgrade` reaches the supervisor", raw.TriggerSocket)
}
