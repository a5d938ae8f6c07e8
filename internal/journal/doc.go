// Package journal is the supervisor's durable record of the handoff in
// progress (DESIGN section 6).
//
// The supervisor writes a [Record] after each acknowledged step of a swap and,
// above all, writes phase [Committed] before it sends Commit to anyone: a
// supervisor that restarts after a crash reads the journal to learn which
// processes took part (pids with their start times, against pid reuse) and
// whether a Commit may have gone out. The journal may lag reality by one
// step; the lock holder and the owner of the control socket path are the
// ground truth, and the journal decides nothing else.
//
// The file holds one JSON record with a CRC32C checksum. [Write] replaces it
// atomically (temporary file, fsync, rename, fsync of the directory), so a
// crash leaves either the previous record or the new one. [Read] rejects a
// damaged file with [ErrCorrupt] and keeps a copy at path+".broken".
package journal
