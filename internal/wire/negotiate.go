package wire

import (
	"fmt"
	"slices"
)

// Negotiate returns the highest protocol version inside both ranges
// [localMin, localMax] and [peerMin, peerMax]. Disjoint ranges fail with an
// error matching [ErrVersionMismatch] that names both ranges and the side to
// upgrade; a malformed range (zero, or min above max) fails with an error
// matching [ErrProtocol].
func Negotiate(localMin, localMax, peerMin, peerMax uint16) (uint16, error) {
	if err := checkRange("local", localMin, localMax); err != nil {
		return 0, err
	}
	if err := checkRange("peer", peerMin, peerMax); err != nil {
		return 0, err
	}
	best := min(localMax, peerMax)
	if best >= max(localMin, peerMin) {
		return best, nil
	}
	return 0, mismatch(localMin, localMax, peerMin, peerMax)
}

// checkRange rejects a version range no implementation can mean.
func checkRange(side string, lo, hi uint16) error {
	if lo == 0 || lo > hi {
		return protoErr("negotiate", ErrMalformed, "%s version range %d..%d is invalid", side, lo, hi)
	}
	return nil
}

// mismatch explains disjoint ranges to the operator.
func mismatch(localMin, localMax, peerMin, peerMax uint16) error {
	older := "this side"
	if peerMax < localMin {
		older = "the peer"
	}
	return fmt.Errorf("%w: this side speaks versions %d..%d, the peer speaks %d..%d; "+
		"upgrade %s (the older one) to a build that speaks a version in the other's range, then retry",
		ErrVersionMismatch, localMin, localMax, peerMin, peerMax, older)
}

// IntersectCaps returns the capabilities listed in both a and b, sorted and
// without duplicates, so both peers compute the same set whatever order they
// listed theirs in. It never returns nil. It runs in linear time, since a
// peer's list can be long.
func IntersectCaps(a, b []string) []string {
	inB := make(map[string]bool, len(b))
	for _, c := range b {
		inB[c] = true
	}
	out := []string{}
	for _, c := range a {
		if inB[c] {
			out = append(out, c)
			inB[c] = false // once
		}
	}
	slices.Sort(out)
	return out
}
