package test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"time"

	"github.com/handoff-go/handoff/internal/wire"
)

// rawPeer is a hand-driven connection to a control socket: the test crafts
// every frame with internal/wire and sees every byte the incumbent sends.
type rawPeer struct {
	c  *net.UnixConn
	id wire.ID // the session id after handshake
}

func dialRaw(path string) (*rawPeer, error) {
	c, err := net.DialTimeout("unix", path, 5*time.Second)
	if err != nil {
		return nil, err
	}
	return &rawPeer{c: c.(*net.UnixConn)}, nil
}

func (p *rawPeer) close() { p.c.Close() }

// recv reads one frame within limit and decodes it.
func (p *rawPeer) recv(limit time.Duration) (wire.Message, wire.ID, error) {
	_ = p.c.SetReadDeadline(time.Now().Add(limit))
	_, payload, err := wire.ReadFrame(p.c)
	if err != nil {
		return nil, wire.ID{}, err
	}
	return wire.Decode(payload)
}

// recvSkippingHeartbeats reads the next message that is not a Heartbeat.
func (p *rawPeer) recvSkippingHeartbeats(limit time.Duration) (wire.Message, error) {
	deadline := time.Now().Add(limit)
	for {
		m, _, err := p.recv(time.Until(deadline))
		if err != nil || m.Type() != wire.TypeHeartbeat {
			return m, err
		}
	}
}

// send encodes m in a frame of the given version with id and writes it.
func (p *rawPeer) send(version uint16, id wire.ID, m wire.Message) error {
	frame, err := wire.Encode(version, id, m)
	if err != nil {
		return err
	}
	return p.write(frame)
}

// sendSession sends m with the session's version and id.
func (p *rawPeer) sendSession(m wire.Message) error { return p.send(wire.MaxVersion, p.id, m) }

func (p *rawPeer) write(b []byte) error {
	_ = p.c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_, err := p.c.Write(b)
	return err
}

// hello reads the incumbent's Hello (it speaks first).
func (p *rawPeer) hello() (*wire.Hello, error) {
	m, _, err := p.recv(startWait)
	if err != nil {
		return nil, fmt.Errorf("waiting for Hello: %w", err)
	}
	h, ok := m.(*wire.Hello)
	if !ok {
		return nil, fmt.Errorf("first message %v, want Hello", m.Type())
	}
	return h, nil
}

// handshake reads Hello and answers HelloAck as role, with a fresh id.
func (p *rawPeer) handshake(role wire.Role) (*wire.Hello, error) {
	h, err := p.hello()
	if err != nil {
		return nil, err
	}
	if p.id, err = wire.NewID(); err != nil {
		return nil, err
	}
	ack := &wire.HelloAck{Version: wire.MaxVersion, Role: role, Capabilities: wire.DefaultCapabilities}
	return h, p.send(wire.HelloFrameVersion, p.id, ack)
}

// expectClosed waits until the incumbent closes the connection (EOF or a
// reset), reading and discarding what it still sends, and returns those
// bytes. It fails if the connection is still open after limit.
func (p *rawPeer) expectClosed(limit time.Duration) ([]byte, error) {
	_ = p.c.SetReadDeadline(time.Now().Add(limit))
	var got bytes.Buffer
	_, err := io.Copy(&got, p.c)
	var ne net.Error
	switch {
	case err == nil, errors.Is(err, syscall.ECONNRESET):
		return got.Bytes(), nil
	case errors.As(err, &ne) && ne.Timeout():
		return got.Bytes(), fmt.Errorf("the incumbent did not close the connection within %v", limit)
	}
	return got.Bytes(), err
}

// snapshot asks for the incumbent's Snapshot on a fresh connection: the
// proof that the control socket still serves a well-behaved peer.
func snapshot(path string) (*wire.Snapshot, error) {
	p, err := dialRaw(path)
	if err != nil {
		return nil, err
	}
	defer p.close()
	if _, err := p.handshake(wire.RoleClient); err != nil {
		return nil, err
	}
	if err := p.sendSession(&wire.SnapshotRequest{}); err != nil {
		return nil, err
	}
	m, err := p.recvSkippingHeartbeats(startWait)
	if err != nil {
		return nil, fmt.Errorf("waiting for Snapshot: %w", err)
	}
	s, ok := m.(*wire.Snapshot)
	if !ok {
		return nil, fmt.Errorf("answer %v, want Snapshot", m.Type())
	}
	return s, nil
}

// openFDs counts the descriptors a process has open.
func openFDs(pid int) (int, error) {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	return len(ents), err
}
