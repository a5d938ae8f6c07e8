package listenenv

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Inherited is what a process inherited under the contract.
type Inherited struct {
	// FDs are the listener descriptors, 3 … 3+n-1.
	FDs []int
	// Names are the listener names, one per entry of FDs and in the same
	// order: from LISTEN_FDNAMES, or LISTEN_FD_<fd> when it is unset.
	Names []string
	// Role is "" for a cold start or [RoleSuccessor].
	Role string
	// SockFD is the socketpair end to the supervisor (3+n) for a
	// successor, -1 otherwise.
	SockFD int
	// Note says why variables that were present were ignored (LISTEN_PID
	// names another process); empty otherwise. A daemon may log it.
	Note string
}

// Parse reads the contract through getenv (os.Getenv, or a map in tests)
// and checks it. It touches neither descriptors nor the environment; [Read]
// does. Every error wraps [ErrBadEnvironment] and names the variable.
func Parse(getenv func(string) string) (Inherited, error) {
	none := Inherited{SockFD: -1}
	note, err := checkPID(getenv(VarPID))
	if err != nil || note != "" {
		none.Note = note
		return none, err
	}
	n, err := parseCount(getenv(VarFDs))
	if err != nil {
		return none, err
	}
	names, err := parseNames(getenv(VarFDNames), n)
	if err != nil {
		return none, err
	}
	role, sock, err := parseRole(getenv(VarRole), getenv(VarSockFD), n)
	if err != nil {
		return none, err
	}
	return Inherited{FDs: fdRange(n), Names: names, Role: role, SockFD: sock}, nil
}

// checkPID returns a note when LISTEN_PID names another process, and an
// error when it names no process at all.
func checkPID(v string) (note string, err error) {
	if v == "" {
		return "", nil
	}
	pid, ok := parseUint(v, 10)
	if !ok || pid == 0 {
		return "", fmt.Errorf("%w: %s=%q is not a pid: unset it, or set it to the pid of the process the listeners are for", ErrBadEnvironment, VarPID, v)
	}
	if self := os.Getpid(); pid != self {
		return fmt.Sprintf("%s=%d names another process (this is %d): the inherited LISTEN_* and HANDOFF_* variables were meant for it and are ignored", VarPID, pid, self), nil
	}
	return "", nil
}

func parseCount(v string) (int, error) {
	if v == "" {
		return 0, nil
	}
	n, ok := parseUint(v, 4)
	if !ok || n > MaxFDs {
		return 0, fmt.Errorf("%w: %s=%q is not a number of descriptors from 0 to %d: the spawner must set it to the number of listeners passed from fd %d on", ErrBadEnvironment, VarFDs, v, MaxFDs, FirstFD)
	}
	return n, nil
}

// parseUint accepts 1 to maxDigits ASCII digits and nothing else (no sign,
// no spaces), so that a corrupt value is never half-read.
func parseUint(v string, maxDigits int) (int, bool) {
	if v == "" || len(v) > maxDigits || strings.Trim(v, "0123456789") != "" {
		return 0, false
	}
	n, err := strconv.Atoi(v)
	return n, err == nil
}

func parseNames(v string, n int) ([]string, error) {
	if v == "" {
		return fallbackNames(n), nil
	}
	names := strings.Split(v, ":")
	if len(names) != n {
		return nil, fmt.Errorf("%w: %s has %d names for %s=%d: the spawner must give exactly one name per listener", ErrBadEnvironment, VarFDNames, len(names), VarFDs, n)
	}
	for i, name := range names {
		if msg := nameProblem(name); msg != "" {
			return nil, fmt.Errorf("%w: %s: the name of fd %d %q %s", ErrBadEnvironment, VarFDNames, FirstFD+i, name, msg)
		}
		if j := indexOf(names[:i], name); j >= 0 {
			return nil, fmt.Errorf("%w: %s names both fd %d and fd %d %q: names must be unique (under systemd, set FileDescriptorName= on each socket)", ErrBadEnvironment, VarFDNames, FirstFD+j, FirstFD+i, name)
		}
	}
	return names, nil
}

// fallbackNames names each listener after its descriptor, as systemd's
// consumers do when LISTEN_FDNAMES is missing.
func fallbackNames(n int) []string {
	names := make([]string, n)
	for i := range names {
		names[i] = "LISTEN_FD_" + strconv.Itoa(FirstFD+i)
	}
	return names
}

func parseRole(role, sock string, n int) (string, int, error) {
	switch role {
	case "":
		if sock != "" {
			return "", -1, fmt.Errorf("%w: %s=%q is set without %s=%s: unset it for a cold start", ErrBadEnvironment, VarSockFD, sock, VarRole, RoleSuccessor)
		}
		return "", -1, nil
	case RoleSuccessor:
		want := FirstFD + n
		if fd, ok := parseUint(sock, 4); !ok || fd != want {
			return "", -1, fmt.Errorf("%w: %s=%q, want %d: the supervisor's socketpair end comes right after the %s=%d listeners", ErrBadEnvironment, VarSockFD, sock, want, VarFDs, n)
		}
		return role, want, nil
	default:
		return "", -1, fmt.Errorf("%w: %s=%q: want %q, or unset for a cold start", ErrBadEnvironment, VarRole, role, RoleSuccessor)
	}
}

func fdRange(n int) []int {
	fds := make([]int, n)
	for i := range fds {
		fds[i] = FirstFD + i
	}
	return fds
}
