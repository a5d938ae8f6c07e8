package handoff

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/handoff-go/handoff/internal/fdpass"
	"github.com/handoff-go/handoff/internal/listenenv"
	"github.com/handoff-go/handoff/internal/sysx"
)

// testDeadline only turns a hang into a failure.
const testDeadline = 30 * time.Second

// TestListeners_takeOnce checks DESIGN section 7: each entry can be taken
// once, by any method, and an unknown name lists what exists.
func TestListeners_takeOnce(t *testing.T) {
	checkFDs(t)
	ls := newTestListeners(t, "http", listenTCP(t), "dns", listenUDP(t), "state", devNull(t))
	if err := closeErr(ls.Listener("http")); err != nil {
		t.Fatalf("first Listener: %v", err)
	}
	if err := closeErr(ls.PacketConn("dns")); err != nil {
		t.Fatalf("first PacketConn: %v", err)
	}
	if err := closeErr(ls.File("state")); err != nil {
		t.Fatalf("first File: %v", err)
	}
	tests := []struct {
		name string
		take func() error
		want error
	}{
		{name: "Listener twice", take: func() error { _, err := ls.Listener("http"); return err }, want: ErrUsed},
		{name: "File after Listener", take: func() error { _, err := ls.File("http"); return err }, want: ErrUsed},
		{name: "PacketConn twice", take: func() error { _, err := ls.PacketConn("dns"); return err }, want: ErrUsed},
		{name: "File twice", take: func() error { _, err := ls.File("state"); return err }, want: ErrUsed},
		{name: "unknown name", take: func() error { _, err := ls.Listener("resp"); return err }, want: ErrNoListener},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.take(); !errors.Is(err, tc.want) {
				t.Errorf("error = %v, want %v", err, tc.want)
			}
		})
	}
	_, err := ls.Listener("resp")
	if !strings.Contains(fmt.Sprint(err), `"http", "dns", "state"`) {
		t.Errorf("unknown-name error %q does not list the names in fd order", err)
	}
	if got := ls.Names(); !slices.Equal(got, []string{"http", "dns", "state"}) || ls.Len() != 3 {
		t.Errorf("Names = %q, Len = %d after taking everything; want all three", got, ls.Len())
	}
}

// TestListeners_wrongKind checks that asking for the wrong kind is a clear
// *KindError that names the right method and consumes nothing.
func TestListeners_wrongKind(t *testing.T) {
	checkFDs(t)
	conn := dialDeadline(t, "tcp", listenTCP(t).Addr().String())
	ls := newTestListeners(t, "http", listenTCP(t), "dns", listenUDP(t), "file", devNull(t), "conn", conn.(syscall.Conn))
	tests := []struct {
		name    string
		take    func() error
		got     string
		use     string
		rightly func() error
	}{
		{
			name: "Listener on udp", take: func() error { _, err := ls.Listener("dns"); return err },
			got: "udp socket", use: "PacketConn", rightly: func() error { return closeErr(ls.PacketConn("dns")) },
		},
		{
			name: "PacketConn on tcp listener", take: func() error { _, err := ls.PacketConn("http"); return err },
			got: "tcp listening socket", use: "Listener", rightly: func() error { return closeErr(ls.Listener("http")) },
		},
		{
			name: "Listener on a file", take: func() error { _, err := ls.Listener("file"); return err },
			got: "not a socket", use: "File", rightly: func() error { return closeErr(ls.File("file")) },
		},
		{
			name: "Listener on a connected socket", take: func() error { _, err := ls.Listener("conn"); return err },
			got: "tcp socket that is not listening", use: "File", rightly: func() error { return closeErr(ls.File("conn")) },
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var kindErr *KindError
			if err := tc.take(); !errors.As(err, &kindErr) || !strings.Contains(kindErr.Got, tc.got) ||
				!strings.Contains(err.Error(), "take it with "+tc.use) || !strings.HasPrefix(err.Error(), "handoff: ") {
				t.Fatalf("error = %v, want a *KindError saying %q and naming %s", err, tc.got, tc.use)
			}
			if err := tc.rightly(); err != nil {
				t.Errorf("the right method after a wrong kind: %v", err)
			}
		})
	}
}

// TestListeners_keepTheSocketOpen checks DESIGN section 4: the library
// keeps its own copy, so closing what the daemon took neither closes the
// socket (new connections still queue) nor unlinks a Unix socket path.
func TestListeners_keepTheSocketOpen(t *testing.T) {
	checkFDs(t)
	path := filepath.Join(t.TempDir(), "s")
	ls := newTestListeners(t, "unix", listenUnix(t, path))
	ln, err := ls.Listener("unix")
	if err != nil {
		t.Fatal(err)
	}
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Errorf("closing the taken listener unlinked its path: %v", err)
	}
	// The kernel completes the connection into the backlog of the still
	// open socket; a closed socket would refuse it.
	dialDeadline(t, "unix", path)
}

// TestListeners_duplicates checks what an incumbent hands a restarted
// supervisor: every entry, taken or not, in fd order, each the very same
// socket (same inode) and still non-blocking.
func TestListeners_duplicates(t *testing.T) {
	checkFDs(t)
	tcp, udp := listenTCP(t), listenUDP(t)
	ls := newTestListeners(t, "http", tcp, "dns", udp)
	ln, err := ls.Listener("http")
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	names, files, err := ls.duplicates()
	if err != nil {
		t.Fatal(err)
	}
	defer fdpass.CloseAll(files)
	if !slices.Equal(names, []string{"http", "dns"}) || len(files) != 2 {
		t.Fatalf("duplicates = %q, %d files; want http, dns", names, len(files))
	}
	for i, orig := range []syscall.Conn{tcp, udp} {
		if inode(t, files[i]) != inode(t, orig) {
			t.Errorf("duplicate %q is another socket", names[i])
		}
		if !nonblocking(t, files[i]) {
			t.Errorf("duplicate %q is in blocking mode", names[i])
		}
	}
}

// TestListeners_close checks that Close releases every kept descriptor
// (checkFDs) and that the closed set refuses further use.
func TestListeners_close(t *testing.T) {
	checkFDs(t)
	ls := newTestListeners(t, "http", listenTCP(t))
	if err := ls.Close(); err != nil {
		t.Fatal(err)
	}
	if err := ls.Close(); err != nil {
		t.Errorf("second Close = %v, want nil", err)
	}
	if _, err := ls.Listener("http"); !errors.Is(err, ErrClosed) {
		t.Errorf("Listener after Close = %v, want ErrClosed", err)
	}
	if _, _, err := ls.duplicates(); !errors.Is(err, ErrClosed) {
		t.Errorf("duplicates after Close = %v, want ErrClosed", err)
	}
}

// TestListeners_nil checks that a daemon without listeners can use a nil
// *Listeners like an empty one.
func TestListeners_nil(t *testing.T) {
	var ls *Listeners
	if ls.Len() != 0 || ls.Names() != nil || ls.Close() != nil {
		t.Error("nil Listeners is not empty")
	}
	if _, err := ls.Listener("http"); !errors.Is(err, ErrNoListener) {
		t.Errorf("Listener on nil = %v, want ErrNoListener", err)
	}
	if names, files, err := ls.duplicates(); names != nil || files != nil || err != nil {
		t.Errorf("duplicates on nil = %v, %v, %v", names, files, err)
	}
}

// TestNewListeners_rejects checks that bad input leaks nothing and shadows
// no listener.
func TestNewListeners_rejects(t *testing.T) {
	checkFDs(t)
	a, b := listenTCP(t), listenTCP(t)
	tests := []struct {
		name  string
		names []string
		conns []syscall.Conn
		want  error
	}{
		{name: "duplicate name", names: []string{"http", "http"}, conns: []syscall.Conn{a, b}, want: listenenv.ErrBadName},
		{name: "bad name", names: []string{"a:b"}, conns: []syscall.Conn{a}, want: listenenv.ErrBadName},
		{name: "count mismatch", names: []string{"http"}, conns: []syscall.Conn{a, b}, want: os.ErrInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if ls, err := NewListeners(tc.names, tc.conns); !errors.Is(err, tc.want) || ls != nil {
				t.Errorf("NewListeners = %v, %v; want nil, %v", ls, err, tc.want)
			}
		})
	}
}

func closeErr[T io.Closer](v T, err error) error {
	if err != nil {
		return err
	}
	return v.Close()
}

// newTestListeners builds Listeners from name/conn pairs, closed at cleanup.
func newTestListeners(t *testing.T, pairs ...any) *Listeners {
	t.Helper()
	var (
		names []string
		conns []syscall.Conn
	)
	for i := 0; i < len(pairs); i += 2 {
		names = append(names, pairs[i].(string))
		conns = append(conns, pairs[i+1].(syscall.Conn))
	}
	ls, err := NewListeners(names, conns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ls.Close() })
	return ls
}

func listenTCP(t *testing.T) *net.TCPListener {
	t.Helper()
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

func listenUnix(t *testing.T, path string) *net.UnixListener {
	t.Helper()
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

func listenUDP(t *testing.T) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func listenUnixgram(t *testing.T, path string) *net.UnixConn {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		os.Remove(path)
	})
	return c
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

// socketPair returns both ends of a Unix stream socketpair, closed at
// cleanup.
func socketPair(t *testing.T) (*os.File, *os.File) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	a, b := os.NewFile(uintptr(fds[0]), "pair-a"), os.NewFile(uintptr(fds[1]), "pair-b")
	t.Cleanup(func() {
		a.Close()
		b.Close()
	})
	return a, b
}

// dupFile duplicates c the way a supervisor does, closed at cleanup.
func dupFile(t *testing.T, c syscall.Conn) *os.File {
	t.Helper()
	f, err := sysx.DupFile(c, "dup")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func inode(t *testing.T, c syscall.Conn) uint64 {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	var statErr error
	if err := rc.Control(func(fd uintptr) { statErr = unix.Fstat(int(fd), &st) }); err != nil || statErr != nil {
		t.Fatalf("fstat: %v %v", err, statErr)
	}
	return st.Ino
}

func dialDeadline(t *testing.T, network, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout(network, addr, testDeadline)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetDeadline(time.Now().Add(testDeadline))
	t.Cleanup(func() { c.Close() })
	return c
}

func readLine(t *testing.T, c net.Conn) string {
	t.Helper()
	s, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("read: %v (got %q)", err, s)
	}
	return strings.TrimSuffix(s, "\n")
}

// askStream sends one line on a new connection and returns the reply line.
func askStream(t *testing.T, network, addr, msg string) string {
	t.Helper()
	c := dialDeadline(t, network, addr)
	if _, err := io.WriteString(c, msg+"\n"); err != nil {
		t.Fatal(err)
	}
	return readLine(t, c)
}

// askPacket sends one datagram to to from a fresh socket and returns the
// reply.
func askPacket(t *testing.T, network string, to net.Addr, msg string) string {
	t.Helper()
	var pc net.PacketConn
	var err error
	if network == "unixgram" {
		pc, err = net.ListenUnixgram("unixgram", &net.UnixAddr{Name: to.String() + ".client", Net: "unixgram"})
	} else {
		pc, err = net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	}
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	_ = pc.SetDeadline(time.Now().Add(testDeadline))
	if _, err := pc.WriteTo([]byte(msg), to); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2048)
	n, _, err := pc.ReadFrom(buf)
	if err != nil {
		t.Fatal(err)
	}
	return string(buf[:n])
}
