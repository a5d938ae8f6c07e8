// Package testproc is the helper-process harness for the tests of this
// module: the test binary re-executes itself as a named role, so the test
// binary is the daemon (STYLE points 12 to 14). It is imported only from
// _test.go files; no production code may depend on it.
//
// # Roles
//
// A package declares one [Roles] registry, names each role it needs, and
// hands its TestMain to [Roles.Main]:
//
//	var roles = testproc.NewRoles("HANDOFF_EXAMPLE_TEST_ROLE", map[string]func() int{
//		"sleep": func() int { fmt.Println("ready"); _, _ = io.Copy(io.Discard, os.Stdin); return 0 },
//	})
//
//	func TestMain(m *testing.M) { roles.Main(m) }
//
// In a child the role runs instead of the tests and its result is the exit
// code. In the parent the tests run, then the run fails on leaked goroutines
// and, when the whole suite ran, on a role that no test started.
//
// # Children
//
// [Roles.Start] starts a role as a [Child] whose stdout is read one line at a
// time ([Child.Line]), so a test waits on real output, never on time. Every
// wait has a generous deadline whose only job is to turn a hang into a
// failure. A cleanup kills and reaps every child, whatever the test did.
//
// # Leak checks
//
// [OpenFDs] and [CheckFDs] compare this process's descriptors with a baseline
// read from /proc/self/fd, [CheckNoChildren] fails if a child is left running
// or unreaped, and [CheckLeaks] does both at a test's cleanup: DESIGN
// invariant 6, no leaked resource, made executable.
package testproc
