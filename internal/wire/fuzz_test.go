package wire

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"testing"
)

// garbage is hand-picked hostile input for both fuzz targets.
var garbage = [][]byte{
	{},
	{0xff, 0xff, 0xff, 0xff, 0x01, 0x00}, // 4 GiB length
	{0x01, 0x00, 0x00, 0x00, 0x01, 0x00}, // length without room for the version
	{0x03, 0x00, 0x00, 0x00, 0x01, 0x00, 0xa0}, // empty map
	{0x03, 0x00, 0x00, 0x00, 0x01, 0x00, 0xbf}, // unterminated indefinite map
	{0xa1, 0x64, 't', 'y', 'p', 'e', 0x1b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
	{0xa1, 0x64, 't', 'y', 'p', 'e', 0xc2, 0x41, 0x01}, // tagged bignum type
	{0x9f, 0x9f, 0x9f, 0x9f, 0x9f, 0x9f, 0x9f, 0x9f, 0x9f, 0xff},
	{0xa2, 0x64, 't', 'y', 'p', 'e', 0x0e, 0x64, 't', 'y', 'p', 'e', 0x0e},
}

func FuzzReadFrame(f *testing.F) {
	for _, frame := range goldenFrames(f) {
		f.Add(frame)
		f.Add(append(append([]byte{}, frame...), frame...))
	}
	for _, g := range garbage {
		f.Add(g)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		for {
			start := len(data) - r.Len()
			version, payload, err := ReadFrame(r)
			if err != nil {
				if !errors.Is(err, io.EOF) && !errors.Is(err, ErrProtocol) {
					t.Fatalf("error outside the protocol: %v", err)
				}
				return
			}
			if len(payload)+versionSize > MaxFrameSize {
				t.Fatalf("accepted a %d-byte payload", len(payload))
			}
			again, err := EncodeFrame(version, payload)
			if err != nil || !bytes.Equal(again, data[start:len(data)-r.Len()]) {
				t.Fatalf("re-encoded frame differs from the input (%v)", err)
			}
		}
	})
}

func FuzzDecode(f *testing.F) {
	for _, frame := range goldenFrames(f) {
		f.Add(frame[HeaderSize:])
	}
	for _, g := range garbage {
		f.Add(g)
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		m, id, err := Decode(payload)
		if err != nil {
			if !errors.Is(err, ErrProtocol) {
				t.Fatalf("error outside the protocol: %v", err)
			}
			return
		}
		frame, err := Encode(HelloFrameVersion, id, m)
		if errors.Is(err, ErrFrameTooLarge) {
			return // the input was near the limit; defaults can add a few bytes
		}
		if err != nil {
			t.Fatalf("decoded %#v (id %s) but cannot encode it: %v", m, id, err)
		}
		m2, id2 := decodeFrame(t, frame)
		if id2 != id || !reflect.DeepEqual(normalize(m2), normalize(m)) {
			t.Fatalf("round trip changed the message:\n got %#v %s\nwant %#v %s", m2, id2, m, id)
		}
		if again, err := Encode(HelloFrameVersion, id2, m2); err != nil || !bytes.Equal(again, frame) {
			t.Fatalf("encoding is not deterministic (%v)", err)
		}
	})
}

// decodeFrame reads and decodes one whole frame, failing the test on error.
func decodeFrame(t *testing.T, frame []byte) (Message, ID) {
	t.Helper()
	_, payload, err := ReadFrame(bytes.NewReader(frame))
	if err != nil {
		t.Fatalf("ReadFrame of our own encoding: %v", err)
	}
	m, id, err := Decode(payload)
	if err != nil {
		t.Fatalf("Decode of our own encoding: %v", err)
	}
	return m, id
}
