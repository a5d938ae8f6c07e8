// Package store is kvd's durable key-value store: one append-only log file
// in the data directory, an in-memory index rebuilt when the log is opened,
// and group commit so that concurrent writers share one fsync.
//
// # Log format
//
// The log is the file kvd.log in the data directory. It is a sequence of
// records, all integers little-endian:
//
//	u32 length   bytes after the CRC: 17 + key length + value length
//	u32 crc      CRC-32C (Castagnoli) of those bytes
//	u64 revision
//	u8  op       1 = put, 2 = footer
//	u32 key length
//	u32 value length
//	key, value
//
// Every put carries the next revision (revisions are dense: 1, 2, 3, …).
// A footer is written by [Store.Seal]. It repeats the last revision, and its
// value holds the magic "KVDSEAL1", the last revision, the number of put
// records before it and the fingerprint of the log before it (see below).
//
// # Footers stay in the log
//
// A footer is an ordinary record that recovery understands: [Open]
// validates every footer it meets (last revision, record count and
// fingerprint must match what precedes it) and a later writer simply
// appends after it. Open never removes a footer, because Open must not
// write: a successor opens the sealed log before it is allowed to write
// anything, and if its handoff is aborted the incumbent reopens the very
// same bytes. Each handoff therefore leaves one 81-byte footer behind.
//
// # Opening and writing are separate
//
// [Open] only reads. It returns a read-only store (puts fail with
// [ErrReadOnly]); [Store.StartWrites] repairs a torn tail, if Open found
// one, and starts the writer. A daemon calls StartWrites once it may write
// (for a successor: after the handoff committed).
//
// # Recovery
//
// Open scans the whole log. A last record that is incomplete or fails its
// CRC is a torn tail (a crash during a write that was never acknowledged):
// it is logged, and StartWrites copies the cut bytes to
// kvd.log.<offset>.broken and truncates the log there. A bad record that is
// followed by a good one is corruption of acknowledged data: Open refuses
// it with a [*CorruptError] naming the file and offset, and truncates
// nothing. So do a revision out of order and a footer that does not match
// the records before it.
//
// # Fingerprint
//
// The fingerprint is a SHA-256 over every byte of every record (puts and
// footers) in log order. It is maintained incrementally: the writer hashes
// each batch it appends, and Open hashes while it scans (it reads every
// byte anyway to build the index), so neither Seal nor Open rehashes the
// log. Two stores with the same fingerprint hold byte-identical logs. The
// fingerprint [Store.Seal] reports includes the footer, so it equals what a
// successor computes when it opens the sealed log.
//
// # Durability
//
// [Store.Put] returns only after its record was written and fdatasync'd.
// One goroutine owns the file: it takes every queued put, writes them as
// one batch, syncs once, applies them to the index and then releases all
// their waiters. After a failed write or sync the store fails every later
// write ([ErrFailed]); the page cache can no longer be trusted, and the
// next Open repairs the tail.
package store
