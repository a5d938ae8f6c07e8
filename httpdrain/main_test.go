package httpdrain

import (
	"fmt"
	"os"
	"testing"

	"go.uber.org/goleak"

	"github.com/handoff-go/handoff/internal/testproc"
)

func TestMain(m *testing.M) {
	testproc.WarmUpPoller()
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
