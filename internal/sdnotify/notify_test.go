package sdnotify

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/handoff-go/handoff/internal/sysx"
)

// fakeSystemd is a unixgram socket standing in for systemd's notify socket.
type fakeSystemd struct {
	conn *net.UnixConn
	addr string
}

func listenFake(t *testing.T, addr string) *fakeSystemd {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &fakeSystemd{conn: c, addr: addr}
}

// recv returns the next datagram and the descriptors that came with it.
func (f *fakeSystemd) recv(t *testing.T) (string, []*os.File) {
	t.Helper()
	if err := f.conn.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	buf, oob := make([]byte, 4096), make([]byte, 4096)
	n, oobn, _, _, err := f.conn.ReadMsgUnix(buf, oob)
	if err != nil {
		t.Fatal(err)
	}
	return string(buf[:n]), parseRights(t, oob[:oobn])
}

func parseRights(t *testing.T, oob []byte) []*os.File {
	t.Helper()
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		t.Fatal(err)
	}
	var files []*os.File
	for _, m := range msgs {
		fds, err := unix.ParseUnixRights(&m)
		if err != nil {
			t.Fatal(err)
		}
		for _, fd := range fds {
			f := os.NewFile(uintptr(fd), "received")
			t.Cleanup(func() { f.Close() })
			files = append(files, f)
		}
	}
	return files
}

func abstractName(t *testing.T) string {
	t.Helper()
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "@handoff-sdnotify-test-" + hex.EncodeToString(b)
}

func TestNotifier_sendsStateMessages(t *testing.T) {
	for _, addr := range []string{"path", "abstract"} {
		t.Run(addr, func(t *testing.T) {
			name := filepath.Join(t.TempDir(), "notify.sock")
			if addr == "abstract" {
				name = abstractName(t)
			}
			fake := listenFake(t, name)
			n, err := New(name)
			if err != nil {
				t.Fatal(err)
			}
			steps := []struct {
				send func() error
				want string
			}{
				{n.Ready, "READY=1"},
				{n.Stopping, "STOPPING=1"},
				{func() error { return n.Status("pid 12\nbuild x") }, "STATUS=pid 12 build x"},
				{func() error { return n.Notify("A=1", "B=2") }, "A=1\nB=2"},
			}
			for _, s := range steps {
				if err := s.send(); err != nil {
					t.Fatal(err)
				}
				if got, _ := fake.recv(t); got != s.want {
					t.Fatalf("got %q, want %q", got, s.want)
				}
			}
		})
	}
}

func TestNotifier_reloadingCarriesTheMonotonicClock(t *testing.T) {
	name := filepath.Join(t.TempDir(), "notify.sock")
	fake := listenFake(t, name)
	n, err := New(name)
	if err != nil {
		t.Fatal(err)
	}
	before := MonotonicUsec()
	if err := n.Reloading(); err != nil {
		t.Fatal(err)
	}
	after := MonotonicUsec()
	got, _ := fake.recv(t)
	first, usec, ok := strings.Cut(got, "\nMONOTONIC_USEC=")
	if !ok || first != "RELOADING=1" {
		t.Fatalf("got %q", got)
	}
	v, err := strconv.ParseUint(usec, 10, 64)
	if err != nil || v < before || v > after {
		t.Fatalf("MONOTONIC_USEC=%s not within [%d, %d] (%v)", usec, before, after, err)
	}
}

func TestNotifier_storeFDsPassesTheDescriptors(t *testing.T) {
	dir := t.TempDir()
	fake := listenFake(t, filepath.Join(dir, "notify.sock"))
	n, err := New(fake.addr)
	if err != nil {
		t.Fatal(err)
	}
	a, b := tempFile(t, dir, "a"), tempFile(t, dir, "b")
	if err := n.StoreFDs("http", a, b); err != nil {
		t.Fatal(err)
	}
	msg, files := fake.recv(t)
	if msg != "FDSTORE=1\nFDNAME=http" || len(files) != 2 {
		t.Fatalf("got %q with %d fds", msg, len(files))
	}
	for i, want := range []*os.File{a, b} {
		if !sameInode(t, want, files[i]) {
			t.Fatalf("fd %d is not %s", i, want.Name())
		}
	}
}

func tempFile(t *testing.T, dir, name string) *os.File {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(dir, name), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func sameInode(t *testing.T, a, b *os.File) bool {
	t.Helper()
	d1, i1, err1 := sysx.FileInode(a)
	d2, i2, err2 := sysx.FileInode(b)
	if err := errors.Join(err1, err2); err != nil {
		t.Fatal(err)
	}
	return d1 == d2 && i1 == i2
}

func TestNotifier_nilSendsNothing(t *testing.T) {
	var n *Notifier
	for _, err := range []error{n.Ready(), n.Reloading(), n.Stopping(), n.Status("x"), n.StoreFDs("x", os.Stdin)} {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n.Socket() != "" {
		t.Fatal("nil notifier has a socket")
	}
}

func TestNew_rejectsRelativeSocket(t *testing.T) {
	if _, err := New("notify.sock"); !errors.Is(err, ErrBadSocket) {
		t.Fatalf("got %v, want ErrBadSocket", err)
	}
}

func TestNotifier_reportsAMissingSocket(t *testing.T) {
	n, err := New(filepath.Join(t.TempDir(), "absent.sock"))
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Ready(); err == nil || !strings.Contains(err.Error(), "absent.sock") {
		t.Fatalf("got %v, want an error naming the socket", err)
	}
}

// TestFromEnv_unsetsTheVariable: children of the supervisor must not
// inherit NOTIFY_SOCKET.
func TestFromEnv_unsetsTheVariable(t *testing.T) {
	name := filepath.Join(t.TempDir(), "notify.sock")
	t.Setenv(EnvSocket, name)
	n, err := FromEnv()
	if err != nil || n.Socket() != name {
		t.Fatalf("got %v, %v", n, err)
	}
	if _, set := os.LookupEnv(EnvSocket); set {
		t.Fatal("NOTIFY_SOCKET still set")
	}
	if n, err := FromEnv(); n != nil || err != nil {
		t.Fatalf("unset: got %v, %v; want nil, nil", n, err)
	}
}

func TestActivationFiles_takesNamedSockets(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	sock, err := sysx.DupFile(ln.(*net.TCPListener), "http")
	if err != nil {
		t.Fatal(err)
	}
	defer sock.Close()
	other := tempFile(t, t.TempDir(), "state")
	cases := []struct {
		name, pid, want string
	}{
		{"no LISTEN_PID", "", "http socket=true\nstate socket=false\nLISTEN_FDS set=false\n"},
		{"LISTEN_PID of another process", "1", "LISTEN_FDS set=false\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), roleEnv+"=activation", "LISTEN_FDS=2", "LISTEN_FDNAMES=http:state")
			if tc.pid != "" {
				cmd.Env = append(cmd.Env, "LISTEN_PID="+tc.pid)
			}
			cmd.ExtraFiles = []*os.File{sock, other}
			out, err := cmd.Output()
			if err != nil || string(out) != tc.want {
				t.Fatalf("got %q (%v), want %q", out, err, tc.want)
			}
		})
	}
}
