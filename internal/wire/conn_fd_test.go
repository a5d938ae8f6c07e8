package wire

import (
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/handoff-go/handoff/internal/testproc"
)

// fdFixture is the three kinds of descriptor a handoff passes: a TCP
// listener, a pipe end and a plain file.
type fdFixture struct {
	ln        *net.TCPListener
	pipeR     *os.File
	files     []*os.File // TCP listener dup, pipe write end, regular file
	names     []string
	fileBytes string
}

func newFDFixture(t *testing.T) *fdFixture {
	t.Helper()
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close(); _ = w.Close() })
	path := filepath.Join(t.TempDir(), "data")
	if err := os.WriteFile(path, []byte("sealed"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close() })
	return &fdFixture{
		ln: ln, pipeR: r, files: []*os.File{dupFile(t, ln, "http"), w, f},
		names: []string{"http", "pipe", "file"}, fileBytes: "sealed",
	}
}

// check proves that received descriptors are close-on-exec copies of the
// fixture's and that they work.
func (fx *fdFixture) check(t *testing.T, got []*os.File) {
	t.Helper()
	if len(got) != len(fx.files) {
		t.Fatalf("received %d descriptors, want %d", len(got), len(fx.files))
	}
	for i, f := range got {
		if fd, _ := fdFlags(t, f); fd&unix.FD_CLOEXEC == 0 {
			t.Errorf("received descriptor %d (%s) is not close-on-exec", i, fx.names[i])
		}
	}
	fx.checkListener(t, got[0])
	fx.checkPipe(t, got[1])
	fx.checkFile(t, got[2])
}

func (fx *fdFixture) checkListener(t *testing.T, f *os.File) {
	t.Helper()
	ln, err := net.FileListener(f)
	if err != nil {
		t.Fatalf("FileListener: %v", err)
	}
	defer ln.Close()
	if ln.Addr().String() != fx.ln.Addr().String() {
		t.Fatalf("received listener on %s, want %s", ln.Addr(), fx.ln.Addr())
	}
	c, err := net.Dial("tcp", fx.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = ln.(*net.TCPListener).SetDeadline(later())
	s, err := ln.Accept()
	if err != nil {
		t.Fatalf("accept on the received listener: %v", err)
	}
	_ = s.Close()
}

func (fx *fdFixture) checkPipe(t *testing.T, w *os.File) {
	t.Helper()
	if _, err := w.Write([]byte("x")); err != nil {
		t.Fatalf("write to the received pipe end: %v", err)
	}
	_ = fx.pipeR.SetReadDeadline(later())
	buf := make([]byte, 1)
	if _, err := io.ReadFull(fx.pipeR, buf); err != nil || buf[0] != 'x' {
		t.Fatalf("pipe read %q, %v", buf, err)
	}
}

func (fx *fdFixture) checkFile(t *testing.T, f *os.File) {
	t.Helper()
	b, err := io.ReadAll(f)
	if err != nil || string(b) != fx.fileBytes {
		t.Fatalf("received file reads %q, %v", b, err)
	}
}

func TestConn_passesListenersWithFDs(t *testing.T) {
	o, s := connPair(t)
	handshake(t, o, s)
	fx := newFDFixture(t)
	_, lnFlags := fdFlags(t, fx.ln)
	mustSend(t, o, &Listeners{Names: fx.names}, fx.files...)
	rec := mustRecv(t, s)
	defer closeAll(rec.Files)
	if l, ok := rec.Msg.(*Listeners); !ok || len(l.Names) != 3 {
		t.Fatalf("got %#v, want Listeners with 3 names", rec.Msg)
	}
	fx.check(t, rec.Files)
	// Sending must not have switched the shared socket to blocking mode.
	if _, now := fdFlags(t, fx.ln); now&unix.O_NONBLOCK == 0 || now != lnFlags {
		t.Errorf("listener flags %#x after sending, were %#x", now, lnFlags)
	}
}

func TestConn_closesDescriptorsItDoesNotReturn(t *testing.T) {
	for _, tc := range []struct {
		name string
		id   ID
		m    Message
		kind error
	}{
		{"with a Heartbeat", sampleID, &Heartbeat{}, ErrUnexpectedFDs},
		{"with too few names", sampleID, &Listeners{Names: []string{"http"}}, ErrUnexpectedFDs},
		{"with a wrong id", ID{1}, &Listeners{Names: []string{"a", "b", "c"}}, ErrWrongID},
		{"with a bad payload", ID{}, &Listeners{Names: []string{"a", "b", "c"}}, ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := socketpair(t)
			c := NewConn(b)
			c.SetNegotiated(1, sampleID)
			fx := newFDFixture(t)
			before := testproc.OpenFDs(t)
			sendRaw(t, a, tc.id, tc.m, fx.files)
			_, err := c.Recv(later())
			if !errors.Is(err, tc.kind) {
				t.Fatalf("got %v, want %v", err, tc.kind)
			}
			testproc.CheckFDs(t, before)
		})
	}
}

func TestConn_truncatedControlClosesWhatArrived(t *testing.T) {
	a, b := socketpair(t)
	c := NewConn(b)
	c.oob = make([]byte, unix.CmsgSpace(4)) // room for one descriptor
	c.SetNegotiated(1, sampleID)
	fx := newFDFixture(t)
	before := testproc.OpenFDs(t)
	sendRaw(t, a, sampleID, &Listeners{Names: fx.names}, fx.files)
	if _, err := c.Recv(later()); !errors.Is(err, ErrFDsTruncated) {
		t.Fatalf("got %v, want ErrFDsTruncated", err)
	}
	testproc.CheckFDs(t, before)
}

// sendRaw writes m framed with id, files attached, bypassing Conn's own
// checks. The zero id stands for a payload that is not CBOR at all.
func sendRaw(t *testing.T, c *net.UnixConn, id ID, m Message, files []*os.File) {
	t.Helper()
	frame := []byte{3, 0, 0, 0, 1, 0, 0xff}
	if !id.IsZero() {
		var err error
		if frame, err = Encode(1, id, m); err != nil {
			t.Fatal(err)
		}
	}
	fds := make([]int, len(files))
	for i, f := range files {
		fds[i] = rawFD(t, f)
	}
	if _, _, err := c.WriteMsgUnix(frame, unix.UnixRights(fds...), nil); err != nil {
		t.Fatal(err)
	}
}

func closeAll(files []*os.File) {
	for _, f := range files {
		_ = f.Close()
	}
}
