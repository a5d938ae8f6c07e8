package journal

import (
	"fmt"
	"io"
	"os"
	"testing"

	"github.com/handoff-go/handoff/internal/testproc"
)

// pathEnv passes the journal path to the helper roles.
const pathEnv = "HANDOFF_JOURNAL_TEST_PATH"

// roles is the registry of helper processes, selected by
// HANDOFF_JOURNAL_TEST_ROLE when the test binary re-executes itself.
var roles = testproc.NewRoles("HANDOFF_JOURNAL_TEST_ROLE", map[string]func() int{
	// write-journal: write testRecord, print "written", block until stdin
	// closes (the test kills it with SIGKILL before that).
	"write-journal": func() int {
		if err := Write(os.Getenv(pathEnv), testRecord()); err != nil {
			fmt.Println("error:", err)
			return 1
		}
		fmt.Println("written")
		_, _ = io.Copy(io.Discard, os.Stdin)
		return 0
	},
})

func TestMain(m *testing.M) { roles.Main(m) }
