// Package test holds the end-to-end fault tests of handoff: real processes
// (the example daemon kvd under a small supervisor program) on loopback, with
// clients reading and writing on both of kvd's listeners while something goes
// wrong.
//
//   - TestCrashMatrix kills one role (supervisor, incumbent or successor) at
//     every crash point of internal/crashpoint, both by the point itself and
//     from outside while the process is held there, and checks every
//     invariant of DESIGN section 3: the service answered throughout, no
//     acknowledged write was lost, the data-dir lock never had two holders,
//     no process leaked, the listening sockets survived, and the next swap
//     commits. It needs the build tag handoff_crashpoints and skips without
//     it. With UPDATE_ARCHITECTURE=1 it rewrites the crash-matrix table in
//     ARCHITECTURE.md.
//   - TestHostile_* send garbage, truncated and oversized frames, valid
//     frames out of order or with a foreign handoff id, silence, floods and
//     a peer of another uid to the incumbent's control socket, and check that
//     the incumbent keeps serving and can still be handed off.
//
// Run them with
//
//	go test -race -tags handoff_crashpoints ./test/...
//
// The package holds no code of its own: everything is in _test.go files.
package test
