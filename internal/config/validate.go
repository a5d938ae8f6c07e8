package config

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/handoff-go/handoff/internal/listenenv"
)

// MaxSocketPath is the longest unix socket path the kernel accepts
// (sizeof(sun_path) minus the terminating NUL).
const MaxSocketPath = 107

// reservedEnv are variables the supervisor sets for each daemon generation.
var reservedEnv = listenenv.ContractVars()

// validator turns a decoded document into a Config, checking each field in
// a fixed order and stopping at the first problem.
type validator struct {
	file  string
	dir   string // absolute directory of the file: base of relative paths
	lines lineIndex
}

type step func(raw *fileSchema, c *Config) error

func (v *validator) build(raw *fileSchema) (*Config, error) {
	c := &Config{Args: raw.Args, Env: raw.Env}
	steps := []step{v.sockets, v.binary, v.env, v.paths, v.allowedBinaries, v.allowedUIDs,
		v.durations, v.maxDraining, v.metrics, v.listeners}
	for _, s := range steps {
		if err := s(raw, c); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// errorf builds the FieldError for field, with the line of the key (or of
// its enclosing table) when the file has it.
func (v *validator) errorf(field, format string, args ...any) error {
	return &FieldError{File: v.file, Line: v.lines.lookup(field), Field: field, Err: fmt.Errorf(format, args...)}
}

// resolve makes p absolute against the config file's directory.
func (v *validator) resolve(p string) string {
	if filepath.IsAbs(p) {
		return filepath.Clean(p)
	}
	return filepath.Join(v.dir, p)
}

func (v *validator) requiredPath(field, hint string, p *string) (string, error) {
	if p == nil {
		return "", v.errorf(field, "is required: %s", hint)
	}
	if strings.TrimSpace(*p) == "" {
		return "", v.errorf(field, "is empty: %s", hint)
	}
	return v.resolve(*p), nil
}

func (v *validator) socketPath(field, hint string, p *string) (string, error) {
	path, err := v.requiredPath(field, hint, p)
	if err != nil {
		return "", err
	}
	if len(path) > MaxSocketPath {
		return "", v.errorf(field, "%s is %d bytes long; a unix socket path may have at most %d: choose a shorter directory", path, len(path), MaxSocketPath)
	}
	return path, nil
}

func (v *validator) sockets(raw *fileSchema, c *Config) (err error) {
	c.ControlSocket, err = v.socketPath("control_socket", "the path where the daemon listens for the supervisor, e.g. \"/run/kvd/control.sock\"", raw.ControlSocket)
	if err != nil {
		return err
	}
	c.TriggerSocket, err = v.socketPath("trigger_socket", "the path where `handoff upgrade` reaches the supervisor, e.g. \"/run/kvd/trigger.sock\"", raw.TriggerSocket)
	if err != nil {
		return err
	}
	if c.TriggerSocket == c.ControlSocket {
		return v.errorf("trigger_socket", "is the same path as control_socket (%s); give each its own", c.ControlSocket)
	}
	return nil
}

func (v *validator) binary(raw *fileSchema, c *Config) (err error) {
	c.Binary, err = v.requiredPath("binary", "the daemon executable, e.g. \"/usr/local/bin/kvd\"", raw.Binary)
	if err != nil {
		return err
	}
	if err := CheckExecutable(c.Binary); err != nil {
		return v.errorf("binary", "%w", err)
	}
	return nil
}

// CheckExecutable reports why path (links followed) cannot be executed: it
// must exist, be a regular file and be executable by this user. The
// supervisor also uses it before a swap to a binary named at request time.
func CheckExecutable(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if fi.IsDir() {
		return fmt.Errorf("%s is a directory, not an executable file", path)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file (%v)", path, fi.Mode().Type())
	}
	if fi.Mode().Perm()&0o111 == 0 || unix.Access(path, unix.X_OK) != nil {
		return fmt.Errorf("%s is not executable by this user (mode %v): chmod +x it", path, fi.Mode().Perm())
	}
	return nil
}

func (v *validator) env(raw *fileSchema, c *Config) error {
	keys := make([]string, 0, len(raw.Env))
	for k := range raw.Env {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if err := checkEnv(k, raw.Env[k]); err != nil {
			return v.errorf("env."+k, "%w", err)
		}
	}
	return nil
}

func checkEnv(key, val string) error {
	switch {
	case key == "":
		return fmt.Errorf("empty variable name")
	case strings.ContainsAny(key, "=\x00"):
		return fmt.Errorf("variable name %q contains '=' or NUL", key)
	case strings.ContainsRune(val, 0):
		return fmt.Errorf("value contains NUL")
	case slices.Contains(reservedEnv, key):
		return fmt.Errorf("%s is set by the supervisor for each daemon generation; remove it", key)
	}
	return nil
}

func (v *validator) paths(raw *fileSchema, c *Config) error {
	if raw.DataDir != nil {
		if strings.TrimSpace(*raw.DataDir) == "" {
			return v.errorf("data_dir", "is empty: remove the key or name the daemon's data directory")
		}
		c.DataDir = v.resolve(*raw.DataDir)
	}
	c.Journal = c.TriggerSocket + JournalSuffix
	if raw.Journal != nil {
		if strings.TrimSpace(*raw.Journal) == "" {
			return v.errorf("journal", "is empty: remove the key for the default (%s) or name a file", c.Journal)
		}
		c.Journal = v.resolve(*raw.Journal)
	}
	return nil
}

func (v *validator) allowedBinaries(raw *fileSchema, c *Config) error {
	for i, b := range raw.AllowedBinaries {
		if strings.TrimSpace(b) == "" {
			return v.errorf(fmt.Sprintf("allowed_binaries[%d]", i), "is empty: name an executable path")
		}
		c.AllowedBinaries = append(c.AllowedBinaries, v.resolve(b))
	}
	return nil
}

func (v *validator) allowedUIDs(raw *fileSchema, c *Config) error {
	for i, u := range raw.AllowedUIDs {
		if u < 0 || u >= 1<<32-1 {
			return v.errorf(fmt.Sprintf("allowed_uids[%d]", i), "%d is not a uid (0 to %d)", u, uint32(1<<32-2))
		}
		c.AllowedUIDs = append(c.AllowedUIDs, uint32(u))
	}
	return nil
}

func (v *validator) durations(raw *fileSchema, c *Config) (err error) {
	fields := []struct {
		name string
		raw  *string
		dst  *time.Duration
		def  time.Duration
	}{
		{"deadline", raw.Deadline, &c.Deadline, DefaultDeadline},
		{"drain_grace", raw.DrainGrace, &c.DrainGrace, DefaultDrainGrace},
		{"exit_grace", raw.ExitGrace, &c.ExitGrace, DefaultExitGrace},
		{"stop_grace", raw.StopGrace, &c.StopGrace, DefaultStopGrace},
	}
	for _, f := range fields {
		if *f.dst, err = v.duration(f.name, f.raw, f.def); err != nil {
			return err
		}
	}
	if c.DrainGrace >= c.Deadline {
		return v.errorf("drain_grace", "%v must be shorter than deadline (%v): the deadline covers the drain and everything after it", c.DrainGrace, c.Deadline)
	}
	return nil
}

func (v *validator) duration(field string, p *string, def time.Duration) (time.Duration, error) {
	if p == nil {
		return def, nil
	}
	d, err := time.ParseDuration(*p)
	if err != nil {
		return 0, v.errorf(field, "%q is not a duration: write it like \"60s\" or \"1m30s\"", *p)
	}
	if d <= 0 {
		return 0, v.errorf(field, "%q must be positive (default %v)", *p, def)
	}
	return d, nil
}

func (v *validator) maxDraining(raw *fileSchema, c *Config) error {
	c.MaxDraining = DefaultMaxDraining
	if raw.MaxDraining == nil {
		return nil
	}
	if *raw.MaxDraining < 0 || *raw.MaxDraining > 1000 {
		return v.errorf("max_draining", "%d is out of range 0 to 1000 (default %d)", *raw.MaxDraining, DefaultMaxDraining)
	}
	c.MaxDraining = int(*raw.MaxDraining)
	return nil
}

func (v *validator) metrics(raw *fileSchema, c *Config) error {
	if raw.MetricsAddr == nil {
		return nil
	}
	if err := checkHostPort("tcp", *raw.MetricsAddr); err != nil {
		return v.errorf("metrics_addr", "%w", err)
	}
	c.MetricsAddr = *raw.MetricsAddr
	return nil
}
