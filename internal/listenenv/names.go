package listenenv

import (
	"fmt"
	"slices"
	"strings"
)

// Variable names of the contract (see the package documentation).
const (
	VarFDs     = "LISTEN_FDS"
	VarFDNames = "LISTEN_FDNAMES"
	VarPID     = "LISTEN_PID"
	VarPIDFDID = "LISTEN_PIDFDID"
	VarRole    = "HANDOFF_ROLE"
	VarSockFD  = "HANDOFF_SOCK_FD"
)

const (
	// RoleSuccessor is the HANDOFF_ROLE of a process spawned to take over
	// from a running incumbent.
	RoleSuccessor = "successor"

	// FirstFD is the first inherited descriptor (SD_LISTEN_FDS_START): 0, 1
	// and 2 are stdin, stdout and stderr.
	FirstFD = 3

	// MaxFDs bounds LISTEN_FDS. A larger value is a corrupt environment, not
	// a real service, and would make a daemon probe and claim thousands of
	// descriptors it does not own.
	MaxFDs = 1024

	// MaxNameLen is the longest listener name, as in systemd (FDNAME_MAX).
	MaxNameLen = 255
)

// contractVars are every variable [Strip] removes and [Read] unsets. Other
// HANDOFF_* variables (for example test crash points) are not part of the
// contract and pass through.
var contractVars = []string{VarFDs, VarFDNames, VarPID, VarPIDFDID, VarRole, VarSockFD}

// ContractVars returns the variables of the contract: the ones the
// supervisor sets for each daemon generation and the daemon unsets.
func ContractVars() []string { return slices.Clone(contractVars) }

// CheckName reports whether name can be a listener name: 1 to 255 printable
// ASCII characters other than ':' (the LISTEN_FDNAMES separator) and '='
// (the environment separator), so no whitespace or control characters. It
// lets a config parser reject a bad name before any spawn. The error wraps
// [ErrBadName].
func CheckName(name string) error {
	if msg := nameProblem(name); msg != "" {
		return fmt.Errorf("%w: %q %s", ErrBadName, name, msg)
	}
	return nil
}

// CheckNames checks every name with [CheckName] and that no two are equal.
// The error wraps [ErrBadName].
func CheckNames(names []string) error {
	for i, name := range names {
		if err := CheckName(name); err != nil {
			return err
		}
		if j := indexOf(names[:i], name); j >= 0 {
			return fmt.Errorf("%w: %q is used twice (positions %d and %d); names must be unique", ErrBadName, name, j, i)
		}
	}
	return nil
}

// nameProblem describes why name is invalid, or returns "".
func nameProblem(name string) string {
	if name == "" {
		return "is empty; every listener needs a name"
	}
	if len(name) > MaxNameLen {
		return fmt.Sprintf("is %d bytes long; the limit is %d", len(name), MaxNameLen)
	}
	for _, c := range []byte(name) {
		if c <= ' ' || c >= 0x7f || c == ':' || c == '=' {
			return fmt.Sprintf("contains %q; use printable ASCII without ':', '=' or spaces", c)
		}
	}
	return ""
}

func indexOf(names []string, name string) int {
	for i, n := range names {
		if n == name {
			return i
		}
	}
	return -1
}

// Strip returns a copy of environ (as from [os.Environ]) without the
// contract's variables, so that a spawner passes on none that it inherited
// itself (from systemd, or from its own spawner) before adding its own.
func Strip(environ []string) []string {
	out := make([]string, 0, len(environ))
	for _, kv := range environ {
		key, _, _ := strings.Cut(kv, "=")
		if indexOf(contractVars, key) < 0 {
			out = append(out, kv)
		}
	}
	return out
}
