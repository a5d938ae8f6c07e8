package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// errRESPProtocol means the server's reply was not valid RESP.
var errRESPProtocol = errors.New("handoff: demo: bad RESP reply")

// respReply is one RESP reply: a simple string (+), an error (-), an
// integer (:) or a bulk string ($, null when absent).
type respReply struct {
	kind byte
	text string
	null bool
}

// maxBulk bounds a bulk reply the demo accepts.
const maxBulk = 1 << 20

// appendCommand encodes a command as a RESP array of bulk strings.
func appendCommand(b []byte, args ...string) []byte {
	b = append(b, '*')
	b = strconv.AppendInt(b, int64(len(args)), 10)
	b = append(b, "\r\n"...)
	for _, a := range args {
		b = append(b, '$')
		b = strconv.AppendInt(b, int64(len(a)), 10)
		b = append(b, "\r\n"...)
		b = append(b, a...)
		b = append(b, "\r\n"...)
	}
	return b
}

// readReply decodes one reply (arrays are not needed by the demo).
func readReply(r *bufio.Reader) (respReply, error) {
	line, err := readLine(r)
	if err != nil {
		return respReply{}, err
	}
	switch line[0] {
	case '+', '-', ':':
		return respReply{kind: line[0], text: line[1:]}, nil
	case '$':
		return readBulk(r, line[1:])
	}
	return respReply{}, fmt.Errorf("%w: unexpected type %q", errRESPProtocol, line[0])
}

// readLine reads one CRLF-terminated line, without the CRLF.
func readLine(r *bufio.Reader) (string, error) {
	b, err := r.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		return "", fmt.Errorf("%w: line too long", errRESPProtocol)
	}
	if err != nil {
		return "", err
	}
	if len(b) < 3 || b[len(b)-2] != '\r' {
		return "", fmt.Errorf("%w: bad line %q", errRESPProtocol, b)
	}
	return string(b[:len(b)-2]), nil
}

// readBulk reads the body of a bulk string whose length line was n.
func readBulk(r *bufio.Reader, n string) (respReply, error) {
	size, err := strconv.Atoi(n)
	if err != nil || size < -1 || size > maxBulk {
		return respReply{}, fmt.Errorf("%w: bulk length %q", errRESPProtocol, n)
	}
	if size == -1 {
		return respReply{kind: '$', null: true}, nil
	}
	buf := make([]byte, size+2)
	if _, err := io.ReadFull(r, buf); err != nil {
		return respReply{}, err
	}
	if buf[size] != '\r' || buf[size+1] != '\n' {
		return respReply{}, fmt.Errorf("%w: bulk string not followed by CRLF", errRESPProtocol)
	}
	return respReply{kind: '$', text: string(buf[:size])}, nil
}

// countingReader counts the bytes read through it, so a client can tell
// "no byte of the reply came" from "the reply broke off".
type countingReader struct {
	r io.Reader
	n int64
}

// Read reads and counts.
func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// respClient is one RESP connection that pipelines nothing: it sends a
// command only after the previous reply, and only on a connection it has
// just seen open.
type respClient struct {
	addr    string
	nc      net.Conn
	cr      *countingReader
	br      *bufio.Reader
	buf     []byte
	unwatch func() bool // stops the interrupt watch on nc
}

// dial connects, bounded by ctx, and arranges for an interrupt to cut
// whatever the connection is blocked in.
func (c *respClient) dial(ctx context.Context) error {
	d := net.Dialer{Timeout: demoDialTimeout}
	nc, err := d.DialContext(ctx, "tcp", c.addr)
	if err != nil {
		return err
	}
	c.nc = nc
	c.cr = &countingReader{r: nc}
	c.br = bufio.NewReader(c.cr)
	c.unwatch = context.AfterFunc(ctx, func() { _ = nc.SetDeadline(time.Unix(1, 0)) })
	return nil
}

func (c *respClient) close() {
	if c.nc == nil {
		return
	}
	c.unwatch()
	c.nc.Close()
	c.nc = nil
}

// closedByServer waits up to d for the server to close the connection
// between commands (kvd closes connections at a seal, right after a reply
// or while they are idle). It reports true when the connection is
// finished: closed, reset, or sending bytes nobody asked for.
func (c *respClient) closedByServer(d time.Duration) bool {
	_ = c.nc.SetReadDeadline(time.Now().Add(d))
	_, err := c.br.Peek(1)
	var ne net.Error
	return err == nil || !errors.As(err, &ne) || !ne.Timeout()
}

// sendIfOpen writes b unless the peer already closed the connection
// (errClosedBeforeSend, nothing sent). The look and the write are two
// back-to-back system calls in one callback, so the window in which a
// close can slip between them is as small as it gets.
func sendIfOpen(nc net.Conn, b []byte) (int, error) {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return nc.Write(b)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return 0, err
	}
	sent, closed := 0, false
	var werr error
	err = rc.Write(func(fd uintptr) bool {
		if sent == 0 && peerClosedFD(int(fd)) {
			closed = true
			return true
		}
		n, e := unix.Write(int(fd), b[sent:])
		switch {
		case errors.Is(e, unix.EAGAIN), errors.Is(e, unix.EINTR):
			return false
		case e != nil:
			werr = os.NewSyscallError("write", e)
			return true
		}
		sent += n
		return sent == len(b)
	})
	switch {
	case closed:
		return 0, errClosedBeforeSend
	case err != nil:
		return sent, err
	}
	return sent, werr
}

// peerClosedFD peeks at a socket without blocking: true when the peer
// closed it (EOF), reset it, or sent bytes nobody asked for.
func peerClosedFD(fd int) bool {
	var b [1]byte
	_, _, err := unix.Recvfrom(fd, b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
	if err != nil {
		return !errors.Is(err, unix.EAGAIN) && !errors.Is(err, unix.EINTR)
	}
	return true // 0 bytes: EOF; more: bytes between replies
}

// do sends one command and reads its reply. replied says whether any byte
// of a reply arrived (false with an error: the server closed the
// connection under the command, having read none of it by kvd's contract).
func (c *respClient) do(args ...string) (rep respReply, replied bool, err error) {
	c.buf = appendCommand(c.buf[:0], args...)
	_ = c.nc.SetDeadline(time.Now().Add(demoRequestTimeout))
	if _, err := sendIfOpen(c.nc, c.buf); err != nil {
		return rep, false, err
	}
	before := c.cr.n
	rep, err = readReply(c.br)
	return rep, c.cr.n > before, err
}

// respWorker alternates SET of a unique key and GET of a recently
// acknowledged key (written over HTTP or RESP), one command at a time.
func (l *demoLoad) respWorker(id int) {
	c := &respClient{addr: l.respAddr}
	defer c.close()
	rng := rand.New(rand.NewPCG(uint64(2000+id), uint64(time.Now().UnixNano())))
	for seq := 0; seq < l.cfg.maxOps && !l.stopped(); seq++ {
		if !l.respReady(c) {
			continue
		}
		if seq%2 == 0 {
			l.respSet(c, demoKV{fmt.Sprintf("resp-%d-%d", id, seq), fmt.Sprintf("r%d.%d.%016x", id, seq, rng.Uint64())})
		} else {
			l.respGet(c, rng)
		}
	}
}

// respReady makes sure c has a connection the server has not closed. A
// close seen here happened between commands: the client reconnects and
// nothing failed.
func (l *demoLoad) respReady(c *respClient) bool {
	if c.nc == nil {
		if err := c.dial(l.ctx); err != nil {
			l.failed(&l.resp, "RESP connect", err)
			l.idle(10 * time.Millisecond)
			return false
		}
		return true
	}
	if c.closedByServer(l.cfg.respThink) {
		l.resp.moved.Add(1)
		c.close()
		return false
	}
	return true
}

// respSet writes one key; +OK is the acknowledgement (after fsync).
func (l *demoLoad) respSet(c *respClient, w demoKV) {
	rep, replied, err := c.do("SET", w.key, w.value)
	switch {
	case err != nil:
		l.respFailed(c, "SET "+w.key, err, replied, &w)
	case rep.kind == '+' && rep.text == "OK":
		l.acks.add(w)
		l.resp.writes.Add(1)
	default:
		l.respBadReply("SET "+w.key, rep)
	}
}

// respGet reads a recently acknowledged key: it must answer its value.
func (l *demoLoad) respGet(c *respClient, rng *rand.Rand) {
	w, ok := l.acks.recent(rng)
	if !ok {
		return
	}
	rep, replied, err := c.do("GET", w.key)
	switch {
	case err != nil:
		l.respFailed(c, "GET "+w.key, err, replied, nil)
	case rep.kind == '$' && rep.null:
		l.staleRead(fmt.Sprintf("RESP GET %s: nil after its write was acknowledged", w.key))
	case rep.kind == '$' && rep.text != w.value:
		l.staleRead(fmt.Sprintf("RESP GET %s: %q, acknowledged %q", w.key, rep.text, w.value))
	case rep.kind == '$':
		l.resp.reads.Add(1)
	default:
		l.respBadReply("GET "+w.key, rep)
	}
}

// respFailed drops the connection of a command that failed and counts
// it: not sent (moved), unanswered (no reply byte before the connection
// closed), or failed.
func (l *demoLoad) respFailed(c *respClient, what string, err error, replied bool, set *demoKV) {
	c.close()
	switch {
	case errors.Is(err, errClosedBeforeSend):
		l.resp.moved.Add(1)
	case isUnanswered(err, replied):
		l.unanswered(&l.resp, "RESP "+what, err, set)
	default:
		l.failed(&l.resp, "RESP "+what, err)
	}
}

// respBadReply counts an error reply or a reply of the wrong type.
func (l *demoLoad) respBadReply(what string, rep respReply) {
	class := failOther
	if rep.kind == '-' {
		class = failServerError
	}
	l.resp.failed[class].Add(1)
	l.problem("RESP %s: %s: reply %c%s", what, failClassNames[class], rep.kind, rep.text)
}
