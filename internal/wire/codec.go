package wire

import (
	"fmt"

	"github.com/fxamacker/cbor/v2"
)

// Payload keys shared by every message; a message's own fields sit beside
// them in the same map.
const (
	keyType = "type"
	keyID   = "id"
)

// Decoding limits. A valid message of this protocol is a map of a few
// fields holding scalars and flat arrays, so anything deeper or wider is
// rejected early; MaxFrameSize already bounds the total size.
const (
	maxNestedLevels  = 8
	maxArrayElements = 65536
	maxMapPairs      = 256
)

var (
	encMode = mustEncMode()
	decMode = mustDecMode()
)

// mustEncMode returns the encoder: RFC 8949 core deterministic encoding
// (shortest integers, sorted keys, definite lengths), no tags, nil slices
// as empty arrays and byte strings.
func mustEncMode() cbor.EncMode {
	opts := cbor.CoreDetEncOptions()
	opts.NilContainers = cbor.NilContainerAsEmpty
	opts.TagsMd = cbor.TagsForbidden
	em, err := opts.EncMode()
	if err != nil {
		panic(fmt.Sprintf("handoff: wire encoder options: %v", err))
	}
	return em
}

// mustDecMode returns the decoder: strict about shape (duplicate keys,
// tags, invalid UTF-8, exact key case) and small limits, lenient about
// unknown keys, which it skips so that newer peers can add fields.
func mustDecMode() cbor.DecMode {
	dm, err := cbor.DecOptions{
		DupMapKey:         cbor.DupMapKeyEnforcedAPF,
		TagsMd:            cbor.TagsForbidden,
		UTF8:              cbor.UTF8RejectInvalid,
		FieldNameMatching: cbor.FieldNameMatchingCaseSensitive,
		MaxNestedLevels:   maxNestedLevels,
		MaxArrayElements:  maxArrayElements,
		MaxMapPairs:       maxMapPairs,
	}.DecMode()
	if err != nil {
		panic(fmt.Sprintf("handoff: wire decoder options: %v", err))
	}
	return dm
}

// Encode returns the whole frame (header and payload) for m with the given
// frame version and handoff id. A Hello must have the zero id (it is left
// out of the payload); every other message needs a non-zero id.
func Encode(version uint16, id ID, m Message) ([]byte, error) {
	payload, err := EncodePayload(id, m)
	if err != nil {
		return nil, err
	}
	return EncodeFrame(version, payload)
}

// EncodePayload returns the CBOR payload for m and id, without the frame
// header.
func EncodePayload(id ID, m Message) ([]byte, error) {
	if m == nil {
		return nil, fmt.Errorf("handoff: encode: nil message")
	}
	if err := checkID(m.Type(), id); err != nil {
		return nil, &ProtocolError{Op: "encode " + m.Type().String(), Err: err}
	}
	fields, err := messageFields(m)
	if err != nil {
		return nil, err
	}
	fields[keyType] = mustMarshal(uint64(m.Type()))
	if !id.IsZero() {
		fields[keyID] = mustMarshal(id[:])
	}
	payload, err := encMode.Marshal(fields)
	if err != nil {
		return nil, fmt.Errorf("handoff: encode %s: %w", m.Type(), err)
	}
	return payload, nil
}

// messageFields encodes m's own fields and returns them keyed by name, ready
// to be merged with the shared keys into one map.
func messageFields(m Message) (map[string]cbor.RawMessage, error) {
	raw, err := encMode.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("handoff: encode %s: %w", m.Type(), err)
	}
	var fields map[string]cbor.RawMessage
	if err := decMode.Unmarshal(raw, &fields); err != nil {
		return nil, fmt.Errorf("handoff: encode %s: %w", m.Type(), err)
	}
	if fields == nil { // a nil *T encodes as CBOR null
		fields = map[string]cbor.RawMessage{}
	}
	if _, ok := fields[keyType]; ok {
		return nil, fmt.Errorf("handoff: encode %s: field name %q is reserved", m.Type(), keyType)
	}
	if _, ok := fields[keyID]; ok {
		return nil, fmt.Errorf("handoff: encode %s: field name %q is reserved", m.Type(), keyID)
	}
	return fields, nil
}

// mustMarshal encodes a value that cannot fail to encode (an integer or a
// byte slice).
func mustMarshal(v any) cbor.RawMessage {
	b, err := encMode.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("handoff: encode %T: %v", v, err))
	}
	return b
}

// envelope is the part of a payload that every message shares. Pointers
// tell a missing key from a zero value.
type envelope struct {
	Type *uint64 `cbor:"type"`
	ID   *[]byte `cbor:"id"`
}

// Decode parses a frame payload into its message and handoff id. Every
// failure is a *ProtocolError matching [ErrProtocol] and one of
// [ErrMalformed], [ErrUnknownType] or [ErrBadID]. Keys it does not know are
// ignored.
func Decode(payload []byte) (Message, ID, error) {
	var env envelope
	if err := decMode.Unmarshal(payload, &env); err != nil {
		return nil, ID{}, malformed(err)
	}
	m, err := newMessage(env.Type)
	if err != nil {
		return nil, ID{}, err
	}
	id, err := envelopeID(m.Type(), env.ID)
	if err != nil {
		return nil, ID{}, err
	}
	if err := decMode.Unmarshal(payload, m); err != nil {
		return nil, ID{}, malformed(err)
	}
	return m, id, nil
}

// malformed wraps a CBOR decoding error.
func malformed(err error) error {
	return &ProtocolError{Op: "decode", Err: &causeError{ErrMalformed, err}}
}

// envelopeID checks the id key of a message of type t.
func envelopeID(t Type, raw *[]byte) (ID, error) {
	var id ID
	if raw != nil {
		if len(*raw) != len(id) {
			return ID{}, protoErr("decode", ErrBadID, "%s carries a %d-byte id, want %d", t, len(*raw), len(id))
		}
		copy(id[:], *raw)
	}
	if err := checkID(t, id); err != nil {
		return ID{}, &ProtocolError{Op: "decode", Err: err}
	}
	return id, nil
}

// checkID applies the id rule: zero in Hello, non-zero everywhere else.
func checkID(t Type, id ID) error {
	switch {
	case t == TypeHello && !id.IsZero():
		return fmt.Errorf("%w: Hello must not carry a handoff id (got %s)", ErrBadID, id)
	case t != TypeHello && id.IsZero():
		return fmt.Errorf("%w: %s needs a non-zero handoff id", ErrBadID, t)
	}
	return nil
}

// newMessage returns an empty message of the given wire type.
func newMessage(t *uint64) (Message, error) {
	if t == nil {
		return nil, protoErr("decode", ErrMalformed, "no %q key", keyType)
	}
	if *t <= uint64(^Type(0)) {
		if m := messageOf(Type(*t)); m != nil {
			return m, nil
		}
	}
	return nil, protoErr("decode", ErrUnknownType, "type %d", *t)
}

// constructors make an empty message of every known type.
var constructors = map[Type]func() Message{
	TypeHello:            func() Message { return &Hello{} },
	TypeHelloAck:         func() Message { return &HelloAck{} },
	TypePrepareHandoff:   func() Message { return &PrepareHandoff{} },
	TypeDrained:          func() Message { return &Drained{} },
	TypeSealRequest:      func() Message { return &SealRequest{} },
	TypeSealProgress:     func() Message { return &SealProgress{} },
	TypeSealComplete:     func() Message { return &SealComplete{} },
	TypeSealFailed:       func() Message { return &SealFailed{} },
	TypeBegin:            func() Message { return &Begin{} },
	TypeReady:            func() Message { return &Ready{} },
	TypeCommit:           func() Message { return &Commit{} },
	TypeAbort:            func() Message { return &Abort{} },
	TypeResumeAfterAbort: func() Message { return &ResumeAfterAbort{} },
	TypeHeartbeat:        func() Message { return &Heartbeat{} },
	TypeListenersRequest: func() Message { return &ListenersRequest{} },
	TypeListeners:        func() Message { return &Listeners{} },
	TypeSnapshotRequest:  func() Message { return &SnapshotRequest{} },
	TypeSnapshot:         func() Message { return &Snapshot{} },
	TypeDrainFailed:      func() Message { return &DrainFailed{} },
}

// messageOf returns an empty message of type t, or nil if t is unknown.
func messageOf(t Type) Message {
	if c, ok := constructors[t]; ok {
		return c()
	}
	return nil
}
