package httpdrain

import (
	"fmt"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	warmUpPoller()
	code := m.Run()
	if code == 0 {
		// net/http lingers up to 500 ms on a connection it closes after a
		// "Connection: close" response; goleak retries for longer than that.
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goroutine leak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// warmUpPoller makes the runtime open its lazily created descriptors (the
// epoll instance and its eventfd) before any test takes an fd baseline.
func warmUpPoller() {
	r, w, err := os.Pipe()
	if err == nil {
		_ = r.SetReadDeadline(time.Now())
		r.Close()
		w.Close()
	}
}
