package store

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// roleEnv selects a helper role when the test binary re-executes itself.
const roleEnv = "KVD_STORE_TEST_ROLE"

// roles is the registry of helper processes.
var roles = map[string]func() int{
	// writer: open the store in $KVD_STORE_DIR and write from 8 goroutines
	// without end, printing "ack <key> <revision>" after each Put returned.
	// It runs until it is killed.
	"writer": roleWriter,
}

var usedRoles sync.Map

func TestMain(m *testing.M) {
	if name := os.Getenv(roleEnv); name != "" {
		role, ok := roles[name]
		if !ok {
			fmt.Fprintf(os.Stderr, "unknown test role %q\n", name)
			os.Exit(2)
		}
		os.Exit(role())
	}
	code := m.Run()
	if code == 0 {
		code = checkAfterRun()
	}
	os.Exit(code)
}

func checkAfterRun() int {
	if err := goleak.Find(); err != nil {
		fmt.Fprintln(os.Stderr, "goroutine leak:", err)
		return 1
	}
	if f := flag.Lookup("test.run"); f != nil && f.Value.String() == "" {
		for name := range roles {
			if _, ok := usedRoles.Load(name); !ok {
				fmt.Fprintf(os.Stderr, "test role %q is never used\n", name)
				return 1
			}
		}
	}
	return 0
}

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

// child is a running helper role.
type child struct {
	cmd    *exec.Cmd
	stdout *bufio.Reader
	outR   *os.File
	waited bool
}

// startRole starts the named role and registers a cleanup that kills and
// reaps it.
func startRole(t *testing.T, role string, env ...string) *child {
	t.Helper()
	usedRoles.Store(role, true)
	cmd := exec.Command(os.Args[0])
	// atexit_sleep_ms=0: a race-enabled child would otherwise linger 1 s at exit.
	cmd.Env = append(os.Environ(), roleEnv+"="+role, "GORACE=atexit_sleep_ms=0")
	cmd.Env = append(cmd.Env, env...)
	cmd.Stderr = os.Stderr
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = outW
	err = cmd.Start()
	outW.Close()
	if err != nil {
		outR.Close()
		t.Fatal(err)
	}
	c := &child{cmd: cmd, stdout: bufio.NewReader(outR), outR: outR}
	t.Cleanup(c.kill)
	return c
}

// line reads the child's next complete line; the deadline only turns a hang
// into a failure.
func (c *child) line(t *testing.T) string {
	t.Helper()
	_ = c.outR.SetReadDeadline(time.Now().Add(30 * time.Second))
	s, err := c.stdout.ReadString('\n')
	if err != nil {
		t.Fatalf("reading from child %d: %v (got %q)", c.cmd.Process.Pid, err, s)
	}
	return strings.TrimSuffix(s, "\n")
}

// rest returns the complete lines the child wrote before it died.
func (c *child) rest() []string {
	_ = c.outR.SetReadDeadline(time.Now().Add(30 * time.Second))
	b, _ := io.ReadAll(c.stdout)
	lines := strings.Split(string(b), "\n")
	return lines[:len(lines)-1] // the last piece is incomplete (or empty)
}

func (c *child) kill() {
	if c.waited {
		return
	}
	_ = c.cmd.Process.Kill()
	_ = c.cmd.Wait()
	c.waited = true
	c.outR.Close()
}
