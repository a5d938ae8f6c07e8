package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/handoff-go/handoff/examples/kvd/store"
)

// testServer is a kvd server on loopback listeners over a fresh data dir,
// built the way main builds it but without the handoff library.
type testServer struct {
	*server
	dir      string
	httpAddr string
	respAddr string
}

func startTestServer(t *testing.T, f faults) *testServer {
	t.Helper()
	dir := t.TempDir()
	st, err := store.Open(dir, store.WithLogger(quietLog))
	if err != nil {
		t.Fatal(err)
	}
	if err := st.StartWrites(); err != nil {
		t.Fatal(err)
	}
	s := newServer(config{dataDir: dir, buildID: "test-build", faults: f}, quietLog, st)
	httpLn, respLn := listen(t), listen(t)
	if err := s.start(httpLn, respLn); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.close)
	return &testServer{server: s, dir: dir, httpAddr: httpLn.Addr().String(), respAddr: respLn.Addr().String()}
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// testCtx bounds a wait; the deadline only turns a hang into a failure.
func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// respClient speaks RESP by hand so a test sees exactly what kvd writes.
type respClient struct {
	net.Conn
	r *bufio.Reader
}

func dialRESP(t *testing.T, addr string) *respClient {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(30 * time.Second))
	return &respClient{Conn: c, r: bufio.NewReader(c)}
}

// send writes commands (each a space-separated word list) in one write.
func (c *respClient) send(t *testing.T, cmds ...string) {
	t.Helper()
	var b []byte
	for _, cmd := range cmds {
		b = append(b, encodeCommand(words(cmd))...)
	}
	if _, err := c.Write(b); err != nil {
		t.Fatalf("write: %v", err)
	}
}

// reply reads one reply, rendered as "+OK", "-ERR …", ":1", "$value",
// "$nil" or "*n[a b]".
func (c *respClient) reply(t *testing.T) string {
	t.Helper()
	s, err := readReply(c.r)
	if err != nil {
		t.Fatalf("read reply: %v", err)
	}
	return s
}

func readReply(r *bufio.Reader) (string, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimSuffix(line, "\r\n")
	switch line[0] {
	case '$':
		n, _ := strconv.Atoi(line[1:])
		if n < 0 {
			return "$nil", nil
		}
		b := make([]byte, n+2)
		_, err := io.ReadFull(r, b)
		return "$" + string(b[:n]), err
	case '*':
		n, _ := strconv.Atoi(line[1:])
		var elems []string
		for range n {
			e, err := readReply(r)
			if err != nil {
				return "", err
			}
			elems = append(elems, e)
		}
		return fmt.Sprintf("*%d%v", n, elems), nil
	}
	return line, nil
}

// call sends one command and reads its reply.
func (c *respClient) call(t *testing.T, cmd string) string {
	t.Helper()
	c.send(t, cmd)
	return c.reply(t)
}

// wantClosed checks that kvd closes the connection without another byte.
func (c *respClient) wantClosed(t *testing.T) {
	t.Helper()
	b, err := io.ReadAll(c.r)
	if len(b) != 0 || (err != nil && !errors.Is(err, syscall.ECONNRESET)) {
		t.Fatalf("server wrote %q (read error %v); want the connection closed with nothing more", b, err)
	}
}
