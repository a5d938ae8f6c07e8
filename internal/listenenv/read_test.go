package listenenv

import (
	"errors"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

func osGetpid() int { return os.Getpid() }

// TestRead_unsetsTheVariables checks that the variables are gone after Read,
// whether they were good or bad, so a later re-exec starts cold.
func TestRead_unsetsTheVariables(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		wantErr bool
	}{
		{name: "well formed", env: map[string]string{VarFDs: "0", VarFDNames: "", VarPIDFDID: "42"}},
		{name: "malformed", env: map[string]string{VarFDs: "x", VarRole: "nope", VarSockFD: "9"}, wantErr: true},
		{name: "another process", env: map[string]string{VarFDs: "1", VarPID: "1", VarRole: RoleSuccessor}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			_, err := Read()
			if (err != nil) != tc.wantErr {
				t.Fatalf("Read error = %v, want error %v", err, tc.wantErr)
			}
			for _, k := range contractVars {
				if v, ok := os.LookupEnv(k); ok {
					t.Errorf("%s=%q still set after Read", k, v)
				}
			}
		})
	}
}

// TestClaim_marksCloseOnExec checks that claim sets FD_CLOEXEC on every
// inherited descriptor, listeners and socketpair end.
func TestClaim_marksCloseOnExec(t *testing.T) {
	fds := openPipeNoCloexec(t)
	in := Inherited{FDs: fds[:1], Names: []string{"a"}, Role: RoleSuccessor, SockFD: fds[1]}
	if err := claim(in); err != nil {
		t.Fatalf("claim: %v", err)
	}
	for _, fd := range fds {
		flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
		if err != nil {
			t.Fatalf("F_GETFD %d: %v", fd, err)
		}
		if flags&unix.FD_CLOEXEC == 0 {
			t.Errorf("fd %d is not close-on-exec after claim", fd)
		}
	}
}

// TestClaim_rejectsClosedDescriptor checks that a variable promising a
// descriptor that is not open is a bad environment.
func TestClaim_rejectsClosedDescriptor(t *testing.T) {
	const closed = 1 << 20 // above any descriptor limit this test runs with
	fds := openPipeNoCloexec(t)
	tests := []struct {
		name string
		in   Inherited
	}{
		{name: "listener", in: Inherited{FDs: []int{fds[0], closed}, Names: []string{"a", "b"}, SockFD: -1}},
		{name: "socketpair end", in: Inherited{FDs: fds[:1], Names: []string{"a"}, Role: RoleSuccessor, SockFD: closed}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := claim(tc.in)
			if !errors.Is(err, ErrBadEnvironment) || !errors.Is(err, unix.EBADF) {
				t.Errorf("claim error = %v, want ErrBadEnvironment wrapping EBADF", err)
			}
		})
	}
}

func openPipeNoCloexec(t *testing.T) []int {
	t.Helper()
	p := make([]int, 2)
	if err := unix.Pipe2(p, 0); err != nil {
		t.Fatalf("pipe2: %v", err)
	}
	t.Cleanup(func() {
		unix.Close(p[0])
		unix.Close(p[1])
	})
	return p
}
