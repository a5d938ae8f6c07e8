// Package flock implements the data-dir lock: flock(2) on
// <dir>/.handoff.lock plus an atomically written pid file.
//
// # Invariants
//
// At most one process holds the lock at any instant, and only the holder
// writes the data directory (DESIGN invariant 1). The lock file is created
// once and never unlinked: a process that unlinked it and locked a fresh
// inode could hold "the lock" at the same time as a process still locking
// the old inode. For the same reason a stale lock is never broken by force:
// [AcquireOrBreakStale] only retries flock on the same inode after proving
// that the process named by the pid file is dead, which is safe because the
// kernel, not this package, decides who gets the lock.
//
// The lock descriptor is close-on-exec, so a spawned successor never inherits
// it. The pid file (<dir>/.handoff.pid, "pid starttime\n") is advisory: it
// tells others who to blame and whether that process is dead. It is written
// by temp file and rename (atomic, not fsynced: it only describes a live
// process) while the lock is held, and removed on release only while it
// still names the releasing process.
//
// [Holder] finds the holder from /proc/locks without touching the lock, so a
// supervisor can look without colliding with a successor's acquire.
package flock
