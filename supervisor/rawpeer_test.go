package supervisor

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/handoff-go/handoff/internal/listenenv"
	"github.com/handoff-go/handoff/internal/peer"
	"github.com/handoff-go/handoff/internal/wire"
)

// envRawMode tells the raw successor how to break the protocol.
const envRawMode = "TESTR_MODE"

// Modes of the raw successor. Each one speaks the protocol correctly up to
// Begin (except "version", which fails the handshake) and then misbehaves:
//
//	version       Hello offers only versions 7..9
//	wrong-id      Ready framed with another handoff id
//	out-of-order  SealComplete instead of Ready
//	big-frame     a frame header announcing 2 MiB
//	garbage       random bytes
//	silent        nothing at all, not even heartbeats
func roleRawSuccessor() int {
	mode := os.Getenv(envRawMode)
	wc, uc, err := inheritedWire()
	if err != nil {
		fmt.Fprintln(os.Stderr, "raw-successor:", err)
		return 2
	}
	defer wc.Close()
	hello := &wire.Hello{Role: wire.RoleSuccessor, PID: int32(os.Getpid()), BuildID: "raw-" + mode,
		MinVersion: wire.MinVersion, MaxVersion: wire.MaxVersion, Capabilities: wire.DefaultCapabilities}
	if mode == "version" {
		hello.MinVersion, hello.MaxVersion = 7, 9
	}
	if err := wc.Send(time.Now().Add(peer.Silence), hello); err != nil {
		return 1
	}
	r, err := wc.Recv(time.Now().Add(time.Minute))
	if err != nil {
		fmt.Fprintln(os.Stderr, "raw-successor: no HelloAck:", err)
		return 1
	}
	ack, ok := r.Msg.(*wire.HelloAck)
	if !ok {
		fmt.Fprintln(os.Stderr, "raw-successor: got", r.Msg.Type())
		return 1
	}
	wc.SetNegotiated(ack.Version, r.ID)
	if err := waitBegin(wc); err != nil {
		fmt.Fprintln(os.Stderr, "raw-successor: no Begin:", err)
		return 1
	}
	misbehave(mode, wc, uc, ack.Version)
	_, _ = io.Copy(io.Discard, uc) // until the supervisor hangs up or kills us
	return 0
}

// inheritedWire wraps the socketpair end named by HANDOFF_SOCK_FD.
func inheritedWire() (*wire.Conn, *net.UnixConn, error) {
	fd, err := strconv.Atoi(os.Getenv(listenenv.VarSockFD))
	if err != nil {
		return nil, nil, err
	}
	f := os.NewFile(uintptr(fd), "socketpair")
	defer f.Close()
	c, err := net.FileConn(f)
	if err != nil {
		return nil, nil, err
	}
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return nil, nil, errors.New("not a unix socket")
	}
	return wire.NewConn(uc), uc, nil
}

func waitBegin(wc *wire.Conn) error {
	for {
		r, err := wc.Recv(time.Now().Add(time.Minute))
		if err != nil {
			return err
		}
		switch r.Msg.Type() {
		case wire.TypeHeartbeat:
			continue
		case wire.TypeBegin:
			return nil
		}
		return fmt.Errorf("got %v", r.Msg.Type())
	}
}

func misbehave(mode string, wc *wire.Conn, uc *net.UnixConn, version uint16) {
	deadline := time.Now().Add(peer.Silence)
	switch mode {
	case "wrong-id":
		other, _ := wire.NewID()
		wc.SetNegotiated(version, other)
		_ = wc.Send(deadline, &wire.Ready{HealthzOK: true, AdvertisedRevisionPerShard: []uint64{1 << 40}})
	case "out-of-order":
		_ = wc.Send(deadline, &wire.SealComplete{LastRevisionPerShard: []uint64{1}})
	case "big-frame":
		_, _ = uc.Write(oversizedHeader())
	case "garbage":
		_, _ = uc.Write(garbageBytes())
	}
}

// oversizedHeader is a frame header whose length announces 2 MiB, over the
// 1 MiB limit, followed by a little of the promised body.
func oversizedHeader() []byte {
	b := binary.LittleEndian.AppendUint32(nil, 2<<20)
	b = binary.LittleEndian.AppendUint16(b, wire.MaxVersion)
	return append(b, make([]byte, 64)...)
}

// garbageBytes is a fixed, reproducible junk sequence: a plausible length
// and version, then bytes that are not a CBOR map.
func garbageBytes() []byte {
	b := binary.LittleEndian.AppendUint32(nil, 40)
	b = binary.LittleEndian.AppendUint16(b, wire.MaxVersion)
	for i := range 38 {
		b = append(b, byte(0xff-i*7))
	}
	return b
}

// fakeSupervisor is a hand-driven supervisor session on the incumbent's
// control socket, in the test process: the test decides every byte.
type fakeSupervisor struct {
	t     *testing.T
	uc    *net.UnixConn
	wc    *wire.Conn
	hello *wire.Hello
	id    wire.ID
}

// dialFake connects to the control socket and reads the incumbent's Hello.
func dialFake(t *testing.T, path string) *fakeSupervisor {
	t.Helper()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatalf("dial control socket: %v", err)
	}
	uc := c.(*net.UnixConn)
	f := &fakeSupervisor{t: t, uc: uc, wc: wire.NewConn(uc)}
	t.Cleanup(func() { f.wc.Close() })
	r, err := f.wc.Recv(time.Now().Add(waitLimit))
	if err != nil {
		t.Fatalf("incumbent Hello: %v", err)
	}
	h, ok := r.Msg.(*wire.Hello)
	if !ok {
		t.Fatalf("incumbent said %v first, want Hello", r.Msg.Type())
	}
	f.hello = h
	return f
}

// ack completes the handshake with a fresh handoff id.
func (f *fakeSupervisor) ack(version uint16) {
	f.t.Helper()
	id, err := wire.NewID()
	if err != nil {
		f.t.Fatal(err)
	}
	f.id = id
	f.wc.SetNegotiated(version, id)
	err = f.wc.Send(time.Now().Add(peer.Silence), &wire.HelloAck{Version: version, Role: wire.RoleSupervisor,
		Capabilities: wire.DefaultCapabilities})
	if err != nil {
		f.t.Fatalf("HelloAck: %v", err)
	}
}

func (f *fakeSupervisor) send(m wire.Message) {
	f.t.Helper()
	if err := f.wc.Send(time.Now().Add(peer.Silence), m); err != nil {
		f.t.Fatalf("send %v: %v", m.Type(), err)
	}
}

// sendWithID frames m with another handoff id than the session's.
func (f *fakeSupervisor) sendWithID(m wire.Message) {
	f.t.Helper()
	other, _ := wire.NewID()
	frame, err := wire.Encode(wire.MaxVersion, other, m)
	if err != nil {
		f.t.Fatal(err)
	}
	f.raw(frame)
}

func (f *fakeSupervisor) raw(b []byte) {
	f.t.Helper()
	_ = f.uc.SetWriteDeadline(time.Now().Add(peer.Silence))
	if _, err := f.uc.Write(b); err != nil {
		f.t.Fatalf("write: %v", err)
	}
}

// next reads the next message that is not a heartbeat.
func (f *fakeSupervisor) next() (wire.Message, error) {
	for {
		r, err := f.wc.Recv(time.Now().Add(waitLimit))
		if err != nil {
			return nil, err
		}
		if r.Msg.Type() != wire.TypeHeartbeat {
			return r.Msg, nil
		}
	}
}

// expectHangUp asserts the incumbent closes the session without sending
// anything but heartbeats.
func (f *fakeSupervisor) expectHangUp() {
	f.t.Helper()
	m, err := f.next()
	if err == nil {
		f.t.Fatalf("incumbent answered %v, want it to close the session", m.Type())
	}
	// EOF, or a reset when the incumbent closed with our bytes unread.
	if !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) {
		f.t.Fatalf("incumbent session ended with %v, want it closed", err)
	}
}

// prepare sends PrepareHandoff and expects Drained.
func (f *fakeSupervisor) prepare(deadline, grace time.Duration) {
	f.t.Helper()
	f.send(&wire.PrepareHandoff{SuccessorPID: 1, DeadlineMillis: uint64(deadline.Milliseconds()),
		DrainGraceMillis: uint64(grace.Milliseconds())})
	m, err := f.next()
	if err != nil {
		f.t.Fatalf("waiting for Drained: %v", err)
	}
	if m.Type() != wire.TypeDrained {
		f.t.Fatalf("incumbent answered %v to PrepareHandoff, want Drained", m.Type())
	}
}

// roleForeignClient dials the control socket (run under another uid) and
// prints what happened: "dial-error ...", "hello", or "closed ...".
func roleForeignClient() int {
	c, err := net.Dial("unix", os.Getenv(envControl))
	if err != nil {
		fmt.Printf("dial-error %v\n", err)
		return 0
	}
	wc := wire.NewConn(c.(*net.UnixConn))
	defer wc.Close()
	r, err := wc.Recv(time.Now().Add(30 * time.Second))
	if err != nil {
		fmt.Printf("closed %v\n", err)
		return 0
	}
	fmt.Printf("hello %v\n", r.Msg.Type())
	return 0
}
