package sysx

import (
	"fmt"
	"io"
	"os"
	"testing"

	"github.com/handoff-go/handoff/internal/testproc"
)

// roles is the registry of helper processes, selected by
// HANDOFF_SYSX_TEST_ROLE when the test binary re-executes itself. Each prints
// one line when it is ready and then blocks until its stdin closes, so a test
// controls its life without sleeping.
var roles = testproc.NewRoles("HANDOFF_SYSX_TEST_ROLE", map[string]func() int{
	// sleep: do nothing but be alive.
	"sleep": func() int { return readyThenBlock("ready") },
	// print-start: report the start time the child reads for itself.
	"print-start": func() int {
		st, err := ProcStartTime(os.Getpid())
		if err != nil {
			fmt.Println("error:", err)
			return 1
		}
		return readyThenBlock(fmt.Sprint(st))
	},
	// fd3-nonblock: report O_NONBLOCK of the inherited fd 3.
	"fd3-nonblock": func() int {
		f := os.NewFile(3, "inherited")
		nb, err := IsNonblock(f)
		if err != nil {
			fmt.Println("error:", err)
			return 1
		}
		return readyThenBlock(fmt.Sprintf("nonblock=%v", nb))
	},
})

func readyThenBlock(line string) int {
	fmt.Println(line)
	_, _ = io.Copy(io.Discard, os.Stdin)
	return 0
}

func TestMain(m *testing.M) { roles.Main(m) }

// startRole starts the named role with extra files at fd 3, …; a cleanup
// kills and reaps it.
func startRole(t *testing.T, role string, extra ...*os.File) *testproc.Child {
	t.Helper()
	return roles.Start(t, role, testproc.Spec{ExtraFiles: extra})
}
