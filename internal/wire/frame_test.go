package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"runtime"
	"testing"
)

func TestReadFrame_sequenceThenCleanEOF(t *testing.T) {
	var stream []byte
	for i, p := range [][]byte{{0xa0}, {}, bytes.Repeat([]byte{7}, 1000)} {
		var err error
		if stream, err = AppendFrame(stream, uint16(i+1), p); err != nil {
			t.Fatal(err)
		}
	}
	r := bytes.NewReader(stream)
	for i, want := range [][]byte{{0xa0}, {}, bytes.Repeat([]byte{7}, 1000)} {
		v, p, err := ReadFrame(r)
		if err != nil || v != uint16(i+1) || !bytes.Equal(p, want) {
			t.Fatalf("frame %d: version %d payload %d bytes err %v", i, v, len(p), err)
		}
	}
	if _, _, err := ReadFrame(r); err != io.EOF { //nolint:errorlint // io.Reader convention: bare io.EOF
		t.Fatalf("after the last frame: %v, want io.EOF itself", err)
	}
}

func TestReadFrame_truncatedAtEveryCut(t *testing.T) {
	frame, err := Encode(1, sampleID, samples()[6])
	if err != nil {
		t.Fatal(err)
	}
	for cut := 1; cut < len(frame); cut++ {
		_, _, err := ReadFrame(bytes.NewReader(frame[:cut]))
		if !errors.Is(err, ErrTruncated) || !errors.Is(err, ErrProtocol) || !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("cut at %d of %d: %v, want ErrTruncated, ErrProtocol and io.ErrUnexpectedEOF", cut, len(frame), err)
		}
	}
}

// headerOnly yields a frame header and fails the test if anything reads
// past it.
type headerOnly struct {
	t   *testing.T
	hdr []byte
}

func (h *headerOnly) Read(p []byte) (int, error) {
	if len(h.hdr) == 0 {
		h.t.Errorf("ReadFrame read past a header it should have rejected")
		return 0, io.EOF
	}
	n := copy(p, h.hdr)
	h.hdr = h.hdr[n:]
	return n, nil
}

func TestReadFrame_oversizeRejectedBeforeAllocating(t *testing.T) {
	for _, length := range []uint32{MaxFrameSize + 1, 1<<32 - 1} {
		hdr := binary.LittleEndian.AppendUint32(nil, length)
		hdr = binary.LittleEndian.AppendUint16(hdr, 1)
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, _, err := ReadFrame(&headerOnly{t: t, hdr: hdr})
		runtime.ReadMemStats(&after)
		if !errors.Is(err, ErrFrameTooLarge) || !errors.Is(err, ErrProtocol) {
			t.Fatalf("length %d: %v, want ErrFrameTooLarge and ErrProtocol", length, err)
		}
		if grew := after.TotalAlloc - before.TotalAlloc; grew >= MaxFrameSize {
			t.Errorf("length %d: allocated %d bytes before rejecting", length, grew)
		}
	}
}

func TestReadFrame_largestFrameAccepted(t *testing.T) {
	frame, err := EncodeFrame(1, make([]byte, MaxFrameSize-2))
	if err != nil {
		t.Fatal(err)
	}
	if _, p, err := ReadFrame(bytes.NewReader(frame)); err != nil || len(p) != MaxFrameSize-2 {
		t.Fatalf("got %d bytes, %v", len(p), err)
	}
	if _, err := EncodeFrame(1, make([]byte, MaxFrameSize-1)); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("one byte over: %v, want ErrFrameTooLarge", err)
	}
}

func TestReadFrame_lengthWithoutVersion(t *testing.T) {
	for _, length := range []byte{0, 1} {
		_, _, err := ReadFrame(bytes.NewReader([]byte{length, 0, 0, 0, 1, 0}))
		if !errors.Is(err, ErrMalformed) {
			t.Errorf("length %d: %v, want ErrMalformed", length, err)
		}
	}
}

// failingReader returns its error at once.
type failingReader struct{ err error }

func (f failingReader) Read([]byte) (int, error) { return 0, f.err }

func TestReadFrame_passesOtherErrorsThrough(t *testing.T) {
	cause := errors.New("disk on fire")
	_, _, err := ReadFrame(failingReader{cause})
	if !errors.Is(err, cause) || errors.Is(err, ErrProtocol) {
		t.Fatalf("got %v, want the cause and no protocol violation", err)
	}
}
