package supervisor

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/handoff-go/handoff/internal/listenenv"
	"github.com/handoff-go/handoff/internal/sysx"
	"github.com/handoff-go/handoff/internal/wire"
)

// resolveBinary turns the configured binary into the absolute path of the
// real file, following links, at every spawn: a swap runs what the path
// names now, never a stale argv[0], and reports it.
func resolveBinary(bin string) (string, error) {
	if bin == "" {
		return "", fmt.Errorf("handoff: no binary given: %w", ErrBadBinary)
	}
	abs, err := filepath.Abs(bin)
	if err != nil {
		return "", fmt.Errorf("handoff: binary %s: %w: %w", bin, ErrBadBinary, err)
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return "", fmt.Errorf("handoff: binary %s: %w: %w", bin, ErrBadBinary, err)
	}
	fi, err := os.Stat(real)
	if err != nil {
		return "", fmt.Errorf("handoff: binary %s: %w: %w", bin, ErrBadBinary, err)
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
		return "", fmt.Errorf("handoff: binary %s (%s) is not an executable regular file: %w", bin, real, ErrBadBinary)
	}
	return real, nil
}

// spawn starts one daemon generation with the supervisor's listeners at fd
// 3, 4, …; a successor also gets its end of a fresh socketpair after them,
// and the returned generation holds the supervisor's end.
//
// Children are started with exec.Command rather than CommandContext: a
// daemon generation outlives the request that started it, and is stopped
// explicitly (SIGTERM, then SIGKILL after a grace) and always reaped.
func (s *Supervisor) spawn(spec SpawnSpec, successor bool) (*generation, error) {
	bin, err := resolveBinary(spec.Binary)
	if err != nil {
		return nil, err
	}
	var (
		theirs *os.File
		conn   *wire.Conn
	)
	if successor {
		// SO_PASSCRED must be on before the child can send its Hello: the
		// kernel attaches credentials at send time.
		if conn, theirs, err = successorChannel(); err != nil {
			return nil, err
		}
		defer theirs.Close()
	}
	cmd, err := s.command(bin, spec, theirs)
	if err == nil && spec.SHA256 != "" {
		var pin *pinnedBinary
		if pin, err = pinBinary(bin, spec.SHA256, pinnedFDFloor(len(cmd.ExtraFiles))); err == nil {
			defer pin.close()
			cmd.Path = pin.path() // argv[0] stays the resolved path
		}
	}
	if err == nil {
		err = cmd.Start()
		if err != nil {
			err = fmt.Errorf("handoff: start %s: %w: %w", bin, ErrBadBinary, err)
		}
	}
	if err != nil {
		if conn != nil {
			conn.Close()
		}
		return nil, err
	}
	g := newGeneration(cmd, bin)
	g.spec = spec
	// The pin is checked for this spawn. A crash restart of this generation
	// runs the file at the path then, pinned or not: refusing it would keep
	// the service down.
	g.spec.SHA256 = ""
	g.conn = conn
	return g, nil
}

// successorChannel makes the socketpair for a successor: the supervisor's
// end as a protocol connection that receives credentials, and the end the
// child inherits.
func successorChannel() (*wire.Conn, *os.File, error) {
	mine, theirs, err := socketpair()
	if err != nil {
		return nil, nil, err
	}
	conn, err := wireConn(mine)
	if err != nil {
		theirs.Close()
		return nil, nil, err
	}
	return conn, theirs, nil
}

func (s *Supervisor) command(bin string, spec SpawnSpec, sock *os.File) (*exec.Cmd, error) {
	s.mu.Lock()
	named := make([]listenenv.Named, len(s.listeners))
	for i, l := range s.listeners {
		named[i] = listenenv.Named{Name: l.Name, File: l.File}
	}
	s.mu.Unlock()
	extra, env, err := listenenv.Build(named, sock)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, spec.Args...)
	cmd.Env = append(append(listenenv.Strip(os.Environ()), spec.Env...), env...)
	cmd.ExtraFiles = extra
	cmd.Dir = spec.Dir
	cmd.Stdout, cmd.Stderr = s.opts.stdout, s.opts.stderr
	return cmd, nil
}

// socketpair returns both ends of a close-on-exec Unix stream socketpair.
func socketpair() (mine, theirs *os.File, err error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, os.NewSyscallError("socketpair", err)
	}
	return os.NewFile(uintptr(fds[0]), "supervisor-end"), os.NewFile(uintptr(fds[1]), "successor-end"), nil
}

// wireConn turns our end of the socketpair into a protocol connection that
// receives SCM_CREDENTIALS: SO_PEERCRED on a socketpair names its creator
// (us), so the successor's pid must come from the credentials the kernel
// attaches to each message it sends.
func wireConn(f *os.File) (*wire.Conn, error) {
	defer f.Close()
	c, err := net.FileConn(f)
	if err != nil {
		return nil, fmt.Errorf("handoff: socketpair: %w", err)
	}
	uc, ok := c.(*net.UnixConn)
	if !ok {
		c.Close()
		return nil, errors.New("handoff: socketpair is not a unix socket")
	}
	wc := wire.NewConn(uc)
	if err := wc.EnablePassCred(); err != nil {
		wc.Close()
		return nil, err
	}
	return wc, nil
}

// generation is one daemon process: the incumbent, a successor, or an old
// incumbent still exiting after a swap.
type generation struct {
	pid       int
	start     uint64
	binary    string
	buildID   string
	spec      SpawnSpec // what started it: a restart after a crash runs the same
	restarted bool      // started by a crash restart (its crash continues a loop)
	startedAt time.Time
	cmd       *exec.Cmd     // nil when adopted by a restarted supervisor
	proc      *sysx.Process // pidfd watch when adopted
	conn      *wire.Conn    // supervisor's end of a successor's socketpair
	exited    chan struct{}
	state     *os.ProcessState
}

func newGeneration(cmd *exec.Cmd, bin string) *generation {
	g := &generation{
		pid:       cmd.Process.Pid,
		binary:    bin,
		startedAt: time.Now(),
		cmd:       cmd,
		exited:    make(chan struct{}),
	}
	g.start, _ = sysx.ProcStartTime(g.pid)
	go func() {
		_ = cmd.Wait() // reap; the exit status is kept in cmd.ProcessState
		g.state = cmd.ProcessState
		close(g.exited)
	}()
	return g
}

// hasExited reports whether the process is gone (and reaped, if ours).
func (g *generation) hasExited() bool {
	select {
	case <-g.exited:
		return true
	default:
		return false
	}
}

// exitStatus describes how the process ended, for logs and outcomes.
func (g *generation) exitStatus() string {
	if g.state == nil {
		return "exited"
	}
	return g.state.String()
}

func (g *generation) signal(sig syscall.Signal) {
	if g.hasExited() {
		return
	}
	if g.proc != nil {
		_ = g.proc.Signal(sig)
		return
	}
	_ = g.cmd.Process.Signal(sig)
}

// kill stops the process: SIGTERM, then SIGKILL after grace; it returns once
// the process has exited (and was reaped, if it is our child).
func (g *generation) kill(grace time.Duration) {
	if g.conn != nil {
		g.conn.Close()
	}
	g.signal(syscall.SIGTERM)
	select {
	case <-g.exited:
		return
	case <-time.After(grace):
	}
	g.signal(syscall.SIGKILL)
	<-g.exited
}
