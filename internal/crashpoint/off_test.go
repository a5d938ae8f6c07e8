//go:build !handoff_crashpoints

package crashpoint

import (
	"strings"
	"testing"

	"github.com/handoff-go/handoff/internal/testproc"
)

// Without the build tag Hit must never act, whatever the environment says:
// production binaries cannot be crashed by a stray HANDOFF_CRASH_AT.
func TestHit_offBuildIsNoOp(t *testing.T) {
	if Enabled {
		t.Fatal("Enabled = true in a build without handoff_crashpoints")
	}
	all := make([]string, len(All))
	for i, p := range All {
		all[i] = string(p)
	}
	t.Setenv(EnvCrashAt, strings.Join(all, ","))
	for _, p := range All {
		Hit(p) // would kill this test binary if armed
	}

	testproc.CheckLeaks(t)
	c := startHit(t, SuccessorAfterBegin, EnvCrashAt+"="+string(SuccessorAfterBegin))
	if ws := c.Wait(t); !ws.Exited() || ws.ExitStatus() != 0 {
		t.Fatalf("child armed at its point: status %v, want a clean exit", ws)
	}
	if out := c.Output(t); out != "survived\n" {
		t.Fatalf("child printed %q, want survived", out)
	}
}
