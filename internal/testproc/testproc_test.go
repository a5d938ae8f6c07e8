package testproc

import (
	"fmt"
	"go/parser"
	"go/token"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

const envEnv = "HANDOFF_TESTPROC_TEST_ENV"

var roles = NewRoles("HANDOFF_TESTPROC_TEST_ROLE", map[string]func() int{
	// ready: print "ready" and live until stdin closes.
	"ready": func() int {
		fmt.Println("ready")
		_, _ = io.Copy(io.Discard, os.Stdin)
		return 0
	},
	// report: print envEnv, GORACE and the first line read from fd 3, then
	// exit 3.
	"report": func() int {
		fmt.Println(os.Getenv(envEnv))
		fmt.Println(os.Getenv("GORACE"))
		fmt.Fprintln(os.NewFile(3, "extra"), "via fd 3")
		return 3
	},
	// chatter: print two lines and half a third, then live until killed.
	"chatter": func() int {
		fmt.Print("one\ntwo\nthr")
		select {}
	},
})

func TestMain(m *testing.M) { roles.Main(m) }

func TestStart_lineWaitAndCleanStatus(t *testing.T) {
	CheckLeaks(t)
	c := roles.Start(t, "ready", Spec{})
	c.Expect(t, "ready")
	if ws := c.Wait(t); !ws.Exited() || ws.ExitStatus() != 0 {
		t.Fatalf("status %v, want exit 0 after stdin closed", ws)
	}
	if ws := c.Kill(); !ws.Exited() || ws.ExitStatus() != 0 {
		t.Fatalf("Kill after Wait = %v, want the recorded exit 0", ws)
	}
}

func TestStart_specReachesChild(t *testing.T) {
	CheckLeaks(t)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	c := roles.Start(t, "report", Spec{Env: []string{envEnv + "=value"}, ExtraFiles: []*os.File{w}})
	w.Close()
	if got := c.Line(t); got != "value" {
		t.Errorf("child saw %s=%q, want value", envEnv, got)
	}
	if got := c.Line(t); !slices.Contains(strings.Fields(got), "atexit_sleep_ms=0") {
		t.Errorf("child saw GORACE=%q, want atexit_sleep_ms=0 in it", got)
	}
	if ws := c.Wait(t); ws.ExitStatus() != 3 {
		t.Errorf("status %v, want exit 3", ws)
	}
	if got, err := io.ReadAll(r); err != nil || string(got) != "via fd 3\n" {
		t.Errorf("fd 3 carried %q, %v; want %q", got, err, "via fd 3\n")
	}
}

func TestChild_crashAndOutputAfterKill(t *testing.T) {
	CheckLeaks(t)
	c := roles.Start(t, "chatter", Spec{})
	c.Expect(t, "one")
	c.Crash(t)
	if got := c.Output(t); got != "two\nthr" {
		t.Errorf("output after the crash = %q, want %q", got, "two\nthr")
	}
	if ws := c.Kill(); !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Errorf("Kill after Crash = %v, want the recorded SIGKILL", ws)
	}
}

func TestRoles_unusedAndDuplicate(t *testing.T) {
	r := NewRoles("HANDOFF_TESTPROC_UNUSED", map[string]func() int{"b": nil, "a": nil})
	r.lookup("b")
	if got := r.unused(); !slices.Equal(got, []string{"a"}) {
		t.Errorf("unused roles = %q, want [a]", got)
	}
	defer func() {
		if recover() == nil {
			t.Error("Add of a taken name did not panic")
		}
	}()
	r.Add("a", nil)
}

// recorder is a testing.TB that records Errorf instead of failing.
type recorder struct {
	testing.TB
	errors []string
}

func (r *recorder) Helper() {}

func (r *recorder) Errorf(format string, args ...any) {
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}

func TestCheckFDs_seesNewAndClosedDescriptors(t *testing.T) {
	before := OpenFDs(t)
	rec := &recorder{TB: t}
	CheckFDs(rec, before)
	if len(rec.errors) != 0 {
		t.Fatalf("unchanged set reported: %q", rec.errors)
	}
	f, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	CheckFDs(rec, before)
	f.Close()
	if len(rec.errors) != 1 || !strings.Contains(rec.errors[0], "->/dev/null") {
		t.Fatalf("an open /dev/null reported as %q, want one error naming it", rec.errors)
	}
	CheckFDs(rec, before)
	if len(rec.errors) != 1 {
		t.Fatalf("closed again, yet reported: %q", rec.errors[1:])
	}
}

// The package is for tests only: no non-test file of the module imports it.
func TestImportedOnlyFromTests(t *testing.T) {
	const self = "github.com/handoff-go/handoff/internal/testproc"
	root := filepath.Join("..", "..")
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); path != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "vendor") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		for _, imp := range f.Imports {
			if p, _ := strconv.Unquote(imp.Path.Value); p == self {
				t.Errorf("%s imports %s, which is for tests only", path, self)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
