package handoff

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/handoff-go/handoff/internal/fdpass"
	"github.com/handoff-go/handoff/internal/listenenv"
	"github.com/handoff-go/handoff/internal/sysx"
)

// roleDetectEcho is the "detect-echo" role: a daemon that serves an echo,
// prefixed with the listener's name, on everything it inherited.
func roleDetectEcho() int {
	role, err := DetectRole()
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	cs, ok := role.(*ColdStart)
	if !ok {
		fmt.Printf("error: role %T, want *ColdStart\n", role)
		return 1
	}
	for _, name := range cs.Listeners.Names() {
		if err := serveEcho(cs.Listeners, name); err != nil {
			fmt.Println("error:", err)
			return 1
		}
	}
	fmt.Println("ready")
	_, _ = io.Copy(io.Discard, os.Stdin)
	return 0
}

// serveEcho takes name as a stream listener or, when the entry says it is
// of another kind, as a datagram socket.
func serveEcho(ls *Listeners, name string) error {
	ln, err := ls.Listener(name)
	var kindErr *KindError
	if errors.As(err, &kindErr) {
		pc, err := ls.PacketConn(name)
		if err != nil {
			return err
		}
		go echoPackets(pc, name)
		return nil
	}
	if err != nil {
		return err
	}
	go echoStreams(ln, name)
	return nil
}

func echoStreams(ln net.Listener, name string) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			sc := bufio.NewScanner(c)
			for sc.Scan() {
				fmt.Fprintf(c, "%s:%s\n", name, sc.Text())
			}
		}()
	}
}

func echoPackets(pc net.PacketConn, name string) {
	buf := make([]byte, 2048)
	for {
		n, addr, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		_, _ = pc.WriteTo([]byte(name+":"+string(buf[:n])), addr)
	}
}

// detectReport is what the "detect-report" role saw.
type detectReport struct {
	Role        string   `json:"role"` // "cold", "successor" or "" on error
	Err         string   `json:"err"`
	BadEnv      bool     `json:"bad_env"` // errors.Is(err, ErrBadEnvironment)
	Names       []string `json:"names"`
	Note        string   `json:"note"`
	EnvLeft     []string `json:"env_left"`    // contract variables still set
	Inheritable []int    `json:"inheritable"` // open fds above 2 without FD_CLOEXEC
	Links       []string `json:"links"`       // "fd->target" of open fds above 2
	Again       string   `json:"again"`       // a second DetectRole: role and listener count
}

func roleDetectReport() int {
	var r detectReport
	role, err := DetectRole()
	r.Role, r.Names, r.Note = describeRole(role)
	if err != nil {
		r.Err, r.BadEnv = err.Error(), errors.Is(err, ErrBadEnvironment)
	}
	for _, v := range listenenv.ContractVars() {
		if _, ok := os.LookupEnv(v); ok {
			r.EnvLeft = append(r.EnvLeft, v)
		}
	}
	r.Inheritable, r.Links = fdState()
	again, err := DetectRole()
	kind, names, _ := describeRole(again)
	r.Again = fmt.Sprintf("%s %d %v", kind, len(names), err)
	if err := json.NewEncoder(os.Stdout).Encode(r); err != nil {
		return 1
	}
	return 0
}

func describeRole(role Role) (kind string, names []string, note string) {
	switch r := role.(type) {
	case *ColdStart:
		return "cold", r.Listeners.Names(), r.Note
	case *Successor:
		return "successor", r.Listeners().Names(), ""
	}
	return "", nil, ""
}

// fdState lists the open descriptors above stderr, and those a child would
// inherit.
func fdState() (inheritable []int, links []string) {
	ents, _ := os.ReadDir("/proc/self/fd")
	for _, e := range ents {
		fd, _ := strconv.Atoi(e.Name())
		target, err := os.Readlink("/proc/self/fd/" + e.Name())
		if fd <= 2 || err != nil {
			continue
		}
		links = append(links, e.Name()+"->"+target)
		if flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err == nil && flags&unix.FD_CLOEXEC == 0 {
			inheritable = append(inheritable, fd)
		}
	}
	return inheritable, links
}

// runReport runs the "detect-report" role and returns what it saw.
func runReport(t *testing.T, env []string, extra []*os.File) detectReport {
	t.Helper()
	c := startRole(t, "detect-report", env, extra)
	line := c.Line(t)
	if code := c.Wait(t).ExitStatus(); code != 0 {
		t.Fatalf("detect-report exited %d (output %q)", code, line)
	}
	var r detectReport
	if err := json.Unmarshal([]byte(line), &r); err != nil {
		t.Fatalf("bad report %q: %v", line, err)
	}
	return r
}

// TestDetectRole_servesEveryKind checks DESIGN section 4's listener kinds:
// TCP, Unix stream, UDP and Unix datagram sockets inherited at fd 3, 4, …
// all serve in the child, and closing them there unlinks no path.
func TestDetectRole_servesEveryKind(t *testing.T) {
	checkFDs(t)
	dir := t.TempDir()
	tcp := listenTCP(t)
	ux := listenUnix(t, filepath.Join(dir, "s"))
	udp := listenUDP(t)
	gram := listenUnixgram(t, filepath.Join(dir, "g"))
	extra, env := buildSpawn(t, nil, "tcp", tcp, "unix", ux, "udp", udp, "gram", gram)
	c := startRole(t, "detect-echo", env, extra)
	if got := c.Line(t); got != "ready" {
		t.Fatalf("child said %q, want ready", got)
	}
	wants := []struct{ got, want string }{
		{askStream(t, "tcp", tcp.Addr().String(), "one"), "tcp:one"},
		{askStream(t, "unix", ux.Addr().String(), "two"), "unix:two"},
		{askPacket(t, "udp", udp.LocalAddr(), "three"), "udp:three"},
		{askPacket(t, "unixgram", gram.LocalAddr(), "four"), "gram:four"},
	}
	for _, w := range wants {
		if w.got != w.want {
			t.Errorf("echo = %q, want %q", w.got, w.want)
		}
	}
	if code := c.Wait(t).ExitStatus(); code != 0 {
		t.Errorf("child exited %d", code)
	}
	for _, p := range []string{ux.Addr().String(), gram.LocalAddr().String()} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("socket path gone after the child exited: %v", err)
		}
	}
}

// TestDetectRole_servesConnectionQueuedBeforeStart checks DESIGN section 1:
// a connection that arrives while nobody accepts waits in the backlog and is
// served by the process that inherits the socket.
func TestDetectRole_servesConnectionQueuedBeforeStart(t *testing.T) {
	checkFDs(t)
	tcp := listenTCP(t) // never accepts
	conn := dialDeadline(t, "tcp", tcp.Addr().String())
	if _, err := io.WriteString(conn, "early\n"); err != nil {
		t.Fatal(err)
	}
	extra, env := buildSpawn(t, nil, "http", tcp)
	c := startRole(t, "detect-echo", env, extra)
	if got := readLine(t, conn); got != "http:early" {
		t.Errorf("queued connection got %q, want http:early", got)
	}
	if code := c.Wait(t).ExitStatus(); code != 0 {
		t.Errorf("child exited %d", code)
	}
}

// TestDetectRole_environments checks DESIGN section 4 end to end: what
// DetectRole makes of good and bad environments in a real child.
func TestDetectRole_environments(t *testing.T) {
	checkFDs(t)
	tcp, udp := dupFile(t, listenTCP(t)), dupFile(t, listenUDP(t))
	_, childEnd := socketPair(t)
	tests := []struct {
		name      string
		env       []string
		extra     []*os.File
		wantRole  string
		wantNames []string
		wantErr   string // substring; the error must wrap ErrBadEnvironment
		wantNote  string
	}{
		{name: "cold start", env: []string{"LISTEN_FDS=2", "LISTEN_FDNAMES=http:dns"}, extra: []*os.File{tcp, udp}, wantRole: "cold", wantNames: []string{"http", "dns"}},
		{name: "nothing inherited", wantRole: "cold"},
		{name: "names missing", env: []string{"LISTEN_FDS=2"}, extra: []*os.File{tcp, udp}, wantRole: "cold", wantNames: []string{"LISTEN_FD_3", "LISTEN_FD_4"}},
		{name: "successor", env: []string{"LISTEN_FDS=1", "LISTEN_FDNAMES=http", "HANDOFF_ROLE=successor", "HANDOFF_SOCK_FD=4"}, extra: []*os.File{tcp, childEnd}, wantRole: "successor", wantNames: []string{"http"}},
		{name: "LISTEN_PID of another process", env: []string{"LISTEN_FDS=1", "LISTEN_FDNAMES=http", "LISTEN_PID=1"}, extra: []*os.File{tcp}, wantRole: "cold", wantNote: "LISTEN_PID=1"},
		{name: "garbage LISTEN_PID", env: []string{"LISTEN_FDS=1", "LISTEN_PID=me"}, extra: []*os.File{tcp}, wantErr: "LISTEN_PID"},
		{name: "count not a number", env: []string{"LISTEN_FDS=x"}, extra: []*os.File{tcp}, wantErr: "LISTEN_FDS"},
		{name: "fds not open", env: []string{"LISTEN_FDS=40"}, wantErr: "not open"},
		{name: "duplicate names", env: []string{"LISTEN_FDS=2", "LISTEN_FDNAMES=a:a"}, extra: []*os.File{tcp, udp}, wantErr: "unique"},
		{name: "unknown role", env: []string{"HANDOFF_ROLE=incumbent"}, wantErr: "HANDOFF_ROLE"},
		{name: "socketpair end missing", env: []string{"LISTEN_FDS=1", "HANDOFF_ROLE=successor", "HANDOFF_SOCK_FD=4"}, extra: []*os.File{tcp}, wantErr: "HANDOFF_SOCK_FD=4"},
		{name: "socketpair end is a listener", env: []string{"LISTEN_FDS=0", "HANDOFF_ROLE=successor", "HANDOFF_SOCK_FD=3"}, extra: []*os.File{tcp}, wantErr: "not a Unix stream socket"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := runReport(t, tc.env, tc.extra)
			if tc.wantErr != "" {
				if !r.BadEnv || !strings.Contains(r.Err, tc.wantErr) || r.Role != "" {
					t.Errorf("got role %q, err %q (ErrBadEnvironment %v), want an ErrBadEnvironment mentioning %q", r.Role, r.Err, r.BadEnv, tc.wantErr)
				}
				return
			}
			if r.Err != "" || r.Role != tc.wantRole || !slices.Equal(r.Names, tc.wantNames) {
				t.Errorf("got role %q, names %q, err %q; want role %q, names %q", r.Role, r.Names, r.Err, tc.wantRole, tc.wantNames)
			}
			if !strings.Contains(r.Note, tc.wantNote) || (tc.wantNote == "") != (r.Note == "") {
				t.Errorf("note = %q, want it to mention %q", r.Note, tc.wantNote)
			}
		})
	}
}

// TestDetectRole_claimsOnce checks DESIGN section 4: DetectRole unsets the
// variables (a second call is a cold start without listeners), makes every
// inherited descriptor close-on-exec, and keeps exactly one descriptor per
// inherited socket (no leaked copy of the socketpair end).
func TestDetectRole_claimsOnce(t *testing.T) {
	checkFDs(t)
	tcp, ux := listenTCP(t), listenUnix(t, filepath.Join(t.TempDir(), "s"))
	_, childEnd := socketPair(t)
	extra, env := buildSpawn(t, childEnd, "http", tcp, "admin", ux)
	r := runReport(t, env, extra)
	if r.Err != "" || r.Role != "successor" || !slices.Equal(r.Names, []string{"http", "admin"}) {
		t.Fatalf("got role %q, names %q, err %q; want successor with http, admin", r.Role, r.Names, r.Err)
	}
	if len(r.EnvLeft) != 0 {
		t.Errorf("variables still set after DetectRole: %q", r.EnvLeft)
	}
	// Descriptors this test process itself lets children inherit (from
	// whoever started it) pass through to the child as well; any other is
	// a leak.
	passThrough, _ := fdState()
	if leaked := slices.DeleteFunc(r.Inheritable, func(fd int) bool { return slices.Contains(passThrough, fd) }); len(leaked) != 0 {
		t.Errorf("descriptors a child would inherit: %v (links %q)", leaked, r.Links)
	}
	if want := "cold 0 <nil>"; r.Again != want {
		t.Errorf("second DetectRole = %q, want %q", r.Again, want)
	}
	for name, c := range map[string]syscall.Conn{"http": tcp, "admin": ux, "socketpair end": childEnd} {
		if n := countLinks(r.Links, inode(t, c)); n != 1 {
			t.Errorf("child holds %d descriptors of %s, want 1 (links %q)", n, name, r.Links)
		}
	}
}

// TestListeners_duplicatesKeepNonblocking checks the O_NONBLOCK pitfall of
// DESIGN section 12: after the library has handed the same socket to
// several children in a row, the incumbent's own copy is still
// non-blocking, so its accept loop can still be interrupted for a drain.
func TestListeners_duplicatesKeepNonblocking(t *testing.T) {
	checkFDs(t)
	t.Run("control: File and Fd switch the shared socket to blocking", func(t *testing.T) {
		ln := listenTCP(t)
		f, err := ln.File()
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		_ = f.Fd()
		if nonblocking(t, ln) {
			t.Fatal("Fd left the socket non-blocking; this test could not see the pitfall")
		}
	})
	ln := listenTCP(t)
	ls, err := NewListeners([]string{"http"}, []syscall.Conn{ln})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ls.Close() })
	for round := range 3 {
		handToChild(t, ls, ln.Addr().String(), fmt.Sprint("round", round))
		if !nonblocking(t, ln) {
			t.Fatalf("round %d: the incumbent's listener is in blocking mode", round)
		}
		_ = ln.SetDeadline(time.Now())
		if _, err := ln.Accept(); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("round %d: Accept with an expired deadline = %v, want a timeout", round, err)
		}
		_ = ln.SetDeadline(time.Time{})
	}
}

// handToChild passes duplicates of ls to a detect-echo child, talks to it
// once and reaps it.
func handToChild(t *testing.T, ls *Listeners, addr, msg string) {
	t.Helper()
	names, files, err := ls.duplicates()
	if err != nil {
		t.Fatal(err)
	}
	defer fdpass.CloseAll(files)
	named := make([]listenenv.Named, len(names))
	for i := range names {
		named[i] = listenenv.Named{Name: names[i], File: files[i]}
	}
	extra, env, err := listenenv.Build(named, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := startRole(t, "detect-echo", env, extra)
	if got := c.Line(t); got != "ready" {
		t.Fatalf("child said %q, want ready", got)
	}
	if got := askStream(t, "tcp", addr, msg); got != "http:"+msg {
		t.Errorf("echo = %q, want %q", got, "http:"+msg)
	}
	if code := c.Wait(t).ExitStatus(); code != 0 {
		t.Errorf("child exited %d", code)
	}
}

func nonblocking(t *testing.T, c syscall.Conn) bool {
	t.Helper()
	nb, err := sysx.IsNonblock(c)
	if err != nil {
		t.Fatal(err)
	}
	return nb
}

// buildSpawn makes the ExtraFiles and environment for name/conn pairs the
// way a supervisor does: duplicates through SyscallConn, then
// listenenv.Build.
func buildSpawn(t *testing.T, sock *os.File, pairs ...any) ([]*os.File, []string) {
	t.Helper()
	var named []listenenv.Named
	for i := 0; i < len(pairs); i += 2 {
		named = append(named, listenenv.Named{Name: pairs[i].(string), File: dupFile(t, pairs[i+1].(syscall.Conn))})
	}
	extra, env, err := listenenv.Build(named, sock)
	if err != nil {
		t.Fatal(err)
	}
	return extra, env
}

func countLinks(links []string, ino uint64) int {
	n := 0
	for _, l := range links {
		if strings.HasSuffix(l, fmt.Sprintf("->socket:[%d]", ino)) {
			n++
		}
	}
	return n
}
