package listenenv

import "errors"

var (
	// ErrBadEnvironment means the inherited LISTEN_* or HANDOFF_* variables
	// are malformed or inconsistent with the descriptors actually inherited.
	// The daemon cannot know which descriptors are its listeners and should
	// exit; the message names the variable and what the spawner must fix.
	ErrBadEnvironment = errors.New("handoff: bad inherited environment")

	// ErrBadName means a listener name cannot travel in LISTEN_FDNAMES
	// (empty, too long, a separator or a non-printable character) or is not
	// unique. Duplicates are refused rather than resolved, so that no
	// listener is shadowed and leaked.
	ErrBadName = errors.New("handoff: bad listener name")
)
