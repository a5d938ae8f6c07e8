//go:build handoff_crashpoints

package crashpoint

import (
	"net"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/handoff-go/handoff/internal/testproc"
)

func TestHit_killsAtArmedPoint(t *testing.T) {
	if !Enabled {
		t.Fatal("Enabled = false in a handoff_crashpoints build")
	}
	tests := []struct {
		name    string
		crashAt string
		hit     Point
		wantDie bool
	}{
		{name: "armed", crashAt: string(IncumbentAfterSealBeforeUnlock), hit: IncumbentAfterSealBeforeUnlock, wantDie: true},
		{name: "second of a list", crashAt: "supervisor.after-spawn, " + string(SuccessorAfterBegin), hit: SuccessorAfterBegin, wantDie: true},
		{name: "other point armed", crashAt: string(SuccessorAfterBegin), hit: SuccessorAfterHello},
		{name: "nothing armed", crashAt: "", hit: SuccessorAfterHello},
		{name: "prefix is not a match", crashAt: "successor.after", hit: SuccessorAfterHello},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			testproc.CheckLeaks(t)
			c := startHit(t, tc.hit, EnvCrashAt+"="+tc.crashAt)
			ws := c.Wait(t)
			out := c.Output(t)
			if tc.wantDie {
				if !ws.Signaled() || ws.Signal() != syscall.SIGKILL || out != "" {
					t.Fatalf("status %v, output %q; want killed by SIGKILL before printing", ws, out)
				}
				return
			}
			if ws.ExitStatus() != 0 || out != "survived\n" {
				t.Fatalf("status %v, output %q; want a clean exit after the point", ws, out)
			}
		})
	}
}

// listenNotify opens the datagram socket a crash point reports to.
func listenNotify(t *testing.T) (*net.UnixConn, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "crash.sock")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, path
}

func readNotify(t *testing.T, c *net.UnixConn) string {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second)) // turns a hang into a failure
	buf := make([]byte, 256)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	return string(buf[:n])
}

func TestHit_notifiesThenKills(t *testing.T) {
	testproc.CheckLeaks(t)
	sock, path := listenNotify(t)
	c := startHit(t, SupervisorAfterJournalCommitted,
		EnvCrashAt+"="+string(SupervisorAfterJournalCommitted), EnvNotify+"="+path)
	if got := readNotify(t, sock); got != string(SupervisorAfterJournalCommitted) {
		t.Fatalf("notified %q, want %q", got, SupervisorAfterJournalCommitted)
	}
	if ws, out := c.Wait(t), c.Output(t); !ws.Signaled() || ws.Signal() != syscall.SIGKILL || out != "" {
		t.Fatalf("status %v, output %q; want killed by SIGKILL", ws, out)
	}
}

// In pause mode the process stays at the point until killed from outside: a
// SIGTERM sent after the notification is what ends it (a self-inflicted
// SIGKILL would show instead if it had not paused).
func TestHit_pauseBlocksUntilKilledFromOutside(t *testing.T) {
	testproc.CheckLeaks(t)
	sock, path := listenNotify(t)
	c := startHit(t, IncumbentAfterUnlockBeforeSealComplete,
		EnvCrashAt+"="+string(IncumbentAfterUnlockBeforeSealComplete), EnvNotify+"="+path, EnvMode+"=pause")
	if got := readNotify(t, sock); got != string(IncumbentAfterUnlockBeforeSealComplete) {
		t.Fatalf("notified %q, want %q", got, IncumbentAfterUnlockBeforeSealComplete)
	}
	c.Signal(t, syscall.SIGTERM)
	if ws, out := c.Wait(t), c.Output(t); !ws.Signaled() || ws.Signal() != syscall.SIGTERM || out != "" {
		t.Fatalf("status %v, output %q; want killed by our SIGTERM while paused", ws, out)
	}
}
