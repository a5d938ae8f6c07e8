package sysx

import (
	"net"
	"syscall"
	"testing"

	"github.com/handoff-go/handoff/internal/testproc"
)

func listenTCP(t *testing.T) *net.TCPListener {
	t.Helper()
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

func wantNonblock(t *testing.T, what string, c syscall.Conn, want bool) {
	t.Helper()
	got, err := IsNonblock(c)
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("%s: O_NONBLOCK set = %v, want %v", what, got, want)
	}
}

// TestDupFile_keepsNonblockThroughExtraFiles checks the blocking-mode pitfall
// of DESIGN section 12: O_NONBLOCK belongs to the open socket shared by every
// dup and process, and handing a socket to a child must not switch the
// incumbent's own listener to blocking mode (its accept loop could no longer be
// interrupted for a drain). exec.Cmd calls Fd on every ExtraFiles entry.
func TestDupFile_keepsNonblockThroughExtraFiles(t *testing.T) {
	testproc.CheckLeaks(t)
	ln := listenTCP(t)
	wantNonblock(t, "fresh listener", ln, true)
	for i := range 3 { // handed out several times, as across several swaps
		dup, err := DupFile(ln, "http")
		if err != nil {
			t.Fatal(err)
		}
		c := startRole(t, "fd3-nonblock", dup)
		if got := c.Line(t); got != "nonblock=true" {
			t.Fatalf("spawn %d: child reports %q for its fd 3, want nonblock=true", i, got)
		}
		dup.Close()
		c.Wait(t)
		wantNonblock(t, "listener after handing a dup to a child", ln, true)
	}
}

// TestFd_flipsSharedSocketToBlocking is the control for the test above: it
// shows the pitfall is real, so the test above would notice a DupFile that
// went through net's File and Fd.
func TestFd_flipsSharedSocketToBlocking(t *testing.T) {
	ln := listenTCP(t)
	f, err := ln.File()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	_ = f.Fd()
	wantNonblock(t, "listener after Fd on net's File copy", ln, false)
}

func TestDupFD_isCloexecCopy(t *testing.T) {
	ln := listenTCP(t)
	dup, err := DupFile(ln, "http")
	if err != nil {
		t.Fatal(err)
	}
	defer dup.Close()
	again, err := DupFD(int(dup.Fd()), "again")
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	_, ino1, err := FileInode(dup)
	if err != nil {
		t.Fatal(err)
	}
	_, ino2, err := FileInode(again)
	if err != nil {
		t.Fatal(err)
	}
	if ino1 != ino2 {
		t.Fatalf("DupFD copy names inode %d, original %d", ino2, ino1)
	}
	wantNonblock(t, "listener after DupFD", ln, true)
}
