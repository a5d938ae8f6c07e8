package listenenv

import (
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
)

// TestBuild_roundTrip checks that what Build produces is what Parse reads,
// with the files in the order the contract fixes.
func TestBuild_roundTrip(t *testing.T) {
	a, b, sock := devNull(t), devNull(t), devNull(t)
	tests := []struct {
		name      string
		listeners []Named
		sock      *os.File
		wantFiles []*os.File
		want      Inherited
	}{
		{
			name:      "cold start",
			listeners: []Named{{Name: "http", File: a}, {Name: "resp", File: b}},
			wantFiles: []*os.File{a, b},
			want:      Inherited{FDs: []int{3, 4}, Names: []string{"http", "resp"}, SockFD: -1},
		},
		{
			name:      "successor",
			listeners: []Named{{Name: "resp", File: b}, {Name: "http", File: a}},
			sock:      sock,
			wantFiles: []*os.File{b, a, sock},
			want:      Inherited{FDs: []int{3, 4}, Names: []string{"resp", "http"}, Role: RoleSuccessor, SockFD: 5},
		},
		{
			name:      "successor without listeners",
			sock:      sock,
			wantFiles: []*os.File{sock},
			want:      Inherited{FDs: []int{}, Names: []string{}, Role: RoleSuccessor, SockFD: 3},
		},
		{
			name:      "cold start without listeners",
			wantFiles: []*os.File{},
			want:      Inherited{FDs: []int{}, Names: []string{}, SockFD: -1},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			files, env, err := Build(tc.listeners, tc.sock)
			if err != nil {
				t.Fatalf("Build: %v", err)
			}
			if !slices.Equal(files, tc.wantFiles) {
				t.Errorf("files = %v, want %v", files, tc.wantFiles)
			}
			got, err := Parse(envLookup(env))
			if err != nil {
				t.Fatalf("Parse(Build) = %v (env %q)", err, env)
			}
			if !equalInherited(got, tc.want) {
				t.Errorf("Parse(Build) = %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestBuild_rejects checks that bad or duplicate names are errors rather
// than a shadowed, leaked listener.
func TestBuild_rejects(t *testing.T) {
	f := devNull(t)
	tests := []struct {
		name      string
		listeners []Named
		want      error
	}{
		{name: "duplicate", listeners: []Named{{Name: "http", File: f}, {Name: "http", File: f}}, want: ErrBadName},
		{name: "empty", listeners: []Named{{Name: "", File: f}}, want: ErrBadName},
		{name: "colon", listeners: []Named{{Name: "a:b", File: f}}, want: ErrBadName},
		{name: "equals", listeners: []Named{{Name: "a=b", File: f}}, want: ErrBadName},
		{name: "space", listeners: []Named{{Name: "a b", File: f}}, want: ErrBadName},
		{name: "newline", listeners: []Named{{Name: "a\n", File: f}}, want: ErrBadName},
		{name: "non-ASCII", listeners: []Named{{Name: "hé", File: f}}, want: ErrBadName},
		{name: "too long", listeners: []Named{{Name: strings.Repeat("x", MaxNameLen+1), File: f}}, want: ErrBadName},
		{name: "nil file", listeners: []Named{{Name: "http"}}, want: os.ErrInvalid},
		{name: "too many", listeners: make([]Named, MaxFDs+1), want: ErrBadName},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			files, env, err := Build(tc.listeners, nil)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Build error = %v, want %v", err, tc.want)
			}
			if files != nil || env != nil {
				t.Errorf("Build returned files %v, env %q with an error", files, env)
			}
		})
	}
}

// TestCheckName_acceptsSystemdStyleNames checks names operators use.
func TestCheckName_acceptsSystemdStyleNames(t *testing.T) {
	for _, name := range []string{"http", "kvd.socket", "LISTEN_FD_3", "a-b_c@1", strings.Repeat("x", MaxNameLen)} {
		if err := CheckName(name); err != nil {
			t.Errorf("CheckName(%q) = %v", name, err)
		}
	}
}

// TestStrip_removesOnlyTheContract checks that a spawner passes on none of
// the variables it inherited itself, and everything else.
func TestStrip_removesOnlyTheContract(t *testing.T) {
	in := []string{
		"PATH=/bin", "LISTEN_FDS=2", "LISTEN_FDNAMES=a:b", "LISTEN_PID=1", "LISTEN_PIDFDID=7",
		"HANDOFF_ROLE=successor", "HANDOFF_SOCK_FD=5", "HANDOFF_CRASH_AT=x", "LISTEN_FDS_EXTRA=1",
		"LISTEN_FDS", "HOME=/root",
	}
	want := []string{"PATH=/bin", "HANDOFF_CRASH_AT=x", "LISTEN_FDS_EXTRA=1", "HOME=/root"}
	if got := Strip(in); !slices.Equal(got, want) {
		t.Errorf("Strip = %q, want %q", got, want)
	}
}

func envLookup(env []string) func(string) string {
	return func(k string) string {
		for _, kv := range env {
			if key, v, _ := strings.Cut(kv, "="); key == k {
				return v
			}
		}
		return ""
	}
}

func devNull(t *testing.T) *os.File {
	t.Helper()
	f, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}
