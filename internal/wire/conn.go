package wire

import (
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/handoff-go/handoff/internal/fdpass"
	"github.com/handoff-go/handoff/internal/sysx"
)

// Conn is one protocol session on a connected Unix stream socket (the
// control socket or the successor's socketpair).
//
// Send is safe from several goroutines at once (one frame is written at a
// time, whole). Recv is for a single reader; concurrent calls are
// serialised. Every Send and Recv takes a deadline, and a zero deadline is
// refused with [ErrNoDeadline].
//
// Descriptors: Send borrows the files it passes (the caller closes them when
// it likes after Send returns); Recv hands the received files of a Listeners
// frame to the caller, who must close them, and closes every other
// descriptor itself.
type Conn struct {
	c       *net.UnixConn
	session atomic.Pointer[session]

	wmu     sync.Mutex
	wbroken error // set when a frame was only partly written

	rmu     sync.Mutex
	rbroken error // set when a Recv failed mid-frame or on a violation
	got     int   // bytes of the current frame read so far
	hdr     [HeaderSize]byte
	oob     []byte

	closeOnce sync.Once
	closeErr  error
}

// session is the state fixed by the handshake.
type session struct {
	version uint16
	id      ID
}

// NewConn wraps c. The Conn owns c from now on: Close closes it.
func NewConn(c *net.UnixConn) *Conn {
	return &Conn{c: c, oob: make([]byte, fdpass.OOBSize)}
}

// SetNegotiated fixes the session's protocol version and handoff id after
// the handshake. From then on Send frames every message except Hello and
// HelloAck with this version and id, and Recv rejects frames with another
// version or id and any further Hello or HelloAck.
//
// The side that answers Hello calls it before sending HelloAck, because the
// HelloAck frame already carries the new id. The side that sent Hello calls
// it after receiving HelloAck (with the acknowledged version, once it has
// checked that version is in its own range, and the frame's id). To refuse a
// Hello whose versions it cannot speak, the answering side calls
// SetNegotiated(HelloFrameVersion, freshID), sends Abort and closes.
func (c *Conn) SetNegotiated(version uint16, id ID) {
	c.session.Store(&session{version: version, id: id})
}

// Negotiated returns the session's version and id, and whether
// SetNegotiated was called.
func (c *Conn) Negotiated() (version uint16, id ID, ok bool) {
	s := c.session.Load()
	if s == nil {
		return 0, ID{}, false
	}
	return s.version, s.id, true
}

// Send writes m as one frame before deadline. Files may only accompany a
// Listeners message, one per name in the same order; they travel as
// SCM_RIGHTS in the same sendmsg as the frame's first bytes. A write that
// misses the deadline fails with an error matching [ErrPeerTimeout]; a frame
// cut short by an error leaves the Conn unusable for sending.
func (c *Conn) Send(deadline time.Time, m Message, files ...*os.File) error {
	if deadline.IsZero() {
		return fmt.Errorf("%w: send", ErrNoDeadline)
	}
	frame, err := c.encode(m, files)
	if err != nil {
		return err
	}
	oob, err := fdpass.Rights(files)
	if err != nil {
		return err
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	err = c.write(deadline, m.Type(), frame, oob)
	runtime.KeepAlive(files)
	return err
}

// encode frames m with the session's version and id (Hello and HelloAck
// always use HelloFrameVersion; Hello never carries an id) and checks that
// files may go with it.
func (c *Conn) encode(m Message, files []*os.File) ([]byte, error) {
	if m == nil {
		return nil, errors.New("handoff: send: nil message")
	}
	if err := checkFDs(m, len(files)); err != nil {
		return nil, &ProtocolError{Op: "send", Err: err}
	}
	version, id := HelloFrameVersion, ID{}
	if s := c.session.Load(); s != nil && m.Type() != TypeHello {
		id = s.id
		if m.Type() != TypeHelloAck {
			version = s.version
		}
	}
	return Encode(version, id, m)
}

// write sends one frame, attaching oob to its first bytes. It must be
// called with wmu held.
func (c *Conn) write(deadline time.Time, t Type, frame, oob []byte) error {
	if c.wbroken != nil {
		return fmt.Errorf("handoff: send %s: connection unusable after an earlier partial write: %w", t, c.wbroken)
	}
	if err := c.c.SetWriteDeadline(deadline); err != nil {
		return fmt.Errorf("handoff: send %s: %w", t, err)
	}
	n, _, err := c.c.WriteMsgUnix(frame, oob, nil)
	n = max(n, 0) // a failed sendmsg may report -1
	if err == nil && n < len(frame) {
		var m int
		m, err = c.c.Write(frame[n:]) // the descriptors went with the first part
		n += m
	}
	if err == nil {
		return nil
	}
	err = ioErr("send "+t.String(), err)
	if n > 0 {
		c.wbroken = err
	}
	return err
}

// checkFDs enforces that only a Listeners message carries descriptors, one
// per name.
func checkFDs(m Message, n int) error {
	l, ok := m.(*Listeners)
	switch {
	case ok && len(l.Names) != n:
		return fmt.Errorf("%w: Listeners names %d listeners but carries %d descriptors",
			ErrUnexpectedFDs, len(l.Names), n)
	case !ok && n > 0:
		return fmt.Errorf("%w: %s may not carry descriptors, got %d", ErrUnexpectedFDs, m.Type(), n)
	}
	return nil
}

// ioErr wraps an I/O error of op: a missed deadline matches ErrPeerTimeout.
func ioErr(op string, err error) error {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return fmt.Errorf("%w: %s: %w", ErrPeerTimeout, op, err)
	}
	return fmt.Errorf("handoff: %s: %w", op, err)
}

// EnablePassCred turns on SO_PASSCRED, so every received frame reports the
// sender's kernel credentials in [Received].Cred. The supervisor enables it
// on its end of the successor's socketpair, where it is the only reliable
// way to learn the writer's pid (SO_PEERCRED there names the pair's
// creator).
func (c *Conn) EnablePassCred() error { return fdpass.EnablePassCred(c.c) }

// PeerCred returns SO_PEERCRED: on a path socket (control, trigger), the
// peer's pid, uid and gid as of its connect or listen call.
func (c *Conn) PeerCred() (*unix.Ucred, error) { return sysx.PeerCred(c.c) }

// Raw returns the underlying socket, for socket options this type does not
// cover. Reading or writing it directly breaks framing.
func (c *Conn) Raw() *net.UnixConn { return c.c }

// Close closes the socket. It is idempotent; later calls return the first
// result. A Recv or Send blocked in another goroutine returns an error.
func (c *Conn) Close() error {
	c.closeOnce.Do(func() {
		if err := c.c.Close(); err != nil {
			c.closeErr = fmt.Errorf("handoff: close wire connection: %w", err)
		}
	})
	return c.closeErr
}
