// Package wire is the handoff control protocol as bytes on a Unix stream
// socket: frames, the CBOR codec of every message, version negotiation, and
// [Conn], which adds deadlines, descriptor passing (SCM_RIGHTS) and kernel
// credentials (SCM_CREDENTIALS, SO_PEERCRED).
//
// PROTOCOL.md at the repository root is the language-neutral specification;
// this package is its reference implementation. In short:
//
//	frame   = u32 LE length · u16 LE version · payload   (length <= MaxFrameSize)
//	payload = one CBOR map {"type": uint, "id": bstr .size 16, fields...}
//
// Everything the package returns on bad input is a typed error matching
// [ErrProtocol] (or [ErrFrameTooLarge], [ErrVersionMismatch],
// [ErrPeerTimeout]); the decoder never panics. A session that sees a
// protocol error closes the connection: after one, the stream can no longer
// be trusted to be at a frame boundary.
package wire
