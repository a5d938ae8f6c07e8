package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Frame layout: a 4-byte little-endian length of everything after it, then
// a 2-byte little-endian protocol version, then the payload.
const (
	// HeaderSize is the size of the length and version fields.
	HeaderSize = 6

	// MaxFrameSize caps the length field (version plus payload). A reader
	// rejects a larger length before allocating anything, so a hostile or
	// corrupt length cannot make it allocate more than 1 MiB.
	MaxFrameSize = 1 << 20

	// versionSize is the size of the version field, which the length
	// counts.
	versionSize = 2
)

// ReadFrame reads one frame from r and returns its version and payload.
//
// It returns io.EOF (unwrapped) when r ends cleanly at a frame boundary, an
// error matching [ErrFrameTooLarge] and [ErrProtocol] when the length
// exceeds MaxFrameSize (checked before the payload is allocated), and an
// error matching [ErrTruncated], [ErrProtocol] and io.ErrUnexpectedEOF when r
// ends inside a frame. Other read errors are returned wrapped.
func ReadFrame(r io.Reader) (version uint16, payload []byte, err error) {
	var hdr [HeaderSize]byte
	if n, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, readErr(err, n, HeaderSize)
	}
	bodyLen, version, err := ParseHeader(hdr)
	if err != nil {
		return 0, nil, err
	}
	payload = make([]byte, bodyLen)
	if n, err := io.ReadFull(r, payload); err != nil {
		return 0, nil, readErr(err, HeaderSize+n, HeaderSize+bodyLen)
	}
	return version, payload, nil
}

// ParseHeader checks a frame header and returns the payload length and the
// version. It is what a reader must call before allocating the payload.
func ParseHeader(hdr [HeaderSize]byte) (payloadLen int, version uint16, err error) {
	length := binary.LittleEndian.Uint32(hdr[0:4])
	if length > MaxFrameSize {
		return 0, 0, &ProtocolError{Op: "read frame", Err: fmt.Errorf(
			"%w: length %d exceeds the %d-byte limit", ErrFrameTooLarge, length, MaxFrameSize)}
	}
	if length < versionSize {
		return 0, 0, protoErr("read frame", ErrMalformed, "length %d leaves no room for the version", length)
	}
	return int(length) - versionSize, binary.LittleEndian.Uint16(hdr[4:6]), nil
}

// AppendFrame appends a frame holding version and payload to dst. It fails
// with an error matching [ErrFrameTooLarge] if the frame would exceed
// MaxFrameSize, so a sender never produces a frame its peer must reject.
func AppendFrame(dst []byte, version uint16, payload []byte) ([]byte, error) {
	length := versionSize + len(payload)
	if length > MaxFrameSize {
		return dst, fmt.Errorf("%w: encoding a frame of %d bytes (limit %d)",
			ErrFrameTooLarge, length, MaxFrameSize)
	}
	dst = binary.LittleEndian.AppendUint32(dst, uint32(length))
	dst = binary.LittleEndian.AppendUint16(dst, version)
	return append(dst, payload...), nil
}

// EncodeFrame returns a new frame holding version and payload.
func EncodeFrame(version uint16, payload []byte) ([]byte, error) {
	return AppendFrame(make([]byte, 0, HeaderSize+len(payload)), version, payload)
}

// readErr classifies a read error after got of want bytes of a frame.
func readErr(err error, got, want int) error {
	switch {
	case errors.Is(err, io.EOF) && got == 0:
		return io.EOF
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return truncated(got, want)
	}
	return fmt.Errorf("handoff: read frame: %w", err)
}

// truncated reports a stream that ended after got of want frame bytes.
func truncated(got, want int) error {
	return &ProtocolError{Op: "read frame", Err: fmt.Errorf(
		"%w: stream ended after %d of %d bytes: %w", ErrTruncated, got, want, io.ErrUnexpectedEOF)}
}
