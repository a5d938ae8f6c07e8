package listenenv

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Named is one listener a spawner hands to a daemon.
type Named struct {
	// Name is how the daemon asks for the listener; see [CheckName].
	Name string
	// File is the spawner's descriptor for the socket. exec.Cmd calls Fd on
	// it, which switches a file made by net's File methods to blocking mode
	// for every process sharing the socket: pass a copy made with
	// F_DUPFD_CLOEXEC through SyscallConn (internal/sysx.DupFile).
	File *os.File
}

// Build prepares the spawn of a daemon with the given listeners, in the
// given order. With sock nil it is a cold start; otherwise the daemon is a
// successor and sock is its end of the socketpair to the supervisor.
//
// It returns the files for exec.Cmd.ExtraFiles, in the order the contract
// fixes (listener i at fd 3+i, then sock at fd 3+n), and the variables to
// append to the child's environment after [Strip]:
//
//	cmd.ExtraFiles = extraFiles
//	cmd.Env = append(listenenv.Strip(base), env...)
//
// The caller keeps ownership of every file (the child receives its own
// copies at exec) and closes them after cmd.Start. LISTEN_PID is left unset;
// see the package documentation. Names are checked with [CheckNames]: a
// duplicate is an error, never a silently shadowed listener.
func Build(listeners []Named, sock *os.File) (extraFiles []*os.File, env []string, err error) {
	if len(listeners) > MaxFDs {
		return nil, nil, fmt.Errorf("%w: %d listeners; the limit is %d", ErrBadName, len(listeners), MaxFDs)
	}
	names, files, err := split(listeners)
	if err != nil {
		return nil, nil, err
	}
	env = []string{
		VarFDs + "=" + strconv.Itoa(len(names)),
		VarFDNames + "=" + strings.Join(names, ":"),
	}
	if sock != nil {
		files = append(files, sock)
		env = append(env, VarRole+"="+RoleSuccessor, VarSockFD+"="+strconv.Itoa(FirstFD+len(names)))
	}
	return files, env, nil
}

// split checks the listeners and returns their names and files.
func split(listeners []Named) ([]string, []*os.File, error) {
	names := make([]string, len(listeners))
	files := make([]*os.File, len(listeners))
	for i, l := range listeners {
		if l.File == nil {
			return nil, nil, fmt.Errorf("handoff: listener %q: nil File: %w", l.Name, os.ErrInvalid)
		}
		names[i], files[i] = l.Name, l.File
	}
	if err := CheckNames(names); err != nil {
		return nil, nil, err
	}
	return names, files, nil
}
