//go:build !handoff_crashpoints

package crashpoint

import (
	"bytes"
	"strings"
	"testing"
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

	checkLeaks(t)
	var out bytes.Buffer
	cmd := hitCommand(t, SuccessorAfterBegin, EnvCrashAt+"="+string(SuccessorAfterBegin))
	cmd.Stdout = &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("child armed at its point: %v, want a clean exit", err)
	}
	if out.String() != "survived\n" {
		t.Fatalf("child printed %q, want survived", out.String())
	}
}
