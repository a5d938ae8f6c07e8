package wire

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestNegotiate(t *testing.T) {
	tests := []struct {
		name                   string
		lMin, lMax, pMin, pMax uint16
		want                   uint16
		err                    error
		says                   []string // fragments the error must contain
	}{
		{name: "same single version", lMin: 1, lMax: 1, pMin: 1, pMax: 1, want: 1},
		{name: "overlap picks the highest common", lMin: 1, lMax: 3, pMin: 2, pMax: 5, want: 3},
		{name: "symmetric", lMin: 2, lMax: 5, pMin: 1, pMax: 3, want: 3},
		{name: "one range inside the other", lMin: 1, lMax: 9, pMin: 4, pMax: 6, want: 6},
		{name: "touching ranges", lMin: 1, lMax: 2, pMin: 2, pMax: 4, want: 2},
		{name: "peer newer", lMin: 1, lMax: 1, pMin: 2, pMax: 3, err: ErrVersionMismatch,
			says: []string{"1..1", "2..3", "upgrade this side"}},
		{name: "peer older", lMin: 4, lMax: 5, pMin: 1, pMax: 2, err: ErrVersionMismatch,
			says: []string{"4..5", "1..2", "upgrade the peer"}},
		{name: "zero minimum", lMin: 0, lMax: 1, pMin: 1, pMax: 1, err: ErrProtocol},
		{name: "inverted peer range", lMin: 1, lMax: 1, pMin: 3, pMax: 1, err: ErrProtocol},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Negotiate(tc.lMin, tc.lMax, tc.pMin, tc.pMax)
			if tc.err == nil {
				if err != nil || got != tc.want {
					t.Fatalf("got %d, %v; want %d", got, err, tc.want)
				}
				return
			}
			if !errors.Is(err, tc.err) {
				t.Fatalf("got %d, %v; want an error matching %v", got, err, tc.err)
			}
			for _, s := range append(tc.says, "handoff: ") {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not say %q", err, s)
				}
			}
		})
	}
}

func TestIntersectCaps(t *testing.T) {
	tests := []struct {
		name string
		a, b []string
		want []string
	}{
		{"both empty", nil, nil, []string{}},
		{"disjoint", []string{"x"}, []string{"y"}, []string{}},
		{"common, sorted", []string{"snapshot", "fingerprint", "z"}, []string{"fingerprint", "snapshot"},
			[]string{"fingerprint", "snapshot"}},
		{"duplicates once", []string{"a", "a", "b"}, []string{"a", "a"}, []string{"a"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := IntersectCaps(tc.a, tc.b); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("IntersectCaps(%q, %q) = %q, want %q", tc.a, tc.b, got, tc.want)
			}
			if got, rev := IntersectCaps(tc.a, tc.b), IntersectCaps(tc.b, tc.a); !reflect.DeepEqual(got, rev) {
				t.Errorf("not symmetric: %q vs %q", got, rev)
			}
		})
	}
}

func TestNewID(t *testing.T) {
	a, errA := NewID()
	b, errB := NewID()
	if errA != nil || errB != nil || a.IsZero() || a == b {
		t.Fatalf("NewID gave %s (%v) and %s (%v)", a, errA, b, errB)
	}
	if s := sampleID.String(); s != "0123456789abcdeffedcba9876543210" {
		t.Errorf("String() = %q", s)
	}
	if !(ID{}).IsZero() {
		t.Error("the zero ID is not IsZero")
	}
}

func TestStringers(t *testing.T) {
	tests := []struct{ got, want string }{
		{TypeSealComplete.String(), "SealComplete"},
		{Type(99).String(), "Type(99)"},
		{RoleIncumbent.String(), "incumbent"},
		{Role(9).String(), "Role(9)"},
		{ReasonFingerprintMismatch.String(), "fingerprint-mismatch"},
		{AbortReason(99).String(), "reason-99"},
	}
	for _, tc := range tests {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}
