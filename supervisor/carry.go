package supervisor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/handoff-go/handoff/internal/sysx"
)

// A supervisor upgrades itself in place: it execs its new binary with the
// same pid (so systemd and other process managers see no change), carrying
// its listening sockets and its state across the exec. The incumbent is not
// touched; it stays the child of the same pid.

// CarryFormat is the version of the carried state. A binary refuses a state
// of a format it does not know, and the previous binary is exec'd back.
const CarryFormat = 1

// Environment variables of the exec contract between two supervisor binaries.
const (
	// EnvCarriedState holds the fd number of the carried state (a memfd).
	EnvCarriedState = "HANDOFF_SUPERVISOR_STATE_FD"
	// EnvCarriedFrom holds the path of the binary that exec'd us, to exec
	// back to if we cannot take the state over.
	EnvCarriedFrom = "HANDOFF_SUPERVISOR_PREVIOUS"
	// EnvPreflight is set when the new binary is first run as a child to
	// prove that it starts and accepts its arguments; it must check, touch
	// nothing, and exit 0 (see IsPreflight).
	EnvPreflight = "HANDOFF_SUPERVISOR_PREFLIGHT"
)

// preflightBudget bounds the pre-flight run of a new supervisor binary.
const preflightBudget = 10 * time.Second

// IsPreflight reports whether this process is the pre-flight run of a
// supervisor upgrade: it should validate its configuration, print nothing
// it would not print for --check, and exit 0 (or non-zero to refuse).
func IsPreflight() bool { return os.Getenv(EnvPreflight) == "1" }

// ErrCarriedState means the carried state could not be taken over.
var ErrCarriedState = errors.New("handoff: carried supervisor state rejected")

type carriedState struct {
	Format    int          `json:"format"`
	Control   string       `json:"control"`
	Listeners []carriedFD  `json:"listeners"`
	Extra     []carriedFD  `json:"extra,omitempty"`
	Incumbent *carriedGen  `json:"incumbent,omitempty"`
	Draining  []carriedGen `json:"draining,omitempty"`
	Last      *Outcome     `json:"last,omitempty"`
	// Metrics: what the metrics counted (absent from a supervisor that
	// records none, or from an older binary's state: counting restarts at
	// zero then).
	Metrics *metricsState `json:"metrics,omitempty"`
}

type carriedFD struct {
	Name string `json:"name"`
	FD   int    `json:"fd"`
}

type carriedGen struct {
	PID       int       `json:"pid"`
	Start     uint64    `json:"start"`
	Binary    string    `json:"binary"`
	BuildID   string    `json:"build_id,omitempty"`
	Args      []string  `json:"args,omitempty"`
	Env       []string  `json:"env,omitempty"`
	Dir       string    `json:"dir,omitempty"`
	StartedAt time.Time `json:"started_at"`
}

// Reexec replaces the running supervisor program with binary (argv, env),
// keeping the pid. Listening sockets and extra files (for example the
// program's trigger socket) stay open across the exec at the same fd
// numbers; the state travels in a memfd. It waits for a running handoff to
// finish first and starts none meanwhile.
//
// Before the exec, binary runs once as a child with EnvPreflight set; if
// that run fails (a binary that does not start, or refuses the
// configuration), nothing is replaced. It only returns on failure, with
// everything as it was.
func (s *Supervisor) Reexec(binary string, argv, env []string, extra []Listener) error {
	s.excl.lock(kindStart)
	defer s.excl.unlock()
	if err := preflight(binary, argv, env); err != nil {
		return err
	}
	st, files, err := s.carryState(extra)
	if err != nil {
		return err
	}
	state, err := writeState(st)
	if err != nil {
		return err
	}
	defer state.Close()
	if err := setInheritable(append(files, state), true); err != nil {
		_ = setInheritable(files, false)
		return err
	}
	self, _ := os.Executable()
	env = append(withoutCarry(env), EnvCarriedState+"="+strconv.Itoa(fdOf(state)), EnvCarriedFrom+"="+self)
	s.logf().Info("handoff.reexec", "binary", binary, "pid", os.Getpid())
	err = syscall.Exec(binary, argv, env)
	_ = setInheritable(files, false)
	return fmt.Errorf("handoff: exec %s: %w", binary, err)
}

// preflight runs the new supervisor binary as a child that checks and exits.
func preflight(binary string, argv, env []string) error {
	ctx, cancel := context.WithTimeout(context.Background(), preflightBudget)
	defer cancel()
	var args []string
	if len(argv) > 1 {
		args = argv[1:]
	}
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = append(withoutCarry(env), EnvPreflight+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("handoff: new supervisor binary %s failed its pre-flight run (%w): %s", binary, err, bytes.TrimSpace(out))
	}
	return nil
}

func (s *Supervisor) carryState(extra []Listener) (carriedState, []*os.File, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := carriedState{Format: CarryFormat, Control: s.controlPath, Last: s.last, Metrics: s.opts.metrics.state()}
	var files []*os.File
	for _, l := range s.listeners {
		st.Listeners = append(st.Listeners, carriedFD{Name: l.Name, FD: fdOf(l.File)})
		files = append(files, l.File)
	}
	for _, l := range extra {
		st.Extra = append(st.Extra, carriedFD{Name: l.Name, FD: fdOf(l.File)})
		files = append(files, l.File)
	}
	if s.current != nil && !s.current.hasExited() {
		g := carryGen(s.current)
		st.Incumbent = &g
	}
	for _, d := range s.draining {
		st.Draining = append(st.Draining, carryGen(d))
	}
	return st, files, nil
}

func carryGen(g *generation) carriedGen {
	return carriedGen{PID: g.pid, Start: g.start, Binary: g.binary, BuildID: g.buildID,
		Args: g.spec.Args, Env: g.spec.Env, Dir: g.spec.Dir, StartedAt: g.startedAt}
}

// fdOf returns the descriptor number of f without (*os.File).Fd, which would
// switch a socket to blocking mode for every process that shares it.
func fdOf(f *os.File) int {
	fd := -1
	if rc, err := f.SyscallConn(); err == nil {
		_ = rc.Control(func(u uintptr) { fd = int(u) })
	}
	return fd
}

func setInheritable(files []*os.File, on bool) error {
	for _, f := range files {
		rc, err := f.SyscallConn()
		if err != nil {
			return err
		}
		var ferr error
		err = rc.Control(func(fd uintptr) {
			flag := unix.FD_CLOEXEC
			if on {
				flag = 0
			}
			_, ferr = unix.FcntlInt(fd, unix.F_SETFD, flag)
		})
		if err = errors.Join(err, ferr); err != nil {
			return fmt.Errorf("handoff: fd flags of %s: %w", f.Name(), err)
		}
	}
	return nil
}

func writeState(st carriedState) (*os.File, error) {
	fd, err := unix.MemfdCreate("handoff-supervisor-state", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("memfd_create", err)
	}
	f := os.NewFile(uintptr(fd), "handoff-supervisor-state")
	if err := json.NewEncoder(f).Encode(st); err != nil {
		f.Close()
		return nil, fmt.Errorf("handoff: write carried state: %w", err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

func withoutCarry(env []string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if !hasKey(kv, EnvCarriedState) && !hasKey(kv, EnvCarriedFrom) && !hasKey(kv, EnvPreflight) {
			out = append(out, kv)
		}
	}
	return out
}

func hasKey(kv, key string) bool { return len(kv) > len(key) && kv[:len(key)+1] == key+"=" }

// Carried is a supervisor state handed over by a previous binary through
// exec (see Reexec).
type Carried struct {
	st       carriedState
	previous string
}

// Carried state of this process, if a previous supervisor binary exec'd us.
// It returns (nil, nil) when there is none. The variables are removed from
// the environment, so a later exec starts clean.
func InheritedState() (*Carried, error) {
	v, ok := os.LookupEnv(EnvCarriedState)
	if !ok {
		return nil, nil
	}
	previous := os.Getenv(EnvCarriedFrom)
	os.Unsetenv(EnvCarriedState)
	os.Unsetenv(EnvCarriedFrom)
	fd, err := strconv.Atoi(v)
	if err != nil || fd < 3 {
		return &Carried{previous: previous}, fmt.Errorf("%w: %s=%q is not a descriptor", ErrCarriedState, EnvCarriedState, v)
	}
	c := &Carried{previous: previous}
	f := os.NewFile(uintptr(fd), "handoff-supervisor-state")
	defer f.Close()
	if err := json.NewDecoder(io.LimitReader(f, 1<<20)).Decode(&c.st); err != nil {
		return c, fmt.Errorf("%w: %w", ErrCarriedState, err)
	}
	if c.st.Format != CarryFormat {
		return c, fmt.Errorf("%w: format %d, this binary reads format %d", ErrCarriedState, c.st.Format, CarryFormat)
	}
	return c, nil
}

// ExecBack execs the previous supervisor binary with the same state, after
// this binary rejected it. It returns only if that exec fails.
func (c *Carried) ExecBack(argv []string, why error) error {
	if c == nil || c.previous == "" {
		return fmt.Errorf("handoff: no previous supervisor binary to return to: %w", why)
	}
	st, err := writeState(c.st)
	if err != nil {
		return err
	}
	if err := setInheritable([]*os.File{st}, true); err != nil {
		return err
	}
	// This image may already have claimed the carried descriptors (marked
	// close-on-exec) before it rejected the state: they must reach the
	// previous binary at the same numbers.
	if err := c.inheritCarried(); err != nil {
		return fmt.Errorf("handoff: cannot return to %s: %w (rejected because: %w)", c.previous, err, why)
	}
	env := append(withoutCarry(os.Environ()), EnvCarriedState+"="+strconv.Itoa(fdOf(st)))
	fmt.Fprintf(os.Stderr, "handoff: rejecting the carried state (%v); returning to %s\n", why, c.previous)
	return syscall.Exec(c.previous, argv, env)
}

// inheritCarried clears close-on-exec on every carried descriptor.
func (c *Carried) inheritCarried() error {
	fds := make([]carriedFD, 0, len(c.st.Listeners)+len(c.st.Extra))
	for _, x := range append(append(fds, c.st.Listeners...), c.st.Extra...) {
		if _, err := unix.FcntlInt(uintptr(x.FD), unix.F_SETFD, 0); err != nil {
			return fmt.Errorf("carried %s (fd %d): %w", x.Name, x.FD, os.NewSyscallError("fcntl", err))
		}
	}
	return nil
}

// Extra returns the carried extra files by name (for example the program's
// trigger socket), re-marked close-on-exec. Each call returns new *os.File
// values for the same descriptors; call it once.
func (c *Carried) Extra() (map[string]*os.File, error) {
	out := make(map[string]*os.File, len(c.st.Extra))
	for _, x := range c.st.Extra {
		f, err := claimFD(x)
		if err != nil {
			return nil, err
		}
		out[x.Name] = f
	}
	return out, nil
}

func claimFD(x carriedFD) (*os.File, error) {
	if _, err := unix.FcntlInt(uintptr(x.FD), unix.F_SETFD, unix.FD_CLOEXEC); err != nil {
		return nil, fmt.Errorf("%w: %s (fd %d): %w", ErrCarriedState, x.Name, x.FD, os.NewSyscallError("fcntl", err))
	}
	return os.NewFile(uintptr(x.FD), x.Name), nil
}

// Supervisor rebuilds the supervisor from the carried state: the same
// listening sockets, the incumbent adopted through a pidfd (it is still our
// child: same pid), old generations still exiting, and the last outcome.
// opts are the usual options; WithListeners is ignored.
func (c *Carried) Supervisor(opts ...Option) (*Supervisor, error) {
	var ls []Listener
	for _, x := range c.st.Listeners {
		f, err := claimFD(x)
		if err != nil {
			return nil, err
		}
		ls = append(ls, Listener{Name: x.Name, File: f})
	}
	s, err := New(c.st.Control, opts...)
	if err != nil {
		return nil, err
	}
	if err := s.SetListeners(ls); err != nil {
		return nil, err
	}
	s.last = c.st.Last
	s.opts.metrics.restore(c.st.Metrics)
	if c.st.Incumbent != nil {
		s.current = c.adoptCarried(*c.st.Incumbent)
	}
	for _, d := range c.st.Draining {
		if g := c.adoptCarried(d); g != nil {
			s.draining = append(s.draining, g)
			go s.retire(g)
		}
	}
	return s, nil
}

func (c *Carried) adoptCarried(cg carriedGen) *generation {
	proc, err := sysx.OpenProcess(cg.PID, cg.Start)
	if err != nil {
		return nil
	}
	spec := SpawnSpec{Binary: cg.Binary, Args: cg.Args, Env: cg.Env, Dir: cg.Dir}
	g := adoptedGeneration(proc, spec, cg.BuildID)
	g.startedAt = cg.StartedAt
	return g
}
