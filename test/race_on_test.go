//go:build race

package test

// raceEnabled makes TestMain build the daemon and the supervisor driver with
// the race detector too, so the library is checked inside every process.
const raceEnabled = true
