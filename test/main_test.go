package test

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"go.uber.org/goleak"
	"golang.org/x/sys/unix"

	"github.com/handoff-go/handoff/internal/crashpoint"
	"github.com/handoff-go/handoff/internal/testproc"
)

// roleEnv selects a helper role when the test binary re-executes itself.
const roleEnv = "HANDOFF_TEST_ROLE"

// roles is the registry of helper processes the tests start from their own
// binary. A role runs instead of the tests; its exit status is the role's
// result and it reports on stdout.
var roles = map[string]func() int{
	// foreign-control-peer: connect to the control socket named by
	// HANDOFF_TEST_PEER_PATH (run as another uid) and report what the
	// incumbent did: one line, "connect-error ...", "hello" or "closed".
	"foreign-control-peer": roleForeignControlPeer,
	// foreign-trigger-peer: the same against a supervisor's trigger socket,
	// sending a status request line and reporting the first reply line.
	"foreign-trigger-peer": roleForeignTriggerPeer,
}

// usedRoles records which roles were started, for the unused-role check.
var usedRoles sync.Map

// bin holds the programs TestMain built once for the whole package run.
var bin struct {
	dir        string
	kvd        string // examples/kvd
	supervisor string // test/testdata/supervisor, the driver
	handoff    string // cmd/handoff; empty when it does not build
	handoffErr string // why handoff is empty
}

func TestMain(m *testing.M) {
	if name := os.Getenv(roleEnv); name != "" {
		role, ok := roles[name]
		if !ok {
			fmt.Fprintf(os.Stderr, "unknown test role %q\n", name)
			os.Exit(2)
		}
		os.Exit(role())
	}
	flag.Parse()
	raiseParallel()
	os.Exit(runTests(m))
}

// runTests builds the child programs, becomes the subreaper of every process
// the tests start (so a daemon orphaned by a killed supervisor is reaped here
// and not left a zombie), runs the tests and checks for leaks.
func runTests(m *testing.M) int {
	if err := buildBinaries(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(bin.dir)
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		fmt.Fprintln(os.Stderr, "prctl(PR_SET_CHILD_SUBREAPER):", err)
		return 1
	}
	stop := startReaper()
	testproc.WarmUpPoller()
	fds := openFDNames()
	code := m.Run()
	stop()
	stopLockSampler()
	if code == 0 {
		code = checkAfterRun(fds)
	}
	return code
}

// openFDNames lists this process's descriptors with what they name.
func openFDNames() map[string]string {
	out := map[string]string{}
	ents, _ := os.ReadDir("/proc/self/fd")
	for _, e := range ents {
		target, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name()))
		if err == nil {
			out[e.Name()] = target
		}
	}
	return out
}

// raiseParallel lets more end-to-end rows run at once than -parallel's
// default (GOMAXPROCS) unless -parallel was given: each row mostly waits on
// its own processes and sockets, not on this process's CPU.
func raiseParallel() {
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "test.parallel" })
	if !set {
		_ = flag.Set("test.parallel", strconv.Itoa(max(6, 3*runtime.GOMAXPROCS(0))))
	}
}

// checkAfterRun fails the run on leaked goroutines, descriptors or
// unreaped children and, when every test ran, on roles no test used.
func checkAfterRun(fdsBefore map[string]string) int {
	if err := goleak.Find(); err != nil {
		fmt.Fprintln(os.Stderr, "goroutine leak:", err)
		return 1
	}
	if kids := childPIDs(); len(kids) > 0 {
		fmt.Fprintln(os.Stderr, "children left unreaped:", kids)
		return 1
	}
	for fd, target := range openFDNames() {
		if fdsBefore[fd] != target && !strings.HasPrefix(target, "/proc/") {
			fmt.Fprintf(os.Stderr, "descriptor leak: fd %s (%s) is open after the tests and was not before\n", fd, target)
			return 1
		}
	}
	if !testproc.WholeSuiteRan() {
		return 0
	}
	for name := range roles {
		if name == "foreign-trigger-peer" && bin.handoff == "" {
			continue // its tests skip without cmd/handoff
		}
		if _, ok := usedRoles.Load(name); !ok && os.Geteuid() == 0 {
			fmt.Fprintf(os.Stderr, "test role %q is never used\n", name)
			return 1
		}
	}
	return 0
}

// buildBinaries builds kvd and the supervisor driver (required) and
// cmd/handoff (optional: the trigger-socket tests skip without it) once,
// with the same build tags and race mode as this test binary, so that the
// crash points are live in every process when the tests are.
func buildBinaries() error {
	dir, err := os.MkdirTemp("", "hxbin")
	if err != nil {
		return err
	}
	// Others may need to run what is here (the foreign-uid peer).
	if err := os.Chmod(dir, 0o755); err != nil {
		return err
	}
	bin.dir = dir
	bin.kvd, bin.supervisor = filepath.Join(dir, "kvd"), filepath.Join(dir, "supervisor")
	var wg sync.WaitGroup
	var handoffErr error
	wg.Go(func() { handoffErr = goBuild(filepath.Join(dir, "handoff"), "./cmd/handoff") })
	err = goBuild(dir+"/", "./examples/kvd", "./test/testdata/supervisor")
	wg.Wait()
	if err != nil {
		os.RemoveAll(dir)
		return err
	}
	if handoffErr == nil {
		bin.handoff = filepath.Join(dir, "handoff")
	} else {
		bin.handoffErr = handoffErr.Error()
	}
	return nil
}

func goBuild(out string, pkgs ...string) error {
	args := []string{"build", "-o", out}
	if crashpoint.Enabled {
		args = append(args, "-tags", "handoff_crashpoints")
	}
	if raceEnabled {
		args = append(args, "-race")
	}
	cmd := exec.Command("go", append(args, pkgs...)...)
	cmd.Dir = ".." // the module root
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %w\n%s", strings.Join(pkgs, " "), err, b)
	}
	return nil
}

// childEnv is the environment of every process the tests start: the race
// detector must not add its default one-second sleep at exit.
func childEnv(extra ...string) []string {
	env := append(os.Environ(), "GORACE=atexit_sleep_ms=0", "KVD_LOG=debug")
	return append(env, extra...)
}

// reaper reaps the orphans this process inherits as a subreaper: daemons
// whose supervisor was killed. Processes started through exec.Cmd are
// waited for by their Cmd and never touched here; startTracked and the
// reaper's scan exclude each other, so a fresh child is always registered
// before the reaper can see it.
var reaper struct {
	mu  sync.RWMutex // read: starting a Cmd; write: a reaping scan
	own sync.Map     // pid -> true for exec.Cmd children
}

// startTracked starts cmd so that the reaper leaves it to cmd.Wait.
func startTracked(cmd *exec.Cmd) error {
	reaper.mu.RLock()
	defer reaper.mu.RUnlock()
	if err := cmd.Start(); err != nil {
		return err
	}
	reaper.own.Store(cmd.Process.Pid, true)
	return nil
}

// waitTracked waits for a Cmd started by startTracked.
func waitTracked(cmd *exec.Cmd) error {
	err := cmd.Wait()
	reaper.own.Delete(cmd.Process.Pid)
	return err
}

func startReaper() (stop func()) {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGCHLD)
	done, quit := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-quit:
				return
			case <-sig:
				reapOrphans()
			}
		}
	}()
	return func() {
		signal.Stop(sig)
		close(quit)
		<-done
		reapOrphans()
	}
}

// reapOrphans waits (without blocking) for every child that no exec.Cmd
// owns.
func reapOrphans() {
	reaper.mu.Lock()
	defer reaper.mu.Unlock()
	for _, pid := range childPIDs() {
		if _, ok := reaper.own.Load(pid); ok {
			continue
		}
		var ws unix.WaitStatus
		_, _ = unix.Wait4(pid, &ws, unix.WNOHANG, nil)
	}
}

// childPIDs lists this process's children from /proc/self/task/*/children.
func childPIDs() []int {
	tasks, _ := filepath.Glob("/proc/self/task/*/children")
	var pids []int
	for _, f := range tasks {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, s := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(s); err == nil {
				pids = append(pids, pid)
			}
		}
	}
	return pids
}

// testBinaryForOthers returns a copy of this test binary that a process of
// another uid can execute (the build cache is private to root).
var testBinaryForOthers = sync.OnceValues(func() (string, error) {
	self, err := os.Executable()
	if err != nil {
		return "", err
	}
	src, err := os.Open(self)
	if err != nil {
		return "", err
	}
	defer src.Close()
	path := filepath.Join(bin.dir, "test.bin")
	dst, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		return "", err
	}
	_, err = io.Copy(dst, src)
	return path, errors.Join(err, dst.Close())
})
