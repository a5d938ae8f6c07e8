package flock

import (
	"errors"
	"fmt"
	"io"
	"os"
	"testing"

	"github.com/handoff-go/handoff/internal/testproc"
)

// dirEnv passes the data directory to the helper roles.
const dirEnv = "HANDOFF_FLOCK_TEST_DIR"

// roles is the registry of helper processes, selected by
// HANDOFF_FLOCK_TEST_ROLE when the test binary re-executes itself. Each
// prints one line and, where it keeps running, blocks until its stdin
// closes, so a test controls its life without sleeping.
var roles = testproc.NewRoles("HANDOFF_FLOCK_TEST_ROLE", map[string]func() int{
	// hold-lock: acquire, print "locked", hold until stdin closes, release.
	"hold-lock": func() int {
		l, err := Acquire(os.Getenv(dirEnv))
		if err != nil {
			fmt.Println("error:", err)
			return 1
		}
		fmt.Println("locked")
		_, _ = io.Copy(io.Discard, os.Stdin)
		return exitCode(l.Release())
	},
	// try-lock: print "locked" (then release) or "held", and exit.
	"try-lock": func() int {
		l, err := Acquire(os.Getenv(dirEnv))
		switch {
		case errors.Is(err, ErrLockHeld):
			fmt.Println("held")
			return 0
		case err != nil:
			fmt.Println("error:", err)
			return 1
		}
		fmt.Println("locked")
		return exitCode(l.Release())
	},
	// sleep: print "ready" and live until stdin closes.
	"sleep": func() int {
		fmt.Println("ready")
		_, _ = io.Copy(io.Discard, os.Stdin)
		return 0
	},
})

func exitCode(err error) int {
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

func TestMain(m *testing.M) { roles.Main(m) }

// startRole starts the named role on dir; a cleanup kills and reaps it.
func startRole(t *testing.T, role, dir string) *testproc.Child {
	t.Helper()
	return roles.Start(t, role, testproc.Spec{Env: []string{dirEnv + "=" + dir}})
}
