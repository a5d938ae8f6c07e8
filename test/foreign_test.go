package test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/handoff-go/handoff/internal/wire"
)

// runForeign runs a role of this test binary as uid/gid 65534 and returns
// its one line of output.
func runForeign(t *testing.T, role, path string) string {
	t.Helper()
	exe, err := testBinaryForOthers()
	if err != nil {
		t.Fatal(err)
	}
	usedRoles.Store(role, true)
	cmd := exec.Command(exe)
	cmd.Env = childEnv(roleEnv+"="+role, "HANDOFF_TEST_PEER_PATH="+path)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := startTracked(cmd); err != nil {
		t.Fatal(err)
	}
	timer := time.AfterFunc(2*closeWait, func() { _ = cmd.Process.Kill() })
	defer timer.Stop()
	if err := waitTracked(cmd); err != nil {
		t.Fatalf("role %s: %v\n%s", role, err, stderr.String())
	}
	return strings.TrimSpace(stdout.String())
}

// roleForeignControlPeer connects to the control socket and reports what
// happened: "connect-error ...", "hello" (the incumbent talked to us: a
// failure of the uid check), or "closed".
func roleForeignControlPeer() int {
	c, err := net.DialTimeout("unix", os.Getenv("HANDOFF_TEST_PEER_PATH"), 10*time.Second)
	if err != nil {
		fmt.Println("connect-error", err)
		return 0
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(closeWait))
	_, payload, err := wire.ReadFrame(c)
	switch {
	case err == nil:
		m, _, derr := wire.Decode(payload)
		if derr == nil && m.Type() == wire.TypeHello {
			fmt.Println("hello")
		} else {
			fmt.Println("frame", derr)
		}
	case errors.Is(err, io.EOF), errors.Is(err, syscall.ECONNRESET):
		fmt.Println("closed")
	default:
		fmt.Println("error", err)
	}
	return 0
}

// roleForeignTriggerPeer asks a supervisor's trigger socket for its status
// and reports the first reply line, "closed" or "connect-error ...".
func roleForeignTriggerPeer() int {
	c, err := net.DialTimeout("unix", os.Getenv("HANDOFF_TEST_PEER_PATH"), 10*time.Second)
	if err != nil {
		fmt.Println("connect-error", err)
		return 0
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(closeWait))
	// The supervisor may refuse and close before reading the request, so a
	// failed write is not the answer: the reply may already be waiting.
	_, _ = io.WriteString(c, `{"op":"status"}`+"\n")
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil && line == "" {
		fmt.Println("closed")
		return 0
	}
	fmt.Println("reply", strings.TrimSpace(line))
	return 0
}
