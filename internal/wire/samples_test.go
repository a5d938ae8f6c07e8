package wire

import (
	"bytes"
	"reflect"
	"testing"
)

// sampleID is the fixed handoff id of the sample frames.
var sampleID = ID{0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0xfe, 0xdc, 0xba, 0x98, 0x76, 0x54, 0x32, 0x10}

// samples returns one message of every type, every field non-zero, in type
// order.
func samples() []Message {
	return []Message{
		&Hello{Role: RoleIncumbent, PID: 4242, BuildID: "kvd-1a2b3c", MinVersion: 1, MaxVersion: 3,
			Capabilities: []string{CapSealProgress, CapSnapshot}},
		&HelloAck{Version: 1, Capabilities: []string{CapSealProgress}, Role: RoleSupervisor},
		&PrepareHandoff{SuccessorPID: 4343, DeadlineMillis: 60000, DrainGraceMillis: 25000},
		&Drained{OpenConnsRemaining: 7, AcceptClosed: true},
		&SealRequest{},
		&SealProgress{ShardsSealed: 3, ShardsTotal: 8, LastRevision: 1 << 40},
		&SealComplete{LastRevisionPerShard: []uint64{1, 1<<32 + 5, 1<<64 - 1},
			Fingerprint: bytes.Repeat([]byte{0xab}, 32)},
		&SealFailed{Reason: "fsync shard 2: input/output error"},
		&Begin{},
		&Ready{ListeningOn: []string{"http", "resp"}, HealthzOK: true,
			AdvertisedRevisionPerShard: []uint64{9, 10}, Fingerprint: bytes.Repeat([]byte{0xcd}, 32)},
		&Commit{},
		&Abort{Reason: ReasonRevisionBehind, Detail: "shard 1 at 9, sealed at 10"},
		&ResumeAfterAbort{Reason: ReasonUnhealthy},
		&Heartbeat{},
		&ListenersRequest{},
		&Listeners{Names: []string{"http", "resp"}},
		&SnapshotRequest{},
		&Snapshot{PID: 4242, BuildID: "kvd-1a2b3c", StartedUnixMillis: 1700000000123, ShardCount: 4,
			OpenConns: 12, LastRevisionPerShard: []uint64{5, 6, 7, 8}, Listeners: []string{"http", "resp"}},
		&DrainFailed{Reason: "drain: context deadline exceeded"},
	}
}

// idFor returns the id a sample is framed with: none for Hello.
func idFor(m Message) ID {
	if m.Type() == TypeHello {
		return ID{}
	}
	return sampleID
}

// normalize makes nil and empty slices equal, in place, so that values that
// differ only there compare equal with reflect.DeepEqual.
func normalize(m Message) Message {
	v := reflect.ValueOf(m).Elem()
	for i := range v.NumField() {
		if f := v.Field(i); f.Kind() == reflect.Slice && f.Len() == 0 {
			f.SetZero()
		}
	}
	return m
}

// TestSamples_coverEveryTypeWithNonZeroFields guards the other tests: a new
// message type or field without a sample value would go untested.
func TestSamples_coverEveryTypeWithNonZeroFields(t *testing.T) {
	seen := map[Type]bool{}
	for _, m := range samples() {
		seen[m.Type()] = true
		v := reflect.ValueOf(m).Elem()
		for i := range v.NumField() {
			if v.Field(i).IsZero() {
				t.Errorf("%s.%s is zero in the sample", m.Type(), v.Type().Field(i).Name)
			}
		}
	}
	for typ := range typeNames {
		if !seen[typ] {
			t.Errorf("no sample for %s", typ)
		}
		if m := messageOf(typ); m == nil || m.Type() != typ {
			t.Errorf("decoder makes %v for %s", m, typ)
		}
	}
}
