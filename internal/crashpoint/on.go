//go:build handoff_crashpoints

package crashpoint

import (
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Enabled reports whether crash points are compiled in. In this build
// (tag handoff_crashpoints) they are.
const Enabled = true

// armed is the set of points from EnvCrashAt, read once.
var armed = sync.OnceValue(func() map[Point]bool {
	set := map[Point]bool{}
	for _, name := range strings.Split(os.Getenv(EnvCrashAt), ",") {
		if name = strings.TrimSpace(name); name != "" {
			set[Point(name)] = true
		}
	}
	return set
})

// Hit makes the process die at p if p is listed in HANDOFF_CRASH_AT (read
// once, at the first Hit): it first sends p's name to the HANDOFF_CRASH_NOTIFY
// socket if one is set, then, with HANDOFF_CRASH_MODE=pause, blocks the
// calling goroutine forever (other goroutines run on, as in a process stalled
// at that step, until the test kills it), and otherwise kills the process
// with SIGKILL at once: a real crash, with no deferred function run and no
// buffer flushed.
func Hit(p Point) {
	if !armed()[p] {
		return
	}
	notify(p)
	if os.Getenv(EnvMode) != "pause" {
		_ = unix.Kill(os.Getpid(), unix.SIGKILL)
	}
	for {
		// A goroutine parked in a system call never counts as deadlocked,
		// unlike one in select {}.
		_ = unix.Pause()
	}
}

// notify sends p's name to the test's datagram socket, best effort: a crash
// point must crash even when nobody listens.
func notify(p Point) {
	path := os.Getenv(EnvNotify)
	if path == "" {
		return
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return
	}
	defer c.Close()
	_ = c.SetWriteDeadline(time.Now().Add(5 * time.Second)) // never hang the crash on a full socket
	_, _ = c.Write([]byte(p))
}
