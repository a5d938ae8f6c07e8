package wire

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
)

// ID is the 128-bit random handoff id. The side that answers Hello picks it,
// and every later frame of the session repeats it, so a frame from another
// handoff (a stale peer, a confused client) is recognised and rejected.
type ID [16]byte

// NewID returns a fresh random id from the operating system's CSPRNG. It is
// never zero, because the zero id means "no id yet" on the wire.
func NewID() (ID, error) {
	var id ID
	for id.IsZero() {
		if _, err := rand.Read(id[:]); err != nil {
			return ID{}, fmt.Errorf("handoff: new handoff id: %w", err)
		}
	}
	return id, nil
}

// String returns the id as 32 lowercase hex digits, as logs and the journal
// show it.
func (id ID) String() string { return hex.EncodeToString(id[:]) }

// IsZero reports whether id is the zero id, which only a Hello may carry.
func (id ID) IsZero() bool { return id == ID{} }
