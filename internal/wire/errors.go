package wire

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors of the wire protocol. Every decoding or session error wraps
// one of them.
var (
	// ErrProtocol is the parent of every protocol violation.
	ErrProtocol = errors.New("handoff: protocol violation")

	// ErrFrameTooLarge means a length prefix announced more than MaxFrameSize.
	ErrFrameTooLarge = errors.New("handoff: frame too large")

	// ErrVersionMismatch means the peers' protocol version ranges are
	// disjoint.
	ErrVersionMismatch = errors.New("handoff: protocol version mismatch")

	// ErrPeerTimeout means the peer sent nothing before the read deadline.
	ErrPeerTimeout = errors.New("handoff: peer timed out")
)

// Kinds of protocol violation. Each one matches [ErrProtocol] with
// errors.Is, so callers that only care whether the peer broke the protocol
// test for that, and tests can name the exact kind.
var (
	// ErrTruncated means the stream ended inside a frame.
	ErrTruncated error = &protocolKind{"handoff: truncated frame"}

	// ErrMalformed means a payload is not one well-formed CBOR map of the
	// expected shape (bad CBOR, wrong field type, duplicate key, a limit
	// exceeded, trailing bytes).
	ErrMalformed error = &protocolKind{"handoff: malformed message"}

	// ErrUnknownType means a payload names a message type this
	// implementation does not know.
	ErrUnknownType error = &protocolKind{"handoff: unknown message type"}

	// ErrBadID means a payload's handoff id is missing, not 16 bytes, zero
	// where it must not be, or non-zero in a Hello.
	ErrBadID error = &protocolKind{"handoff: bad handoff id"}

	// ErrWrongID means a frame carries a handoff id other than the
	// session's.
	ErrWrongID error = &protocolKind{"handoff: wrong handoff id"}

	// ErrWrongVersion means a frame carries a protocol version other than
	// the negotiated one (or a handshake frame is not version 1).
	ErrWrongVersion error = &protocolKind{"handoff: wrong frame version"}

	// ErrOutOfOrder means a message arrived where the connection's
	// handshake state does not allow it (a non-handshake message before
	// the handshake, or a second handshake).
	ErrOutOfOrder error = &protocolKind{"handoff: message out of order"}

	// ErrUnexpectedFDs means descriptors arrived with a frame that may not
	// carry them, or a Listeners frame carried a different number of
	// descriptors than names. The descriptors were closed.
	ErrUnexpectedFDs error = &protocolKind{"handoff: unexpected descriptors"}

	// ErrFDsTruncated means the kernel truncated the control data of a
	// frame (more descriptors than the receive buffer holds). Whatever
	// arrived was closed.
	ErrFDsTruncated error = &protocolKind{"handoff: descriptors truncated"}
)

// ErrNoDeadline means Send or Recv was called without a deadline. The
// protocol requires one on every read and write, so a silent peer can never
// pin the other side.
var ErrNoDeadline = errors.New("handoff: wire I/O needs a deadline")

// protocolKind is a sentinel that also matches ErrProtocol.
type protocolKind struct{ msg string }

// Error returns the kind's message.
func (k *protocolKind) Error() string { return k.msg }

// Unwrap makes every kind match ErrProtocol.
func (k *protocolKind) Unwrap() error { return ErrProtocol }

// ProtocolError reports a protocol violation: what was being done (Op) and
// why (Err). It matches [ErrProtocol] and everything Err matches, so
// errors.Is(err, ErrTruncated) and errors.Is(err, io.ErrUnexpectedEOF) both
// work on a truncated frame. The session that sees one must close.
type ProtocolError struct {
	// Op is the operation that failed, e.g. "read frame", "decode", "recv".
	Op string
	// Err is the cause, usually wrapping one of the sentinels above.
	Err error
}

// Error returns "handoff: <op>: <cause>".
func (e *ProtocolError) Error() string {
	return "handoff: " + e.Op + ": " + strings.TrimPrefix(e.Err.Error(), "handoff: ")
}

// Unwrap returns the cause and ErrProtocol.
func (e *ProtocolError) Unwrap() []error { return []error{e.Err, ErrProtocol} }

// causeError joins a sentinel kind and the error that caused it under one
// message, without repeating the "handoff: " prefix, and matches both.
type causeError struct{ kind, cause error }

// Error returns "handoff: <kind>: <cause>".
func (e *causeError) Error() string {
	return e.kind.Error() + ": " + strings.TrimPrefix(e.cause.Error(), "handoff: ")
}

// Unwrap returns the kind and the cause.
func (e *causeError) Unwrap() []error { return []error{e.kind, e.cause} }

// protoErr builds a *ProtocolError whose cause is kind with a formatted
// detail.
func protoErr(op string, kind error, format string, args ...any) error {
	detail := fmt.Sprintf(format, args...)
	return &ProtocolError{Op: op, Err: fmt.Errorf("%w: %s", kind, detail)}
}
