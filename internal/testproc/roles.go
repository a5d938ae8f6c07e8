package testproc

import (
	"flag"
	"fmt"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// Roles is a registry of helper roles, chosen in a child by an environment
// variable. Its methods are safe for concurrent use, so parallel tests may
// start children.
type Roles struct {
	// Environ returns the environment a child starts from, before the role
	// variable, GORACE and [Spec.Env] are added. Nil means [os.Environ].
	Environ func() []string

	envVar string

	mu    sync.Mutex
	roles map[string]func() int
	used  map[string]bool
}

// NewRoles returns a registry that selects the role named by envVar, which
// must be unique to the package, with the given roles (which may be nil and
// grow with [Roles.Add]).
func NewRoles(envVar string, roles map[string]func() int) *Roles {
	r := &Roles{envVar: envVar, roles: map[string]func() int{}, used: map[string]bool{}}
	for name, role := range roles {
		r.Add(name, role)
	}
	return r
}

// Add registers role under name; it panics if the name is taken. Call it
// before the tests run, typically from an init function of a _test.go file
// (package variables are initialised before any init function runs).
func (r *Roles) Add(name string, role func() int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.roles[name]; ok {
		panic(fmt.Sprintf("testproc: test role %q registered twice", name))
	}
	r.roles[name] = role
}

// Main is the body of TestMain and does not return. With the registry's
// variable set it runs that role and exits with its result (2 for an unknown
// role). Otherwise it runs the tests and, if they passed, fails the run on
// leaked goroutines and, when the whole suite ran, on roles no test started.
func (r *Roles) Main(m *testing.M) {
	if name := os.Getenv(r.envVar); name != "" {
		r.mu.Lock()
		role, ok := r.roles[name]
		r.mu.Unlock()
		if !ok {
			fmt.Fprintf(os.Stderr, "unknown test role %q\n", name)
			os.Exit(2)
		}
		os.Exit(role())
	}
	WarmUpPoller()
	code := m.Run()
	if code == 0 {
		code = r.checkAfterRun()
	}
	os.Exit(code)
}

// lookup marks the named role used and reports whether it is registered.
func (r *Roles) lookup(name string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.used[name] = true
	_, ok := r.roles[name]
	return ok
}

// checkAfterRun fails the run on leaked goroutines and, when every test ran,
// on roles no test used.
func (r *Roles) checkAfterRun() int {
	if err := goleak.Find(); err != nil {
		fmt.Fprintln(os.Stderr, "goroutine leak:", err)
		return 1
	}
	if !WholeSuiteRan() {
		return 0
	}
	if unused := r.unused(); len(unused) > 0 {
		fmt.Fprintf(os.Stderr, "test roles never used: %q\n", unused)
		return 1
	}
	return 0
}

// unused returns the names of the roles no test started, sorted.
func (r *Roles) unused() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var names []string
	for name := range r.roles {
		if !r.used[name] {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}

// WholeSuiteRan reports whether no flag selected, skipped or merely listed
// tests, and -short did not let them skip.
func WholeSuiteRan() bool {
	for _, name := range []string{"test.run", "test.skip", "test.list"} {
		if f := flag.Lookup(name); f == nil || f.Value.String() != "" {
			return false
		}
	}
	return !testing.Short()
}

// WarmUpPoller makes the runtime open its lazily created descriptors (the
// epoll instance and its wake-up eventfd) before any test takes an fd
// baseline, so they never show up as a leak. Main calls it; packages with a
// TestMain of their own call it before their baseline.
func WarmUpPoller() {
	r, w, err := os.Pipe()
	if err == nil {
		_ = r.SetReadDeadline(time.Now())
		r.Close()
		w.Close()
	}
}
