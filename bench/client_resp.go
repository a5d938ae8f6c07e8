package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// respClient is a minimal RESP2 client with one connection. Like go-redis's
// pool check it peeks at a connection before reusing it and replaces one
// the server has already closed (nothing was sent on it, so nothing is
// lost); it never resends a command that was sent.
type respClient struct {
	addr string
	conn net.Conn
	r    *bufio.Reader
	w    *bufio.Writer
}

// errRESP is an error reply from the server.
type errRESP struct{ msg string }

func (e *errRESP) Error() string { return "RESP error: " + e.msg }

func (c *respClient) close() {
	if c.conn != nil {
		c.conn.Close()
		c.conn = nil
	}
}

func (c *respClient) ensure() error {
	if c.conn != nil && !peerOpen(c.conn) {
		c.close()
	}
	if c.conn != nil {
		return nil
	}
	conn, err := net.DialTimeout("tcp", c.addr, 5*time.Second)
	if err != nil {
		return err
	}
	c.conn, c.r, c.w = conn, bufio.NewReader(conn), bufio.NewWriter(conn)
	return nil
}

// peerOpen peeks without blocking: false when the server closed the
// connection (EOF or an error is pending).
func peerOpen(nc net.Conn) bool {
	rc, err := nc.(syscall.Conn).SyscallConn()
	if err != nil {
		return false
	}
	var b [1]byte
	open := true
	_ = rc.Control(func(fd uintptr) {
		n, _, err := unix.Recvfrom(int(fd), b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
		open = n > 0 || errors.Is(err, unix.EAGAIN)
	})
	return open
}

// do sends one command and reads its reply: a bulk string (nil when the
// key is missing) or a simple string.
func (c *respClient) do(args ...[]byte) ([]byte, error) {
	if err := c.ensure(); err != nil {
		return nil, err
	}
	_ = c.conn.SetDeadline(time.Now().Add(requestTimeout))
	fmt.Fprintf(c.w, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(c.w, "$%d\r\n", len(a))
		c.w.Write(a)
		c.w.WriteString("\r\n")
	}
	if err := c.w.Flush(); err != nil {
		c.close()
		return nil, err
	}
	v, err := c.readReply()
	if err != nil {
		var re *errRESP
		if !errors.As(err, &re) {
			c.close()
		}
	}
	return v, err
}

func (c *respClient) readReply() ([]byte, error) {
	line, err := c.r.ReadSlice('\n')
	if err != nil {
		return nil, err
	}
	if len(line) < 3 {
		return nil, fmt.Errorf("bench: bad RESP reply %q", line)
	}
	body := string(line[1 : len(line)-2])
	switch line[0] {
	case '+':
		return []byte(body), nil
	case '-':
		return nil, &errRESP{msg: body}
	case '$':
		return c.readBulk(body)
	}
	return nil, fmt.Errorf("bench: unexpected RESP reply %q", line)
}

func (c *respClient) readBulk(lenField string) ([]byte, error) {
	n, err := strconv.Atoi(lenField)
	if err != nil || n < -1 {
		return nil, fmt.Errorf("bench: bad RESP bulk length %q", lenField)
	}
	if n == -1 {
		return nil, nil
	}
	buf := make([]byte, n+2)
	if _, err := io.ReadFull(c.r, buf); err != nil {
		return nil, err
	}
	return buf[:n], nil
}
