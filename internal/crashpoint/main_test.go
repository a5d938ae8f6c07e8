package crashpoint

import (
	"fmt"
	"os"
	"testing"

	"github.com/handoff-go/handoff/internal/testproc"
)

// pointEnv names the point the hit role hits.
const pointEnv = "HANDOFF_CRASHPOINT_TEST_POINT"

// roles is the registry of helper processes, selected by
// HANDOFF_CRASHPOINT_TEST_ROLE when the test binary re-executes itself.
var roles = testproc.NewRoles("HANDOFF_CRASHPOINT_TEST_ROLE", map[string]func() int{
	// hit: call Hit at the point named in pointEnv, then say "survived".
	"hit": func() int {
		Hit(Point(os.Getenv(pointEnv)))
		fmt.Println("survived")
		return 0
	},
})

func TestMain(m *testing.M) { roles.Main(m) }

// startHit starts the hit role at point p with extra environment; a cleanup
// kills and reaps it in case the test fails before it does.
func startHit(t *testing.T, p Point, env ...string) *testproc.Child {
	t.Helper()
	return roles.Start(t, "hit", testproc.Spec{Env: append([]string{pointEnv + "=" + string(p)}, env...)})
}
