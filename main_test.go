package handoff

import (
	"os"
	"testing"

	"github.com/handoff-go/handoff/internal/listenenv"
	"github.com/handoff-go/handoff/internal/testproc"
)

// roles is the registry of helper processes, by name, selected by
// HANDOFF_TEST_ROLE when the test binary re-executes itself: the test binary
// is the daemon. A role runs instead of the tests and its result is the exit
// code. Roles report on stdout, one line at a time, so the parent waits on
// real output rather than on time. Other _test.go files add roles from init.
var roles = testproc.NewRoles("HANDOFF_TEST_ROLE", map[string]func() int{
	// detect-echo: DetectRole, then serve an echo on every inherited
	// listener (stream or datagram), print "ready", run until stdin closes.
	"detect-echo": roleDetectEcho,
	// detect-report: DetectRole, then print one detectReport line and exit.
	"detect-report": roleDetectReport,
})

func init() {
	// A child starts from this process's environment stripped of the
	// listener contract; each test passes its own.
	roles.Environ = func() []string { return listenenv.Strip(os.Environ()) }
}

func TestMain(m *testing.M) { roles.Main(m) }

// startRole starts the named role with env appended to its environment and
// extra at fd 3, 4, …; a cleanup kills and reaps it. The caller still owns
// extra.
func startRole(t *testing.T, role string, env []string, extra []*os.File) *testproc.Child {
	t.Helper()
	return roles.Start(t, role, testproc.Spec{Env: env, ExtraFiles: extra})
}

// checkFDs records the open descriptors now and, at cleanup (after the
// children and sockets registered later are gone), fails if the set
// changed or a child is left unreaped: DESIGN invariant 6, no leaked
// resource. Callers are not parallel (their subtests may be: they end
// before the cleanup runs).
func checkFDs(t *testing.T) {
	t.Helper()
	testproc.CheckLeaks(t)
}
