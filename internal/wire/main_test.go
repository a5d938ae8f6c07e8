package wire

import (
	"fmt"
	"os"
	"testing"

	"go.uber.org/goleak"
)

// roleEnv selects a helper role when the test binary is re-executed as a
// child process.
const roleEnv = "HANDOFF_WIRE_TEST_ROLE"

// roles are the child-process behaviours tests can ask for. Each runs in a
// fresh process and returns its exit code.
var roles = map[string]func() int{
	"hello-writer": roleHelloWriter,
}

func TestMain(m *testing.M) {
	if name, ok := os.LookupEnv(roleEnv); ok {
		role, known := roles[name]
		if !known {
			fmt.Fprintf(os.Stderr, "unknown test role %q\n", name)
			os.Exit(2)
		}
		os.Exit(role())
	}
	goleak.VerifyTestMain(m)
}
