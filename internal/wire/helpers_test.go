package wire

import (
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// testWait bounds every blocking step of a test. Its only job is to turn a
// hang into a failure; nothing is asserted about how long a step takes.
const testWait = 30 * time.Second

// soon is a deadline for reads that are expected to time out.
func soon() time.Time { return time.Now().Add(50 * time.Millisecond) }

// later is a deadline for reads and writes that are expected to succeed.
func later() time.Time { return time.Now().Add(testWait) }

// socketpair returns the two ends of a close-on-exec Unix stream
// socketpair, closed at cleanup.
func socketpair(t *testing.T) (*net.UnixConn, *net.UnixConn) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("socketpair: %v", err)
	}
	return fileConn(t, fds[0]), fileConn(t, fds[1])
}

// fileConn wraps a raw socket descriptor (taking ownership) as a
// *net.UnixConn closed at cleanup.
func fileConn(t *testing.T, fd int) *net.UnixConn {
	t.Helper()
	f := os.NewFile(uintptr(fd), "socket")
	defer f.Close()
	c, err := net.FileConn(f)
	if err != nil {
		t.Fatalf("FileConn: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c.(*net.UnixConn)
}

// connPair returns two Conns over a socketpair, closed at cleanup.
func connPair(t *testing.T) (*Conn, *Conn) {
	t.Helper()
	a, b := socketpair(t)
	ca, cb := NewConn(a), NewConn(b)
	t.Cleanup(func() { _ = ca.Close(); _ = cb.Close() })
	return ca, cb
}

// handshake runs Hello/HelloAck between hello (the side that speaks first)
// and ack, and returns the session id.
func handshake(t *testing.T, hello, ack *Conn) ID {
	t.Helper()
	mustSend(t, hello, &Hello{Role: RoleSuccessor, PID: 1, MinVersion: MinVersion, MaxVersion: MaxVersion})
	rec := mustRecv(t, ack)
	if rec.Msg.Type() != TypeHello || !rec.ID.IsZero() || rec.Version != HelloFrameVersion {
		t.Fatalf("first frame %s id %s version %d, want a version-1 Hello without id", rec.Msg.Type(), rec.ID, rec.Version)
	}
	id, err := NewID()
	if err != nil {
		t.Fatal(err)
	}
	ack.SetNegotiated(MaxVersion, id)
	mustSend(t, ack, &HelloAck{Version: MaxVersion, Role: RoleSupervisor})
	rec = mustRecv(t, hello)
	if rec.Msg.Type() != TypeHelloAck || rec.ID != id || rec.Version != HelloFrameVersion {
		t.Fatalf("answer %s id %s version %d, want a version-1 HelloAck with id %s", rec.Msg.Type(), rec.ID, rec.Version, id)
	}
	hello.SetNegotiated(rec.Msg.(*HelloAck).Version, rec.ID)
	return id
}

func mustSend(t *testing.T, c *Conn, m Message, files ...*os.File) {
	t.Helper()
	if err := c.Send(later(), m, files...); err != nil {
		t.Fatalf("Send %s: %v", m.Type(), err)
	}
}

func mustRecv(t *testing.T, c *Conn) Received {
	t.Helper()
	rec, err := c.Recv(later())
	if err != nil {
		t.Fatalf("Recv: %v", err)
	}
	return rec
}

// rawFD returns the descriptor behind c without (*os.File).Fd's side
// effects.
func rawFD(t *testing.T, c syscall.Conn) int {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	fd := -1
	if err := rc.Control(func(u uintptr) { fd = int(u) }); err != nil {
		t.Fatal(err)
	}
	return fd
}

// fdFlags returns F_GETFD and F_GETFL of c's descriptor.
func fdFlags(t *testing.T, c syscall.Conn) (fdFlags, flFlags int) {
	t.Helper()
	fd := rawFD(t, c)
	fdf, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
	if err != nil {
		t.Fatal(err)
	}
	flf, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err != nil {
		t.Fatal(err)
	}
	return fdf, flf
}

// dupFile duplicates the descriptor behind c (close-on-exec) the safe way.
func dupFile(t *testing.T, c syscall.Conn, name string) *os.File {
	t.Helper()
	fd, err := unix.FcntlInt(uintptr(rawFD(t, c)), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), name)
	t.Cleanup(func() { _ = f.Close() })
	return f
}
