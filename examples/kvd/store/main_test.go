package store

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/handoff-go/handoff/internal/testproc"
)

// roles is the registry of helper processes, selected by KVD_STORE_TEST_ROLE
// when the test binary re-executes itself.
var roles = testproc.NewRoles("KVD_STORE_TEST_ROLE", map[string]func() int{
	// writer: open the store in $KVD_STORE_DIR and write from 8 goroutines
	// without end, printing "ack <key> <revision>" after each Put returned.
	// It runs until it is killed.
	"writer": roleWriter,
})

func TestMain(m *testing.M) { roles.Main(m) }

func roleWriter() int {
	s, err := Open(os.Getenv("KVD_STORE_DIR"))
	if err == nil {
		err = s.StartWrites()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "writer:", err)
		return 1
	}
	var out sync.Mutex
	for g := range 8 {
		go func() {
			for i := 0; ; i++ {
				key := fmt.Sprintf("g%d-%d", g, i)
				rev, err := s.Put(context.Background(), key, []byte(key))
				if err != nil {
					fmt.Fprintln(os.Stderr, "writer:", err)
					os.Exit(1)
				}
				out.Lock()
				fmt.Fprintf(os.Stdout, "ack %s %d\n", key, rev) // os.Stdout is unbuffered
				out.Unlock()
			}
		}()
	}
	select {}
}

// completeLines splits what a killed child wrote into its complete lines:
// the last piece is incomplete (or empty).
func completeLines(out string) []string {
	lines := strings.Split(out, "\n")
	return lines[:len(lines)-1]
}
