package wire

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/handoff-go/handoff/internal/fdpass"
)

// Received is one frame as Recv returns it.
type Received struct {
	// Msg is the decoded message.
	Msg Message
	// ID is the frame's handoff id (zero for Hello).
	ID ID
	// Version is the frame's protocol version.
	Version uint16
	// Files are the descriptors that came with a Listeners frame, in the
	// order of its names, close-on-exec. The caller owns and closes them.
	// Always empty for other messages.
	Files []*os.File
	// Cred is the sender's kernel credentials (SCM_CREDENTIALS), present
	// only when EnablePassCred was called; nil otherwise.
	Cred *unix.Ucred
}

// frameIn is a frame as read off the socket, before decoding.
type frameIn struct {
	version uint16
	payload []byte
	files   []*os.File
	cred    *unix.Ucred
}

// Recv reads the next frame before deadline and checks it against the
// session: before SetNegotiated only Hello, HelloAck and Abort in
// HelloFrameVersion frames are accepted; afterwards only frames with the
// negotiated version and id, and no handshake message.
//
// Errors: the peer closing at a frame boundary matches io.EOF; a missed
// deadline matches [ErrPeerTimeout] (and os.ErrDeadlineExceeded); every
// violation is a *ProtocolError matching [ErrProtocol]. After any error but
// a deadline missed before the first byte of a frame, the Conn is unusable
// for receiving and the session should be closed. Descriptors that came
// with a rejected frame are closed.
func (c *Conn) Recv(deadline time.Time) (Received, error) {
	if deadline.IsZero() {
		return Received{}, fmt.Errorf("%w: recv", ErrNoDeadline)
	}
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if c.rbroken != nil {
		return Received{}, fmt.Errorf("handoff: recv: connection unusable after an earlier error: %w", c.rbroken)
	}
	if err := c.c.SetReadDeadline(deadline); err != nil {
		return Received{}, fmt.Errorf("handoff: recv: %w", err)
	}
	c.got = 0
	rec, err := c.recv()
	if err != nil && !(c.got == 0 && errors.Is(err, ErrPeerTimeout)) {
		c.rbroken = err // mid-frame or a violation: the stream is lost
	}
	return rec, err
}

// recv reads, decodes and checks one frame; descriptors of a rejected frame
// are closed.
func (c *Conn) recv() (Received, error) {
	in, err := c.readFrame()
	if err != nil {
		return Received{}, err
	}
	rec, err := c.accept(in)
	if err != nil {
		fdpass.CloseAll(in.files)
		return Received{}, err
	}
	return rec, nil
}

// accept decodes a frame and applies the session and descriptor rules.
func (c *Conn) accept(in frameIn) (Received, error) {
	m, id, err := Decode(in.payload)
	if err != nil {
		return Received{}, err
	}
	if err := c.checkSession(m.Type(), in.version, id); err != nil {
		return Received{}, err
	}
	if err := checkFDs(m, len(in.files)); err != nil {
		return Received{}, &ProtocolError{Op: "recv", Err: err}
	}
	return Received{Msg: m, ID: id, Version: in.version, Files: in.files, Cred: in.cred}, nil
}

// checkSession applies the handshake, version and id rules to a frame.
func (c *Conn) checkSession(t Type, version uint16, id ID) error {
	s := c.session.Load()
	handshake := t == TypeHello || t == TypeHelloAck
	if (handshake || s == nil) && version != HelloFrameVersion {
		return protoErr("recv", ErrWrongVersion, "%s in a version %d frame, want %d", t, version, HelloFrameVersion)
	}
	switch {
	case s == nil && !handshake && t != TypeAbort:
		return protoErr("recv", ErrOutOfOrder, "%s before the handshake", t)
	case s == nil:
		return nil
	case handshake:
		return protoErr("recv", ErrOutOfOrder, "%s after the handshake", t)
	case version != s.version:
		return protoErr("recv", ErrWrongVersion, "%s in a version %d frame, session speaks %d", t, version, s.version)
	case id != s.id:
		return protoErr("recv", ErrWrongID, "%s carries handoff id %s, session id is %s", t, id, s.id)
	}
	return nil
}

// readFrame reads exactly one frame: the header, then exactly the payload,
// never a byte beyond, so that descriptors and credentials received on the
// way belong to this frame. On error it closes what it received.
func (c *Conn) readFrame() (in frameIn, err error) {
	defer func() {
		if err != nil {
			fdpass.CloseAll(in.files)
		}
	}()
	if err = c.readFull(c.hdr[:], &in, HeaderSize); err != nil {
		return in, err
	}
	n, version, err := ParseHeader(c.hdr)
	if err != nil {
		return in, err
	}
	in.version, in.payload = version, make([]byte, n)
	return in, c.readFull(in.payload, &in, HeaderSize+n)
}

// readFull fills buf, collecting control data into in and counting bytes in
// c.got. want is the frame size known so far, for error messages.
func (c *Conn) readFull(buf []byte, in *frameIn, want int) error {
	for off := 0; off < len(buf); {
		n, oobn, flags, _, err := c.c.ReadMsgUnix(buf[off:], c.oob)
		if cerr := in.addControl(c.oob[:max(oobn, 0)], flags); cerr != nil {
			return cerr
		}
		n = max(n, 0) // a failed recvmsg may report -1
		off += n
		c.got += n
		if err != nil {
			return c.recvErr(err, want)
		}
	}
	return nil
}

// recvErr classifies a read failure of a frame of want bytes.
func (c *Conn) recvErr(err error, want int) error {
	switch {
	case errors.Is(err, io.EOF) && c.got == 0:
		return fmt.Errorf("handoff: recv: peer closed the connection: %w", io.EOF)
	case errors.Is(err, io.EOF):
		return truncated(c.got, want)
	}
	return ioErr("recv", err)
}

// addControl collects one read's descriptors and credentials. Truncated
// control data, unparsable data, or credentials that change within a frame
// are violations; descriptors of this read are closed then, those of earlier
// reads by the caller.
func (in *frameIn) addControl(oob []byte, flags int) error {
	files, cred, err := fdpass.Parse(oob)
	if err != nil {
		return &ProtocolError{Op: "recv", Err: &causeError{ErrMalformed, err}}
	}
	in.files = append(in.files, files...)
	if flags&unix.MSG_CTRUNC != 0 {
		return protoErr("recv", ErrFDsTruncated, "control data cut short; the %d descriptors that arrived were closed", len(in.files))
	}
	if cred == nil {
		return nil
	}
	if in.cred != nil && *in.cred != *cred {
		return protoErr("recv", ErrMalformed, "frame written by two processes (pid %d and %d)", in.cred.Pid, cred.Pid)
	}
	in.cred = cred
	return nil
}
