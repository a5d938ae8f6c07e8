package supervisor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	"github.com/handoff-go/handoff/internal/flock"
	"github.com/handoff-go/handoff/internal/journal"
	"github.com/handoff-go/handoff/internal/peer"
	"github.com/handoff-go/handoff/internal/sysx"
	"github.com/handoff-go/handoff/internal/wire"
)

// ResumeFromJournal is the first thing a supervisor does when it starts while
// a daemon may still live (after its own crash or upgrade). In order:
//
//  1. It removes an orphaned successor named in the journal: unless that
//     process owns the control socket path or the journal says Committed, it
//     is killed and waited for (found by pidfd and checked against the
//     recorded start time, so a reused pid is never hit). An orphan left
//     alive could take the lock in a later swap.
//  2. It looks for the incumbent that answers on the control socket (the
//     kernel names its pid), asks it for its listening sockets and takes
//     back the very same kernel sockets, so no accept queue is replaced and
//     no waiting connection is reset. The lock is never probed by taking it.
//  3. It adopts that process as the incumbent, watched through a pidfd.
//
// It reports whether an incumbent was adopted. When none answers, the caller
// binds its listeners (SetListeners) and cold-starts (Start). spec is what
// a crash restart of an adopted incumbent runs.
func (s *Supervisor) ResumeFromJournal(ctx context.Context, spec SpawnSpec) (bool, error) {
	s.excl.lock(kindStart)
	defer s.excl.unlock()
	rec, err := s.readJournal()
	if err != nil {
		return false, err
	}
	if err := s.removeOrphan(rec); err != nil {
		return false, err
	}
	pid, found, err := s.findIncumbent(ctx, rec)
	if err != nil || !found {
		return false, err
	}
	spec.Binary = binaryOf(rec, pid, spec.Binary)
	if err := s.adopt(ctx, pid, spec); err != nil {
		return false, err
	}
	return true, nil
}

// settleBudget bounds how long a restarted supervisor waits for the lock
// holder and the control path owner to agree.
const settleBudget = DefaultDeadline

// findIncumbent waits until the ground truth settles: the process that
// answers on the control socket path, which must also hold the data-dir
// lock when the data directory is known. In between, a committed successor
// may hold the lock but not have bound the path yet (the supervisor died
// after Commit), or a sealed incumbent may be about to take its lock back:
// adopting either side too early would leave the other unsupervised, and
// cold-starting would bind new sockets beside live ones.
func (s *Supervisor) findIncumbent(ctx context.Context, rec journal.Record) (int, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, settleBudget)
	defer cancel()
	for {
		owner, ownerErr := controlPeerPID(s.controlPath)
		holder := s.lockHolder()
		switch {
		case ownerErr == nil && (s.opts.dataDir == "" || holder == owner):
			return owner, true, nil
		case ownerErr != nil && holder == 0 && !committedSuccessorAlive(rec):
			s.logf().Info("handoff.recover", "incumbent", "none answers", "control", s.controlPath)
			return 0, false, nil
		}
		select {
		case <-ctx.Done():
			return s.unsettled(owner, ownerErr, holder)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// unsettled decides when the lock holder and the path owner never agreed:
// someone answering is adopted (it serves); a lock holder that never
// answers is an error an operator must see.
func (s *Supervisor) unsettled(owner int, ownerErr error, holder int) (int, bool, error) {
	if ownerErr == nil {
		s.logf().Warn("handoff.recover", "adopting", owner, "lock_holder", holder, "warning", "lock holder and control path owner differ")
		return owner, true, nil
	}
	return 0, false, fmt.Errorf("handoff: supervisor: pid %d holds the data-dir lock of %s but nothing answers on %s",
		holder, s.opts.dataDir, s.controlPath)
}

// lockHolder is the pid holding the data-dir lock, read from /proc/locks
// (never by taking the lock), or 0 when free or unknown.
func (s *Supervisor) lockHolder() int {
	if s.opts.dataDir == "" {
		return 0
	}
	pid, err := flock.Holder(s.opts.dataDir)
	if err != nil {
		return 0
	}
	return pid
}

// committedSuccessorAlive reports whether the journal says Committed and
// the successor it names still lives: it may yet bind the control path.
func committedSuccessorAlive(rec journal.Record) bool {
	if rec.Phase != journal.Committed || rec.SuccessorPID == 0 {
		return false
	}
	p, err := sysx.OpenProcess(rec.SuccessorPID, rec.SuccessorStart)
	if err != nil {
		return false
	}
	defer p.Close()
	return !p.Exited()
}

// binaryOf is what the adopted process pid runs, by the journal: the
// incumbent's binary, or the successor's when the successor is the one that
// answers (it committed). Otherwise the configured binary.
func binaryOf(rec journal.Record, pid int, configured string) string {
	switch {
	case pid == rec.IncumbentPID && rec.IncumbentBinary != "":
		return rec.IncumbentBinary
	case pid == rec.SuccessorPID && rec.Binary != "":
		return rec.Binary
	}
	return configured
}

func (s *Supervisor) readJournal() (journal.Record, error) {
	if s.opts.journalPath == "" {
		return journal.Record{Phase: journal.Idle}, nil
	}
	rec, err := journal.Read(s.opts.journalPath)
	if err != nil {
		return rec, fmt.Errorf("handoff: supervisor: read journal: %w", err)
	}
	s.logf().Info("handoff.recover", "journal_phase", rec.Phase, "incumbent", rec.IncumbentPID, "successor", rec.SuccessorPID)
	return rec, nil
}

// removeOrphan kills the successor of an interrupted swap, unless it is the
// rightful incumbent now (it owns the control path) or may have been told
// to commit (journal Committed: it either binds the path or exits on EOF).
func (s *Supervisor) removeOrphan(rec journal.Record) error {
	if rec.SuccessorPID == 0 || rec.Phase == journal.Idle || rec.Phase == journal.Committed {
		return nil
	}
	p, err := sysx.OpenProcess(rec.SuccessorPID, rec.SuccessorStart)
	if errors.Is(err, sysx.ErrProcessGone) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("handoff: supervisor: orphaned successor pid %d: %w", rec.SuccessorPID, err)
	}
	defer p.Close()
	if owner, err := controlPeerPID(s.controlPath); err == nil && owner == rec.SuccessorPID {
		return nil
	}
	s.logf().Warn("handoff.recover", "killing_orphan", rec.SuccessorPID, "journal_phase", rec.Phase)
	if err := p.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, sysx.ErrProcessGone) {
		return fmt.Errorf("handoff: supervisor: kill orphan %d: %w", rec.SuccessorPID, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return p.Wait(ctx)
}

// adopt takes the listeners back from the incumbent answering as pid,
// watches it through a pidfd and records it in the journal as the
// incumbent at rest.
func (s *Supervisor) adopt(ctx context.Context, pid int, spec SpawnSpec) error {
	start, err := sysx.ProcStartTime(pid)
	if err != nil {
		return fmt.Errorf("handoff: supervisor: incumbent pid %d: %w", pid, err)
	}
	proc, err := sysx.OpenProcess(pid, start)
	if err != nil {
		return fmt.Errorf("handoff: supervisor: incumbent pid %d: %w", pid, err)
	}
	ls, buildID, err := s.fetchListeners(ctx, pid)
	if err != nil {
		proc.Close()
		return err
	}
	g := adoptedGeneration(proc, spec, buildID)
	s.mu.Lock()
	old := s.listeners
	s.listeners = ls
	s.current = g
	s.mu.Unlock()
	closeListeners(old)
	s.logf().Info("handoff.adopt", "pid", pid, "listeners", listenerNames(ls), "build", buildID)
	return s.record(idleRecord(g))
}

func adoptedGeneration(proc *sysx.Process, spec SpawnSpec, buildID string) *generation {
	g := &generation{pid: proc.PID(), start: proc.StartTime(), binary: spec.Binary, buildID: buildID,
		spec: spec, startedAt: time.Now(), proc: proc, exited: make(chan struct{})}
	go func() {
		_ = proc.Wait(context.Background())
		reap(proc.PID())
		proc.Close()
		close(g.exited)
	}()
	return g
}

// fetchListeners asks the incumbent for duplicates of its listeners
// (ListenersRequest; the fds come back with SCM_RIGHTS).
func (s *Supervisor) fetchListeners(ctx context.Context, pid int) ([]Listener, string, error) {
	c, err := dialControl(ctx, s.controlPath)
	if err != nil {
		return nil, "", fmt.Errorf("handoff: supervisor: connect to incumbent: %w", err)
	}
	wc := wire.NewConn(c)
	defer wc.Close()
	if err := checkPeer(c, pid); err != nil {
		return nil, "", err
	}
	hello, err := clientHandshake(wc, wire.RoleSupervisor)
	if err != nil {
		return nil, "", err
	}
	if err := wc.Send(time.Now().Add(peer.Silence), &wire.ListenersRequest{}); err != nil {
		return nil, "", fmt.Errorf("handoff: supervisor: ListenersRequest: %w", err)
	}
	r, err := peer.Next(ctx, wc, time.Now().Add(peer.Silence))
	if err != nil {
		return nil, "", fmt.Errorf("handoff: supervisor: waiting for Listeners: %w", err)
	}
	m, ok := r.Msg.(*wire.Listeners)
	if !ok || len(m.Names) != len(r.Files) {
		for _, f := range r.Files {
			f.Close()
		}
		return nil, "", fmt.Errorf("handoff: supervisor: expected Listeners with one fd per name, got %v: %w", r.Msg.Type(), ErrProtocol)
	}
	ls := make([]Listener, len(m.Names))
	for i, name := range m.Names {
		ls[i] = Listener{Name: name, File: r.Files[i]}
	}
	return ls, hello.BuildID, nil
}

// clientHandshake reads the incumbent's Hello and answers HelloAck with a
// fresh id.
func clientHandshake(wc *wire.Conn, role wire.Role) (*wire.Hello, error) {
	r, err := wc.Recv(time.Now().Add(peer.Silence))
	if err != nil {
		return nil, fmt.Errorf("handoff: incumbent Hello: %w", err)
	}
	h, ok := r.Msg.(*wire.Hello)
	if !ok {
		return nil, fmt.Errorf("handoff: expected Hello, got %v: %w", r.Msg.Type(), ErrProtocol)
	}
	id, err := wire.NewID()
	if err != nil {
		return nil, err
	}
	return h, answerHello(wc, h, id, role)
}

// Listeners returns the names of the listening sockets the supervisor holds,
// in the order daemons receive them.
func (s *Supervisor) Listeners() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return listenerNames(s.listeners)
}

// SetListeners replaces the supervisor's listening sockets (in the order
// daemons will receive them). Sockets of the old set whose file is not in
// the new one are closed. The next spawn hands out the new set; a running
// incumbent keeps what it has until the next swap.
func (s *Supervisor) SetListeners(ls []Listener) error {
	if err := checkListenerNames(ls); err != nil {
		return err
	}
	s.mu.Lock()
	old := s.listeners
	s.listeners = ls
	s.mu.Unlock()
	keep := make(map[*os.File]bool, len(ls))
	for _, l := range ls {
		keep[l.File] = true
	}
	for _, l := range old {
		if !keep[l.File] {
			l.File.Close()
		}
	}
	return nil
}

// ListenerFile returns the supervisor's file for the named listener, or nil.
func (s *Supervisor) ListenerFile(name string) *os.File {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range s.listeners {
		if l.Name == name {
			return l.File
		}
	}
	return nil
}

func listenerNames(ls []Listener) []string {
	names := make([]string, len(ls))
	for i, l := range ls {
		names[i] = l.Name
	}
	return names
}

func closeListeners(ls []Listener) {
	for _, l := range ls {
		l.File.Close()
	}
}

// reap collects the exit status of an adopted process that is still our
// child (after the supervisor exec'd itself); for a process adopted after a
// supervisor crash it is a no-op (ECHILD).
func reap(pid int) {
	var ws syscall.WaitStatus
	_, _ = syscall.Wait4(pid, &ws, syscall.WNOHANG, nil)
}
