package fdpass

import (
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"go.uber.org/goleak"
	"golang.org/x/sys/unix"

	"github.com/handoff-go/handoff/internal/sysx"

	"github.com/handoff-go/handoff/internal/testproc"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// pair returns the raw descriptors of a close-on-exec Unix stream
// socketpair, closed at cleanup.
func pair(t *testing.T) [2]int {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Close(fds[0]); _ = unix.Close(fds[1]) })
	return [2]int(fds)
}

// fixture holds one descriptor of each kind a handoff passes.
type fixture struct {
	ln    *net.TCPListener
	pipeR *os.File
	files []*os.File // listener dup, pipe write end, regular file
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "state")
	if err := os.WriteFile(path, []byte("sealed"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	fx := &fixture{ln: ln, pipeR: r, files: []*os.File{dup(t, sysFD(t, ln)), w, f}}
	t.Cleanup(func() { _ = ln.Close(); _ = r.Close(); CloseAll(fx.files) })
	return fx
}

// send writes one data byte with files attached as SCM_RIGHTS.
func send(t *testing.T, fd int, files []*os.File) {
	t.Helper()
	oob, err := Rights(files)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Sendmsg(fd, []byte{1}, oob, nil, 0); err != nil {
		t.Fatalf("sendmsg: %v", err)
	}
	runtime.KeepAlive(files)
}

// recv reads one byte and its control data, with MSG_CMSG_CLOEXEC as Go's
// ReadMsgUnix uses on Linux.
func recv(t *testing.T, fd int) []byte {
	t.Helper()
	buf, oob := make([]byte, 1), make([]byte, OOBSize)
	_, oobn, flags, _, err := unix.Recvmsg(fd, buf, oob, unix.MSG_CMSG_CLOEXEC)
	if err != nil || flags&unix.MSG_CTRUNC != 0 {
		t.Fatalf("recvmsg: %v (flags %#x)", err, flags)
	}
	return oob[:oobn]
}

func TestRightsParse_passesWorkingCloexecDescriptors(t *testing.T) {
	p := pair(t)
	fx := newFixture(t)
	_, lnFlags := flags(t, sysFD(t, fx.ln))
	send(t, p[0], fx.files)
	got, cred, err := Parse(recv(t, p[1]))
	if err != nil || len(got) != 3 || cred != nil {
		t.Fatalf("Parse = %d files, cred %v, %v; want 3 files, no cred", len(got), cred, err)
	}
	defer CloseAll(got)
	for i, f := range got {
		if fdf, _ := flags(t, sysFD(t, f)); fdf&unix.FD_CLOEXEC == 0 {
			t.Errorf("received descriptor %d is not close-on-exec", i)
		}
	}
	checkListener(t, fx.ln, got[0])
	checkPipe(t, fx.pipeR, got[1])
	checkFile(t, got[2])
	if _, now := flags(t, sysFD(t, fx.ln)); now != lnFlags {
		t.Errorf("listener status flags %#x after passing, were %#x", now, lnFlags)
	}
}

func checkListener(t *testing.T, orig *net.TCPListener, f *os.File) {
	t.Helper()
	ln, err := net.FileListener(f)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", orig.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = ln.(*net.TCPListener).SetDeadline(time.Now().Add(30 * time.Second))
	s, err := ln.Accept()
	if err != nil {
		t.Fatalf("accept on the passed listener: %v", err)
	}
	_ = s.Close()
}

func checkPipe(t *testing.T, r, w *os.File) {
	t.Helper()
	if _, err := w.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	_ = r.SetReadDeadline(time.Now().Add(30 * time.Second))
	b := make([]byte, 1)
	if _, err := io.ReadFull(r, b); err != nil || b[0] != 'x' {
		t.Fatalf("pipe gave %q, %v", b, err)
	}
}

func checkFile(t *testing.T, f *os.File) {
	t.Helper()
	if b, err := io.ReadAll(f); err != nil || string(b) != "sealed" {
		t.Fatalf("file gave %q, %v", b, err)
	}
}

func TestParse_credentialsWithPassCred(t *testing.T) {
	p := pair(t)
	conn := fileConn(t, p[1])
	if err := EnablePassCred(conn); err != nil {
		t.Fatal(err)
	}
	if err := unix.Sendmsg(p[0], []byte{1}, nil, nil, 0); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	oob := make([]byte, OOBSize)
	_, oobn, _, _, err := conn.ReadMsgUnix(make([]byte, 1), oob)
	if err != nil {
		t.Fatal(err)
	}
	files, cred, err := Parse(oob[:oobn])
	if err != nil || files != nil || cred == nil || cred.Pid != int32(os.Getpid()) || cred.Uid != uint32(os.Getuid()) {
		t.Fatalf("Parse = %v, %+v, %v; want our pid %d", files, cred, err, os.Getpid())
	}
}

func TestPeerCred_socketpairNamesItsCreator(t *testing.T) {
	p := pair(t)
	cred, err := sysx.PeerCred(fileConn(t, p[0]))
	if err != nil || cred.Pid != int32(os.Getpid()) {
		t.Fatalf("PeerCred = %+v, %v; want pid %d", cred, err, os.Getpid())
	}
}

func TestParse_errorClosesEveryDescriptor(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	for _, tc := range []struct {
		name  string
		after []byte
	}{
		{"stray bytes", []byte{1, 2, 3}},
		{"header longer than the buffer", unix.UnixRights(0)[:unix.SizeofCmsghdr]},
		{"rights of odd length", oddRights()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := testproc.OpenFDs(t)
			// Raw copies, as the kernel installs them on receipt: Parse
			// owns them, so no *os.File may close their numbers later.
			a, b := rawDup(t, sysFD(t, r)), rawDup(t, sysFD(t, w))
			files, _, err := Parse(append(unix.UnixRights(a, b), tc.after...))
			if !errors.Is(err, ErrBadControl) || files != nil {
				t.Fatalf("Parse = %v, %v; want ErrBadControl and no files", files, err)
			}
			testproc.CheckFDs(t, before)
		})
	}
}

// oddRights is an SCM_RIGHTS message with 5 data bytes.
func oddRights() []byte {
	b := unix.UnixRights(0, 0)
	(*unix.Cmsghdr)(unsafe.Pointer(&b[0])).SetLen(unix.CmsgLen(5))
	return b[:unix.CmsgSpace(5)]
}

func TestRightsParse_maxFDsFitTheBuffer(t *testing.T) {
	p := pair(t)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	files := make([]*os.File, MaxFDs)
	for i := range files {
		files[i] = w
	}
	send(t, p[0], files) // recv fails the test on MSG_CTRUNC
	got, _, err := Parse(recv(t, p[1]))
	defer CloseAll(got)
	if err != nil || len(got) != MaxFDs {
		t.Fatalf("received %d descriptors, %v; want %d", len(got), err, MaxFDs)
	}
}

func TestRights_limits(t *testing.T) {
	if oob, err := Rights(nil); oob != nil || err != nil {
		t.Errorf("Rights(nil) = %x, %v; want nothing", oob, err)
	}
	many := make([]*os.File, MaxFDs+1)
	for i := range many {
		many[i] = os.Stdin
	}
	if _, err := Rights(many); !errors.Is(err, ErrTooManyFDs) {
		t.Errorf("%d files: %v, want ErrTooManyFDs", len(many), err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	_ = r.Close()
	defer w.Close()
	if _, err := Rights([]*os.File{w, r}); err == nil {
		t.Error("Rights accepted a closed file")
	}
	if _, err := Rights([]*os.File{nil}); err == nil {
		t.Error("Rights accepted a nil file")
	}
}

// fileConn wraps a copy of a raw socket descriptor as a *net.UnixConn.
func fileConn(t *testing.T, fd int) *net.UnixConn {
	t.Helper()
	f := dup(t, fd)
	defer f.Close()
	c, err := net.FileConn(f)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c.(*net.UnixConn)
}

// dup returns a close-on-exec copy of fd as a file.
func dup(t *testing.T, fd int) *os.File {
	t.Helper()
	return os.NewFile(uintptr(rawDup(t, fd)), "dup-"+strconv.Itoa(fd))
}

// rawDup returns a close-on-exec copy of fd.
func rawDup(t *testing.T, fd int) int {
	t.Helper()
	nfd, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	return nfd
}

// sysFD returns c's descriptor number without (*os.File).Fd's side effects.
func sysFD(t *testing.T, c syscall.Conn) int {
	t.Helper()
	fd, err := rawFDOf(c)
	if err != nil {
		t.Fatal(err)
	}
	return fd
}

func rawFDOf(c syscall.Conn) (int, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	err = rc.Control(func(u uintptr) { fd = int(u) })
	return fd, err
}

// flags returns F_GETFD and F_GETFL of fd.
func flags(t *testing.T, fd int) (fdFlags, flFlags int) {
	t.Helper()
	fdFlags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
	if err != nil {
		t.Fatal(err)
	}
	flFlags, err = unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err != nil {
		t.Fatal(err)
	}
	return fdFlags, flFlags
}
