package supervisor

import (
	"context"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/handoff-go/handoff/internal/journal"
	"github.com/handoff-go/handoff/internal/sysx"
	"github.com/handoff-go/handoff/internal/wire"
)

// promote makes n the incumbent and old a draining generation that must exit
// within the exit grace.
func (s *Supervisor) promote(n, old *generation) {
	s.mu.Lock()
	s.current = n
	s.draining = append(s.draining, old)
	s.mu.Unlock()
	go s.retire(old)
}

// retire waits for an old incumbent to exit after Commit and stops it if it
// overstays its grace.
func (s *Supervisor) retire(g *generation) {
	select {
	case <-g.exited:
	case <-time.After(s.opts.exitGrace):
		s.logf().Warn("handoff.retire", "pid", g.pid, "warning", "old incumbent overstayed its exit grace; stopping it")
		g.kill(s.opts.killGrace)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, d := range s.draining {
		if d == g {
			s.draining = append(s.draining[:i], s.draining[i+1:]...)
			break
		}
	}
}

// evictDraining stops the oldest draining generations while there are as
// many as the cap allows, before a new swap adds one more.
func (s *Supervisor) evictDraining() {
	for {
		s.mu.Lock()
		if len(s.draining) < s.opts.maxDraining || len(s.draining) == 0 {
			s.mu.Unlock()
			return
		}
		oldest := s.draining[0]
		s.mu.Unlock()
		s.logf().Warn("handoff.retire", "pid", oldest.pid, "warning", "too many draining generations; stopping the oldest")
		oldest.kill(s.opts.killGrace)
		s.mu.Lock()
		if len(s.draining) > 0 && s.draining[0] == oldest {
			s.draining = s.draining[1:]
		}
		s.mu.Unlock()
	}
}

// Draining returns the pids of old generations still exiting after Commit.
func (s *Supervisor) Draining() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	pids := make([]int, 0, len(s.draining))
	for _, g := range s.draining {
		pids = append(pids, g.pid)
	}
	return pids
}

func (s *Supervisor) isCurrentGone() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.current == nil || s.current.hasExited()
}

// dialControl connects to the control socket, within ctx.
func dialControl(ctx context.Context, path string) (*net.UnixConn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, err
	}
	return c.(*net.UnixConn), nil
}

// controlPeerPID returns the pid of the process answering on the control
// socket, from the kernel (SO_PEERCRED).
func controlPeerPID(path string) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	c, err := dialControl(ctx, path)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	cred, err := sysx.PeerCred(c)
	if err != nil {
		return 0, err
	}
	return int(cred.Pid), nil
}

// checkPeer verifies from the kernel that the control socket is answered by
// the expected process, running as our uid or root.
func checkPeer(c *net.UnixConn, pid int) error {
	cred, err := sysx.PeerCred(c)
	if err != nil {
		return err
	}
	if !sysx.TrustedUID(cred.Uid) {
		return fmt.Errorf("handoff: control socket answered by uid %d, not %d or root", cred.Uid, os.Geteuid())
	}
	if pid != 0 && int(cred.Pid) != pid {
		return fmt.Errorf("handoff: control socket answered by pid %d, expected incumbent pid %d", cred.Pid, pid)
	}
	return nil
}

// Start cold-starts the first incumbent: it spawns spec with the listeners
// and without a predecessor, and returns once the daemon answers on its
// control socket (or fails if it exits first).
func (s *Supervisor) Start(ctx context.Context, spec SpawnSpec) error {
	s.excl.lock(kindStart)
	defer s.excl.unlock()
	if err := s.ctxErr(ctx); err != nil {
		return err
	}
	if !s.isCurrentGone() {
		return fmt.Errorf("handoff: supervisor: an incumbent (pid %d) is already running", s.Incumbent())
	}
	return s.startLocked(ctx, spec)
}

func (s *Supervisor) startLocked(ctx context.Context, spec SpawnSpec) error {
	g, err := s.spawn(spec, false)
	if err != nil {
		return err
	}
	if err := s.awaitControl(ctx, g, spec.deadline()); err != nil {
		g.kill(s.opts.killGrace)
		return err
	}
	s.mu.Lock()
	s.current = g
	s.mu.Unlock()
	s.logf().Info("handoff.coldstart", "pid", g.pid, "binary", g.binary)
	return s.record(idleRecord(g))
}

// awaitControl waits until g answers on the control socket.
func (s *Supervisor) awaitControl(ctx context.Context, g *generation, budget time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, budget)
	defer cancel()
	for {
		if pid, err := controlPeerPID(s.controlPath); err == nil && pid == g.pid {
			g.buildID = helloBuildID(ctx, s.controlPath)
			return nil
		}
		select {
		case <-g.exited:
			return fmt.Errorf("handoff: daemon pid %d (%s) exited before binding %s: %s", g.pid, g.binary, s.controlPath, g.exitStatus())
		case <-ctx.Done():
			return fmt.Errorf("handoff: daemon pid %d did not bind %s: %w", g.pid, s.controlPath, ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// Stop asks the incumbent to stop gracefully (SIGTERM: it drains, seals and
// exits) and waits for it, up to grace, then kills it. Old generations still
// exiting are stopped too.
func (s *Supervisor) Stop(grace time.Duration) {
	s.excl.lock(kindStart)
	defer s.excl.unlock()
	s.mu.Lock()
	gens := append([]*generation{s.current}, s.draining...)
	s.current, s.draining = nil, nil
	s.mu.Unlock()
	for _, g := range gens {
		if g != nil {
			g.kill(grace)
		}
	}
}

// helloBuildID reads the build id from the incumbent's Hello, best effort:
// a cold-started daemon says who it is only there.
func helloBuildID(ctx context.Context, path string) string {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	c, err := dialControl(ctx, path)
	if err != nil {
		return ""
	}
	wc := wire.NewConn(c)
	defer wc.Close()
	r, err := wc.Recv(time.Now().Add(time.Second))
	if err != nil {
		return ""
	}
	if h, ok := r.Msg.(*wire.Hello); ok {
		return h.BuildID
	}
	return ""
}

// idleRecord is the journal at rest: the incumbent and what it runs.
func idleRecord(g *generation) journal.Record {
	return journal.Record{Phase: journal.Idle, IncumbentPID: g.pid, IncumbentStart: g.start, IncumbentBinary: g.binary}
}
