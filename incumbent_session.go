package handoff

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"github.com/handoff-go/handoff/internal/peer"
	"github.com/handoff-go/handoff/internal/sessioncap"
	"github.com/handoff-go/handoff/internal/sysx"
	"github.com/handoff-go/handoff/internal/wire"
)

// ctlSession is one connection on the control socket, after the handshake.
type ctlSession struct {
	inc  *Incumbent
	wc   *wire.Conn
	role wire.Role
	caps []string
}

// session serves one control connection: the peer's uid is checked from the
// kernel, the incumbent says Hello, and then answers requests until the peer
// hangs up or stays silent past the liveness limit.
func (inc *Incumbent) session(c *net.UnixConn, slot *sessioncap.Slot) {
	log := inc.opts.logger
	if err := checkPeerUID(c); err != nil {
		log.Warn("handoff.reject", "err", err)
		return
	}
	s := &ctlSession{inc: inc, wc: wire.NewConn(c)}
	if err := s.handshake(); err != nil {
		log.Debug("handoff.session", "err", err)
		return
	}
	slot.Vouch()
	for {
		r, err := peer.Next(context.Background(), s.wc, time.Time{})
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				log.Debug("handoff.session", "err", err)
			}
			return
		}
		if !s.dispatch(r) {
			return
		}
	}
}

// checkPeerUID admits only peers running as our own uid or root.
func checkPeerUID(c *net.UnixConn) error {
	cred, err := sysx.PeerCred(c)
	if err != nil {
		return fmt.Errorf("handoff: control peer credentials: %w", err)
	}
	if !sysx.TrustedUID(cred.Uid) {
		return fmt.Errorf("handoff: control peer pid %d runs as uid %d, not %d or root: %w",
			cred.Pid, cred.Uid, os.Geteuid(), ErrPeerRejected)
	}
	return nil
}

func (s *ctlSession) handshake() error {
	if err := s.wc.Send(time.Now().Add(peer.Silence), ourHello(wire.RoleIncumbent, s.inc.opts.buildID)); err != nil {
		return err
	}
	r, err := s.wc.Recv(time.Now().Add(peer.Silence))
	if err != nil {
		return err
	}
	ack, ok := r.Msg.(*wire.HelloAck)
	if !ok {
		return fmt.Errorf("handoff: expected HelloAck, got %v: %w", r.Msg.Type(), ErrProtocol)
	}
	if err := checkChosenVersion("peer", ack.Version); err != nil {
		return err
	}
	s.wc.SetNegotiated(ack.Version, r.ID)
	s.role = ack.Role
	s.caps = wire.IntersectCaps(wire.DefaultCapabilities, ack.Capabilities)
	return nil
}

// dispatch answers one request and reports whether the session goes on.
func (s *ctlSession) dispatch(r wire.Received) bool {
	switch m := r.Msg.(type) {
	case *wire.SnapshotRequest:
		return s.wc.Send(time.Now().Add(peer.Silence), s.inc.snapshot()) == nil
	case *wire.ListenersRequest:
		return s.sendListeners() == nil
	case *wire.PrepareHandoff:
		if s.role != wire.RoleSupervisor {
			s.inc.opts.logger.Warn("handoff.reject", "reason", "PrepareHandoff from a non-supervisor peer", "role", s.role)
			return false
		}
		s.inc.runSwap(s, m)
		return false
	}
	s.inc.opts.logger.Warn("handoff.reject", "reason", "unexpected message outside a swap", "type", r.Msg.Type())
	return false
}

func (inc *Incumbent) snapshot() *wire.Snapshot {
	st := inc.d.SnapshotState()
	m := &wire.Snapshot{
		PID:                  int32(os.Getpid()),
		BuildID:              inc.opts.buildID,
		StartedUnixMillis:    inc.started.UnixMilli(),
		ShardCount:           st.ShardCount,
		OpenConns:            st.OpenConns,
		LastRevisionPerShard: st.LastRevisionPerShard,
	}
	if inc.opts.listeners != nil {
		m.Listeners = inc.opts.listeners.Names()
	}
	return m
}

// sendListeners hands duplicates of every kept listener to a restarted
// supervisor. The duplicates are closed here once sent: the receiver gets its
// own copies from the kernel.
func (s *ctlSession) sendListeners() error {
	var (
		names []string
		files []*os.File
	)
	if ls := s.inc.opts.listeners; ls != nil {
		var err error
		if names, files, err = ls.duplicates(); err != nil {
			return err
		}
	}
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	return s.wc.Send(time.Now().Add(peer.Silence), &wire.Listeners{Names: names}, files...)
}
