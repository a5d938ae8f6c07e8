package listenenv

import (
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func mapEnv(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// TestParse_accepts covers every well-formed environment of DESIGN section 4.
func TestParse_accepts(t *testing.T) {
	self := strconv.Itoa(osGetpid())
	tests := []struct {
		name string
		env  map[string]string
		want Inherited
	}{
		{
			name: "nothing set is a cold start without listeners",
			env:  map[string]string{},
			want: Inherited{FDs: []int{}, Names: []string{}, SockFD: -1},
		},
		{
			name: "zero listeners",
			env:  map[string]string{VarFDs: "0", VarFDNames: ""},
			want: Inherited{FDs: []int{}, Names: []string{}, SockFD: -1},
		},
		{
			name: "named listeners in fd order",
			env:  map[string]string{VarFDs: "2", VarFDNames: "http:resp"},
			want: Inherited{FDs: []int{3, 4}, Names: []string{"http", "resp"}, SockFD: -1},
		},
		{
			name: "missing names fall back to LISTEN_FD_<fd>",
			env:  map[string]string{VarFDs: "2"},
			want: Inherited{FDs: []int{3, 4}, Names: []string{"LISTEN_FD_3", "LISTEN_FD_4"}, SockFD: -1},
		},
		{
			name: "LISTEN_PID of this process",
			env:  map[string]string{VarFDs: "1", VarFDNames: "http", VarPID: self},
			want: Inherited{FDs: []int{3}, Names: []string{"http"}, SockFD: -1},
		},
		{
			name: "successor with listeners",
			env:  map[string]string{VarFDs: "2", VarFDNames: "http:resp", VarRole: RoleSuccessor, VarSockFD: "5"},
			want: Inherited{FDs: []int{3, 4}, Names: []string{"http", "resp"}, Role: RoleSuccessor, SockFD: 5},
		},
		{
			name: "successor without listeners",
			env:  map[string]string{VarRole: RoleSuccessor, VarSockFD: "3"},
			want: Inherited{FDs: []int{}, Names: []string{}, Role: RoleSuccessor, SockFD: 3},
		},
		{
			name: "maximum count",
			env:  map[string]string{VarFDs: strconv.Itoa(MaxFDs)},
			want: Inherited{FDs: fdRange(MaxFDs), Names: fallbackNames(MaxFDs), SockFD: -1},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse(mapEnv(tc.env))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if !equalInherited(got, tc.want) {
				t.Errorf("Parse = %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestParse_ignoresAnotherProcessesVariables checks the systemd rule: a
// LISTEN_PID naming another process means the variables are not ours.
func TestParse_ignoresAnotherProcessesVariables(t *testing.T) {
	other := strconv.Itoa(osGetpid() + 1)
	env := map[string]string{VarFDs: "2", VarFDNames: "a:b", VarPID: other, VarRole: RoleSuccessor, VarSockFD: "5"}
	got, err := Parse(mapEnv(env))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if len(got.FDs) != 0 || len(got.Names) != 0 || got.Role != "" || got.SockFD != -1 {
		t.Errorf("Parse = %+v, want no listeners, no role, SockFD -1", got)
	}
	if !strings.Contains(got.Note, other) {
		t.Errorf("Note = %q, want it to name LISTEN_PID=%s", got.Note, other)
	}
}

// TestParse_rejects covers every malformed environment: each error wraps
// ErrBadEnvironment and names the variable at fault.
func TestParse_rejects(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		mention string
	}{
		{name: "count not a number", env: map[string]string{VarFDs: "two"}, mention: VarFDs},
		{name: "negative count", env: map[string]string{VarFDs: "-1"}, mention: VarFDs},
		{name: "signed count", env: map[string]string{VarFDs: "+1"}, mention: VarFDs},
		{name: "count with space", env: map[string]string{VarFDs: " 1"}, mention: VarFDs},
		{name: "absurd count", env: map[string]string{VarFDs: strconv.Itoa(MaxFDs + 1)}, mention: VarFDs},
		{name: "huge count", env: map[string]string{VarFDs: "99999999999999999999"}, mention: VarFDs},
		{name: "garbage LISTEN_PID", env: map[string]string{VarFDs: "1", VarPID: "self"}, mention: VarPID},
		{name: "zero LISTEN_PID", env: map[string]string{VarFDs: "1", VarPID: "0"}, mention: VarPID},
		{name: "negative LISTEN_PID", env: map[string]string{VarFDs: "1", VarPID: "-5"}, mention: VarPID},
		{name: "fewer names than fds", env: map[string]string{VarFDs: "2", VarFDNames: "http"}, mention: VarFDNames},
		{name: "more names than fds", env: map[string]string{VarFDs: "1", VarFDNames: "http:resp"}, mention: VarFDNames},
		{name: "names without fds", env: map[string]string{VarFDNames: "http"}, mention: VarFDNames},
		{name: "duplicate names", env: map[string]string{VarFDs: "3", VarFDNames: "http:resp:http"}, mention: "fd 3 and fd 5"},
		{name: "empty name", env: map[string]string{VarFDs: "2", VarFDNames: "http:"}, mention: VarFDNames},
		{name: "name with space", env: map[string]string{VarFDs: "1", VarFDNames: "my http"}, mention: VarFDNames},
		{name: "name with control char", env: map[string]string{VarFDs: "1", VarFDNames: "a\tb"}, mention: VarFDNames},
		{name: "name with equals", env: map[string]string{VarFDs: "1", VarFDNames: "a=b"}, mention: VarFDNames},
		{name: "name too long", env: map[string]string{VarFDs: "1", VarFDNames: strings.Repeat("n", MaxNameLen+1)}, mention: VarFDNames},
		{name: "unknown role", env: map[string]string{VarRole: "incumbent"}, mention: VarRole},
		{name: "successor without sock fd", env: map[string]string{VarFDs: "1", VarRole: RoleSuccessor}, mention: VarSockFD},
		{name: "successor sock fd inside the listeners", env: map[string]string{VarFDs: "2", VarRole: RoleSuccessor, VarSockFD: "4"}, mention: VarSockFD},
		{name: "successor sock fd after a gap", env: map[string]string{VarFDs: "2", VarRole: RoleSuccessor, VarSockFD: "6"}, mention: VarSockFD},
		{name: "successor sock fd not a number", env: map[string]string{VarRole: RoleSuccessor, VarSockFD: "three"}, mention: VarSockFD},
		{name: "sock fd without role", env: map[string]string{VarFDs: "1", VarSockFD: "4"}, mention: VarSockFD},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse(mapEnv(tc.env))
			if !errors.Is(err, ErrBadEnvironment) {
				t.Fatalf("Parse error = %v, want ErrBadEnvironment", err)
			}
			if !strings.Contains(err.Error(), tc.mention) {
				t.Errorf("error %q does not mention %q", err, tc.mention)
			}
			if !strings.HasPrefix(err.Error(), "handoff: ") {
				t.Errorf("error %q lacks the handoff: prefix", err)
			}
			if len(got.FDs) != 0 || got.SockFD != -1 {
				t.Errorf("Parse returned descriptors with an error: %+v", got)
			}
		})
	}
}

func equalInherited(a, b Inherited) bool {
	return slices.Equal(a.FDs, b.FDs) && slices.Equal(a.Names, b.Names) &&
		a.Role == b.Role && a.SockFD == b.SockFD && a.Note == b.Note
}
