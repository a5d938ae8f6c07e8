package test

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// classified is a client error with its class.
type classified struct {
	class string
	err   error
}

func (e *classified) Error() string { return e.class + ": " + e.err.Error() }
func (e *classified) Unwrap() error { return e.err }

// client is one keep-alive connection speaking HTTP/1.1 or RESP, written
// by hand so that every failure is seen and classified (no library retries).
type client struct {
	proto string
	addr  string
	conn  net.Conn
	br    *bufio.Reader
	used  bool // the connection has answered at least one request
}

func newClient(proto, addr string) *client { return &client{proto: proto, addr: addr} }

func (c *client) writeOp() string {
	if c.proto == "http" {
		return "PUT"
	}
	return "SET"
}

func (c *client) close() {
	if c.conn != nil {
		c.conn.Close()
		c.conn = nil
	}
}

// connect makes sure there is a connection. A kept connection is first
// checked without blocking: the server may have closed it cleanly while it
// was idle (between requests), and then the client simply reconnects, as
// every HTTP and Redis client does; a reset of an idle connection is a
// failure.
func (c *client) connect() error {
	if c.conn != nil {
		switch err := idleState(c.conn); {
		case err == nil:
			return nil
		case errors.Is(err, io.EOF):
			c.close()
		default:
			c.close()
			return err
		}
	}
	conn, err := net.DialTimeout("tcp", c.addr, requestWait)
	if err != nil {
		class := failDial
		if errors.Is(err, syscall.ECONNREFUSED) {
			class = failRefused
		}
		return &classified{class, err}
	}
	c.conn, c.br, c.used = conn, bufio.NewReader(conn), false
	return nil
}

// idleState peeks at an idle connection: nil if it is open with nothing
// to read, io.EOF if the server closed it cleanly, a classified error if it
// was reset or the server sent something unasked.
func idleState(conn net.Conn) error {
	rc, err := conn.(syscall.Conn).SyscallConn()
	if err != nil {
		return &classified{failBadAnswer, err}
	}
	var (
		n    int
		perr error
		b    [1]byte
	)
	if err := rc.Control(func(fd uintptr) {
		n, _, perr = unix.Recvfrom(int(fd), b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
	}); err != nil {
		return &classified{failBadAnswer, err}
	}
	switch {
	case errors.Is(perr, unix.EAGAIN):
		return nil
	case perr != nil:
		return &classified{failResetIdle, fmt.Errorf("idle connection: %w", perr)}
	case n == 0:
		return io.EOF
	}
	return &classified{failBadAnswer, errors.New("the server sent bytes on an idle connection")}
}

// roundTrip sends req and reads the answer with read. Any failure closes
// the connection and is classified by what was seen before it.
func (c *client) roundTrip(req []byte, read func(*bufio.Reader) error) error {
	if err := c.connect(); err != nil {
		return err
	}
	_ = c.conn.SetDeadline(time.Now().Add(requestWait))
	cr := &countingReader{r: c.conn}
	c.br.Reset(cr)
	_, err := c.conn.Write(req)
	if err == nil {
		err = read(c.br)
	}
	if err == nil {
		c.used = true
		return nil
	}
	fresh := !c.used
	c.close()
	var ce *classified
	if errors.As(err, &ce) {
		return err
	}
	return &classified{classify(err, fresh, cr.n > 0), err}
}

func classify(err error, fresh, answered bool) string {
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		return failTimeout
	case answered:
		return failPartial
	case fresh:
		return failFresh
	}
	return failIdleClose
}

// countingReader counts the bytes read from the connection, to tell a
// request that got part of an answer from one that got none.
type countingReader struct {
	r io.Reader
	n int
}

func (r *countingReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.n += n
	return n, err
}

func (c *client) put(key, val string) error {
	if c.proto == "resp" {
		return c.roundTrip(respCmd("SET", key, val), func(br *bufio.Reader) error {
			return expectSimple(br, "OK")
		})
	}
	req := fmt.Sprintf("PUT /kv/%s HTTP/1.1\r\nHost: kvd\r\nContent-Length: %d\r\n\r\n%s", key, len(val), val)
	return c.roundTrip([]byte(req), func(br *bufio.Reader) error {
		_, err := c.readHTTP(br, http.MethodPut, http.StatusOK)
		return err
	})
}

func (c *client) get(key string) (val string, found bool, err error) {
	if c.proto == "resp" {
		err = c.roundTrip(respCmd("GET", key), func(br *bufio.Reader) error {
			val, found, err = readBulk(br)
			return err
		})
		return val, found, err
	}
	req := fmt.Sprintf("GET /kv/%s HTTP/1.1\r\nHost: kvd\r\n\r\n", key)
	err = c.roundTrip([]byte(req), func(br *bufio.Reader) error {
		resp, err := c.readHTTP(br, http.MethodGet, http.StatusOK, http.StatusNotFound)
		if err == nil {
			found = resp.status == http.StatusOK
			val = resp.body
		}
		return err
	})
	return val, found, err
}

type httpAnswer struct {
	status int
	body   string
}

// readHTTP reads one response; a "Connection: close" answer closes the
// connection after it, as a well-behaved client does.
func (c *client) readHTTP(br *bufio.Reader, method string, want ...int) (httpAnswer, error) {
	resp, err := http.ReadResponse(br, &http.Request{Method: method})
	if err != nil {
		return httpAnswer{}, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return httpAnswer{}, err
	}
	if resp.Close {
		defer c.close()
	}
	a := httpAnswer{status: resp.StatusCode, body: string(body)}
	for _, w := range want {
		if a.status == w {
			return a, nil
		}
	}
	class := failBadAnswer
	if a.status == http.StatusServiceUnavailable {
		class = failRejected
	}
	return a, &classified{class, fmt.Errorf("HTTP %d: %s", a.status, strings.TrimSpace(a.body))}
}

func respCmd(args ...string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	return []byte(b.String())
}

func readLine(br *bufio.Reader) (string, error) {
	line, err := br.ReadString('\n')
	if err != nil {
		return "", err
	}
	return strings.TrimRight(line, "\r\n"), nil
}

func expectSimple(br *bufio.Reader, want string) error {
	line, err := readLine(br)
	if err != nil {
		return err
	}
	if line == "+"+want {
		return nil
	}
	return respError(line)
}

// respError classifies an unexpected RESP reply: an error reply about a
// sealed, closed or read-only store is a retryable refusal.
func respError(line string) error {
	class := failBadAnswer
	if strings.HasPrefix(line, "-") && strings.Contains(strings.ToLower(line), "seal") ||
		strings.Contains(strings.ToLower(line), "read-only") || strings.Contains(strings.ToLower(line), "closed") {
		class = failRejected
	}
	return &classified{class, fmt.Errorf("RESP reply %q", line)}
}

func readBulk(br *bufio.Reader) (string, bool, error) {
	line, err := readLine(br)
	if err != nil {
		return "", false, err
	}
	if line == "$-1" {
		return "", false, nil
	}
	if !strings.HasPrefix(line, "$") {
		return "", false, respError(line)
	}
	n, err := strconv.Atoi(line[1:])
	if err != nil || n < 0 || n > 1<<20 {
		return "", false, &classified{failBadAnswer, fmt.Errorf("RESP bulk header %q", line)}
	}
	buf := make([]byte, n+2)
	if _, err := io.ReadFull(br, buf); err != nil {
		return "", false, err
	}
	return string(buf[:n]), true, nil
}

// stats asks kvd's /stats on a fresh connection: which process answers,
// with which build id.
func stats(addr string) (pid int, buildID string, err error) {
	c := newClient("http", addr)
	defer c.close()
	var body string
	err = c.roundTrip([]byte("GET /stats HTTP/1.1\r\nHost: kvd\r\nConnection: close\r\n\r\n"), func(br *bufio.Reader) error {
		a, err := c.readHTTP(br, http.MethodGet, http.StatusOK)
		body = a.body
		return err
	})
	if err != nil {
		return 0, "", err
	}
	var st struct {
		PID     int    `json:"pid"`
		BuildID string `json:"build_id"`
	}
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		return 0, "", err
	}
	return st.PID, st.BuildID, nil
}
