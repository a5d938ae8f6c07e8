//go:build !race

package test

// raceEnabled is false: the child programs are built without -race.
const raceEnabled = false
