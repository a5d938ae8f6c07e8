package wire

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// roleHelloWriter is the child of TestConn_passCredNamesTheWriter: it says
// Hello on the socketpair end at fd 3 and stays alive until the parent
// closes its end, so the parent inspects the credentials of a live process.
func roleHelloWriter() int {
	f := os.NewFile(3, "socketpair")
	nc, err := net.FileConn(f)
	_ = f.Close()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	c := NewConn(nc.(*net.UnixConn))
	defer c.Close()
	deadline := time.Now().Add(testWait)
	hello := &Hello{Role: RoleSuccessor, PID: int32(os.Getpid()), MinVersion: MinVersion, MaxVersion: MaxVersion}
	if err := c.Send(deadline, hello); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if _, err := c.Recv(deadline); !errors.Is(err, io.EOF) {
		fmt.Fprintf(os.Stderr, "waiting for the parent to close: %v\n", err)
		return 1
	}
	return 0
}

// startRole runs the test binary as a child in role, with extra as fd 3.
// The child is killed (if need be) and reaped at cleanup.
func startRole(t *testing.T, role string, extra *os.File) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), roleEnv+"="+role)
	cmd.ExtraFiles = []*os.File{extra}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start role %s: %v", role, err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	return cmd, &stderr
}

// TestConn_passCredNamesTheWriter checks the supervisor's identity check of
// a successor (DESIGN.md section 2, step 3): with SO_PASSCRED on its end,
// the kernel's credentials on the Hello name the child that wrote it, while
// SO_PEERCRED on a socketpair names the creator of the pair.
func TestConn_passCredNamesTheWriter(t *testing.T) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	s := NewConn(fileConn(t, fds[0]))
	if err := s.EnablePassCred(); err != nil {
		t.Fatal(err)
	}
	childEnd := os.NewFile(uintptr(fds[1]), "successor-end")
	cmd, stderr := startRole(t, "hello-writer", childEnd)
	_ = childEnd.Close()

	rec := mustRecv(t, s)
	hello, ok := rec.Msg.(*Hello)
	switch {
	case !ok:
		t.Fatalf("got %s, want Hello", rec.Msg.Type())
	case rec.Cred == nil:
		t.Fatal("no SCM_CREDENTIALS with SO_PASSCRED enabled")
	case int(rec.Cred.Pid) != cmd.Process.Pid || rec.Cred.Pid == int32(os.Getpid()):
		t.Fatalf("credentials name pid %d, want the child %d (we are %d)", rec.Cred.Pid, cmd.Process.Pid, os.Getpid())
	case hello.PID != rec.Cred.Pid || rec.Cred.Uid != uint32(os.Getuid()):
		t.Fatalf("Hello says pid %d, kernel says pid %d uid %d", hello.PID, rec.Cred.Pid, rec.Cred.Uid)
	}
	if pc, err := s.PeerCred(); err != nil || pc.Pid != int32(os.Getpid()) {
		t.Errorf("SO_PEERCRED on the socketpair = %+v, %v; want the creator, pid %d", pc, err, os.Getpid())
	}
	_ = s.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("child: %v\n%s", err, stderr)
	}
}

func TestConn_noCredWithoutPassCred(t *testing.T) {
	a, b := connPair(t)
	mustSend(t, a, &Hello{})
	if rec := mustRecv(t, b); rec.Cred != nil {
		t.Fatalf("got credentials %+v without SO_PASSCRED", rec.Cred)
	}
}

// TestConn_peerCredOnPathSocket checks the control socket's identity check:
// on a socket with a path, SO_PEERCRED names the connecting process.
func TestConn_peerCredOnPathSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "control.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.DialUnix("unix", nil, ln.Addr().(*net.UnixAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	_ = ln.SetDeadline(later())
	server, err := ln.AcceptUnix()
	if err != nil {
		t.Fatal(err)
	}
	c := NewConn(server)
	defer c.Close()
	cred, err := c.PeerCred()
	if err != nil || cred.Pid != int32(os.Getpid()) || cred.Uid != uint32(os.Getuid()) {
		t.Fatalf("PeerCred = %+v, %v; want pid %d uid %d", cred, err, os.Getpid(), os.Getuid())
	}
}
