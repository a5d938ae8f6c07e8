package supervisor

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/handoff-go/handoff/internal/testproc"
)

// roleEnv selects a helper role when the test binary re-executes itself:
// the test binary is the daemon, the crashing supervisor and the hostile
// peers.
const roleEnv = "SUPERVISOR_TEST_ROLE"

// roles is the registry of helper processes, by name. A role runs instead of
// the tests and its result is the exit code.
var roles = map[string]func() int{
	// daemon: the test daemon (testd_*_test.go), cold start or successor.
	"daemon": roleDaemon,
	// supervisor: a supervisor in its own process, so that a test can
	// SIGKILL it mid-swap (crash_test.go).
	"supervisor": roleSupervisor,
	// raw-successor: a successor that speaks the wire protocol by hand and
	// breaks it on purpose (protocol_test.go).
	"raw-successor": roleRawSuccessor,
	// foreign-client: dials the control socket, run under another uid.
	"foreign-client": roleForeignClient,
}

// usedRoles records the roles tests started, for the unused-role check.
var usedRoles sync.Map

func useRole(name string) string {
	if _, ok := roles[name]; !ok {
		panic("unknown test role " + name)
	}
	usedRoles.Store(name, true)
	return roleEnv + "=" + name
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
	testproc.WarmUpPoller()
	goleak.VerifyTestMain(checkedRun{m})
}

// raiseParallel lets the process tests overlap beyond GOMAXPROCS unless
// -test.parallel was given: they mostly wait on hooks and budgets that last
// seconds (a 12 s seal, 10 s of silence), not on the CPU.
func raiseParallel() {
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "test.parallel" })
	if !set {
		_ = flag.Set("test.parallel", strconv.Itoa(max(runtime.GOMAXPROCS(0), 12)))
	}
}

// checkedRun adds the package-wide leak checks to m.Run: no child left, the
// fd set back to its baseline, every role used. goleak checks goroutines
// after it.
type checkedRun struct{ m *testing.M }

func (c checkedRun) Run() int {
	before := openFDs()
	code := c.m.Run()
	if code != 0 {
		return code
	}
	if kids := childPIDs(); len(kids) > 0 {
		fmt.Fprintf(os.Stderr, "children left after the tests: %v\n", kids)
		return 1
	}
	if leaked := fdDiff(before, openFDs()); len(leaked) > 0 {
		fmt.Fprintf(os.Stderr, "descriptors leaked by the tests: %v\n", leaked)
		return 1
	}
	return checkRolesUsed()
}

func checkRolesUsed() int {
	if !testproc.WholeSuiteRan() {
		return 0
	}
	var unused []string
	for name := range roles {
		if _, ok := usedRoles.Load(name); !ok {
			unused = append(unused, name)
		}
	}
	if len(unused) > 0 {
		slices.Sort(unused)
		fmt.Fprintf(os.Stderr, "test roles no test used: %s\n", strings.Join(unused, ", "))
		return 1
	}
	return 0
}

// openFDs maps each open descriptor of this process to what it names.
func openFDs() map[string]string {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return nil
	}
	out := make(map[string]string, len(ents))
	for _, e := range ents {
		target, err := os.Readlink("/proc/self/fd/" + e.Name())
		if err != nil {
			continue // the directory's own descriptor, closed by now
		}
		out[e.Name()] = target
	}
	return out
}

// fdDiff lists descriptors open in after that were not open (to the same
// target) in before.
func fdDiff(before, after map[string]string) []string {
	var extra []string
	for fd, target := range after {
		if before[fd] != target {
			extra = append(extra, fd+" -> "+target)
		}
	}
	slices.Sort(extra)
	return extra
}

// childPIDs lists the children of this process, running or not yet
// reaped: a zombie left behind is a child nobody waited for.
func childPIDs() []int {
	ents, _ := os.ReadDir("/proc")
	var kids []int
	me := os.Getpid()
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		ppid, _, ok := procParent(pid)
		if ok && ppid == me {
			kids = append(kids, pid)
		}
	}
	return kids
}

// procParent reads the parent pid and state of pid from /proc/<pid>/stat.
func procParent(pid int) (ppid int, state byte, ok bool) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, false
	}
	i := strings.LastIndexByte(string(data), ')')
	if i < 0 {
		return 0, 0, false
	}
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 2 {
		return 0, 0, false
	}
	ppid, err = strconv.Atoi(f[1])
	return ppid, f[0][0], err == nil
}
