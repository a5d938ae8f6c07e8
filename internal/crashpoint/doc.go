// Package crashpoint makes a process die at named points of the handoff
// protocol, for the crash-matrix tests (DESIGN section 10).
//
// Every role calls [Hit] at each protocol boundary. In a normal build Hit is
// an empty function and [Enabled] is false; the points cost nothing. Built
// with the handoff_crashpoints tag, Hit kills the process with SIGKILL when
// its point is listed in HANDOFF_CRASH_AT (comma-separated), after sending
// the point's name to the Unix datagram socket HANDOFF_CRASH_NOTIFY if set;
// with HANDOFF_CRASH_MODE=pause it blocks there instead, so a test can kill
// the process from outside at exactly that moment. [All] lists every point.
//
// Run the package's own tests in both builds:
//
//	go test ./internal/crashpoint/
//	go test -tags handoff_crashpoints ./internal/crashpoint/
package crashpoint
