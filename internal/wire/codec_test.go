package wire

import (
	"bytes"
	"cmp"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/fxamacker/cbor/v2"
)

// rawPayload encodes an arbitrary map as a payload, for inputs the encoder
// would never produce.
func rawPayload(t *testing.T, m map[string]any) []byte {
	t.Helper()
	b, err := cbor.Marshal(m)
	if err != nil {
		t.Fatalf("marshal %v: %v", m, err)
	}
	return b
}

func TestEncodeDecode_roundTripEveryType(t *testing.T) {
	for _, m := range samples() {
		t.Run(m.Type().String(), func(t *testing.T) {
			frame, err := Encode(3, idFor(m), m)
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			version, payload, err := ReadFrame(bytes.NewReader(frame))
			if err != nil {
				t.Fatalf("ReadFrame: %v", err)
			}
			got, id, err := Decode(payload)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if version != 3 || id != idFor(m) {
				t.Errorf("version %d id %s, want 3 and %s", version, id, idFor(m))
			}
			if !reflect.DeepEqual(got, m) {
				t.Errorf("decoded %#v, want %#v", got, m)
			}
		})
	}
}

func TestEncode_isDeterministicWithSortedKeys(t *testing.T) {
	m := samples()[17] // Snapshot: the most keys
	a, errA := EncodePayload(sampleID, m)
	b, errB := EncodePayload(sampleID, m)
	if errA != nil || errB != nil || !bytes.Equal(a, b) {
		t.Fatalf("two encodings differ or fail: %x %v / %x %v", a, errA, b, errB)
	}
	keys := mapKeys(t, a)
	sorted := slices.IsSortedFunc(keys, func(x, y string) int {
		return cmp.Or(cmp.Compare(len(x), len(y)), strings.Compare(x, y))
	})
	if !sorted || len(keys) != 9 {
		t.Errorf("keys %q: want 9 keys in core deterministic order (shorter first, then bytewise)", keys)
	}
}

// mapKeys returns the keys of a small CBOR map (under 24 pairs) in wire
// order.
func mapKeys(t *testing.T, payload []byte) []string {
	t.Helper()
	if len(payload) == 0 || payload[0]&0xe0 != 0xa0 || payload[0]&0x1f >= 24 {
		t.Fatalf("payload %x does not start with a small map", payload)
	}
	dec := cbor.NewDecoder(bytes.NewReader(payload[1:]))
	keys := make([]string, int(payload[0]&0x1f))
	for i := range keys {
		var skip cbor.RawMessage
		if err := dec.Decode(&keys[i]); err != nil {
			t.Fatal(err)
		}
		if err := dec.Decode(&skip); err != nil {
			t.Fatal(err)
		}
	}
	return keys
}

func TestEncode_nilSlicesAreEmptyArrays(t *testing.T) {
	payload, err := EncodePayload(sampleID, &Listeners{})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(payload, []byte("\x65names\x80")) {
		t.Errorf("payload %x does not hold names: [] (0x80)", payload)
	}
}

func TestDecode_ignoresUnknownFields(t *testing.T) {
	payload := rawPayload(t, map[string]any{
		"type": uint(TypeDrained), "id": sampleID[:], "open_conns": 3, "accept_closed": true,
		"future": []any{1, "x", map[string]any{"nested": []byte{1}}}, "ratio": 1.5, "Type": "case differs",
	})
	m, id, err := Decode(payload)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	want := &Drained{OpenConnsRemaining: 3, AcceptClosed: true}
	if !reflect.DeepEqual(m, want) || id != sampleID {
		t.Errorf("got %#v %s, want %#v %s", m, id, want, sampleID)
	}
}

func TestDecode_missingFieldsAreZero(t *testing.T) {
	m, _, err := Decode(rawPayload(t, map[string]any{"type": uint(TypeAbort), "id": sampleID[:]}))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(m, &Abort{}) {
		t.Errorf("got %#v, want a zero Abort", m)
	}
}

func TestDecode_helloMayCarryZeroID(t *testing.T) {
	m, id, err := Decode(rawPayload(t, map[string]any{"type": uint(TypeHello), "id": make([]byte, 16)}))
	if err != nil || m.Type() != TypeHello || !id.IsZero() {
		t.Fatalf("got %v %s %v, want a Hello with the zero id", m, id, err)
	}
}

func TestDecode_rejects(t *testing.T) {
	id := sampleID[:]
	tests := []struct {
		name    string
		payload []byte
		kind    error
	}{
		{"empty payload", nil, ErrMalformed},
		{"not a map", mustCBOR(t, []any{uint(TypeCommit), id}), ErrMalformed},
		{"null", []byte{0xf6}, ErrMalformed},
		{"no type", rawPayload(t, map[string]any{"id": id}), ErrMalformed},
		{"negative type", rawPayload(t, map[string]any{"type": -1, "id": id}), ErrMalformed},
		{"text type", rawPayload(t, map[string]any{"type": "Commit", "id": id}), ErrMalformed},
		{"unknown type", rawPayload(t, map[string]any{"type": 200, "id": id}), ErrUnknownType},
		{"type zero", rawPayload(t, map[string]any{"type": 0, "id": id}), ErrUnknownType},
		{"type beyond a byte", rawPayload(t, map[string]any{"type": 256 + int(TypeCommit), "id": id}), ErrUnknownType},
		{"no id", rawPayload(t, map[string]any{"type": uint(TypeCommit)}), ErrBadID},
		{"zero id", rawPayload(t, map[string]any{"type": uint(TypeCommit), "id": make([]byte, 16)}), ErrBadID},
		{"short id", rawPayload(t, map[string]any{"type": uint(TypeCommit), "id": id[:15]}), ErrBadID},
		{"long id", rawPayload(t, map[string]any{"type": uint(TypeCommit), "id": append(id, 0)}), ErrBadID},
		{"text id", rawPayload(t, map[string]any{"type": uint(TypeCommit), "id": string(id)}), ErrMalformed},
		{"hello with id", rawPayload(t, map[string]any{"type": uint(TypeHello), "id": id}), ErrBadID},
		{"pid as text", rawPayload(t, map[string]any{"type": uint(TypeHello), "pid": "42"}), ErrMalformed},
		{"pid overflows int32", rawPayload(t, map[string]any{"type": uint(TypeHello), "pid": 1 << 40}), ErrMalformed},
		{"role overflows a byte", rawPayload(t, map[string]any{"type": uint(TypeHello), "role": 300}), ErrMalformed},
		{"caps not an array", rawPayload(t, map[string]any{"type": uint(TypeHello), "caps": "seal-progress"}), ErrMalformed},
		{"revision negative", rawPayload(t, map[string]any{"type": uint(TypeSealComplete), "id": id, "revisions": []any{-1}}), ErrMalformed},
		{"bool as int", rawPayload(t, map[string]any{"type": uint(TypeDrained), "id": id, "accept_closed": 1}), ErrMalformed},
		{"duplicate key", dupKeyPayload(), ErrMalformed},
		{"trailing bytes", append(rawPayload(t, map[string]any{"type": uint(TypeHello)}), 0x00), ErrMalformed},
		{"tag", append([]byte{0xc1}, rawPayload(t, map[string]any{"type": uint(TypeHello)})...), ErrMalformed},
		{"invalid UTF-8", rawPayload(t, map[string]any{"type": uint(TypeHello), "build_id": "\xff"}), ErrMalformed},
		{"too deep", rawPayload(t, map[string]any{"type": uint(TypeHello), "x": deep(maxNestedLevels)}), ErrMalformed},
		{"byte-string key", []byte{0xa1, 0x44, 't', 'y', 'p', 'e', 0x01}, ErrMalformed},
		{"truncated CBOR", rawPayload(t, map[string]any{"type": uint(TypeHello), "build_id": "abc"})[:5], ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, _, err := Decode(tc.payload)
			if !errors.Is(err, tc.kind) || !errors.Is(err, ErrProtocol) {
				t.Fatalf("Decode = %v, %v; want an error matching %v and ErrProtocol", m, err, tc.kind)
			}
			var pe *ProtocolError
			if !errors.As(err, &pe) || !strings.HasPrefix(err.Error(), "handoff: decode: ") {
				t.Errorf("error %q is not a *ProtocolError prefixed \"handoff: decode: \"", err)
			}
		})
	}
}

func TestEncode_rejectsIDMisuse(t *testing.T) {
	if _, err := Encode(1, ID{}, &Commit{}); !errors.Is(err, ErrBadID) {
		t.Errorf("Commit with zero id: %v, want ErrBadID", err)
	}
	if _, err := Encode(1, sampleID, &Hello{}); !errors.Is(err, ErrBadID) {
		t.Errorf("Hello with an id: %v, want ErrBadID", err)
	}
	if _, err := Encode(1, sampleID, nil); err == nil {
		t.Error("nil message encoded")
	}
}

func TestEncode_rejectsOversizeMessage(t *testing.T) {
	_, err := Encode(1, sampleID, &SealFailed{Reason: strings.Repeat("x", MaxFrameSize)})
	if !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("got %v, want ErrFrameTooLarge", err)
	}
}

// mustCBOR encodes any value.
func mustCBOR(t *testing.T, v any) []byte {
	t.Helper()
	b, err := cbor.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// dupKeyPayload is {"type": 14, "type": 14, "id": …}: a Heartbeat whose
// type key appears twice.
func dupKeyPayload() []byte {
	b := []byte{0xa3, 0x64, 't', 'y', 'p', 'e', 0x0e, 0x64, 't', 'y', 'p', 'e', 0x0e, 0x62, 'i', 'd', 0x50}
	return append(b, sampleID[:]...)
}

// deep returns n nested arrays.
func deep(n int) any {
	var v any = 1
	for range n {
		v = []any{v}
	}
	return v
}
