package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/handoff-go/handoff"
)

// deadlineListener is a listener whose Accept a deadline can interrupt:
// that is how Drain stops accepting without closing the socket.
type deadlineListener interface {
	net.Listener
	SetDeadline(time.Time) error
}

// pause is one Drain: the accept loop closes stopped when it has stopped
// accepting and waits for resume.
type pause struct{ stopped, resume chan struct{} }

// server answers every connection with "<pid> <build> <revision>". Its
// revision (requests answered over the life of the data directory) is the
// daemon's state: sealed to <data>/rev, read back by the next generation.
type server struct {
	ln    deadlineListener
	build string
	data  string
	rev   atomic.Uint64
	open  atomic.Int32
	wg    sync.WaitGroup

	mu    sync.Mutex
	pause *pause
}

func newServer(ls *handoff.Listeners, f flags) (*server, error) {
	ln, err := ls.Listener("http")
	if err != nil {
		return nil, err
	}
	dl, ok := ln.(deadlineListener)
	if !ok {
		ln.Close()
		return nil, fmt.Errorf("listener http (%T) has no SetDeadline", ln)
	}
	s := &server{ln: dl, build: f.build, data: f.data}
	return s, s.load()
}

func (s *server) revPath() string { return filepath.Join(s.data, "rev") }

// load opens the state from the data directory.
func (s *server) load() error {
	b, err := os.ReadFile(s.revPath())
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	s.rev.Store(n)
	return err
}

func (s *server) acceptLoop() {
	for {
		c, err := s.ln.Accept()
		if err == nil {
			s.wg.Add(1)
			go s.handle(c)
			continue
		}
		s.mu.Lock()
		p := s.pause
		s.mu.Unlock()
		if p == nil {
			return
		}
		close(p.stopped)
		<-p.resume
	}
}

func (s *server) handle(c net.Conn) {
	defer s.wg.Done()
	defer c.Close()
	s.open.Add(1)
	defer s.open.Add(-1)
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		if line == "\r\n" || line == "\n" {
			break
		}
	}
	body := fmt.Sprintf("%d %s %d\n", os.Getpid(), s.build, s.rev.Add(1))
	fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
}

// Drain stops accepting (the socket stays open: connections wait in its
// backlog) and waits for the requests in flight.
func (s *server) Drain(ctx context.Context) (handoff.DrainReport, error) {
	p := &pause{stopped: make(chan struct{}), resume: make(chan struct{})}
	s.mu.Lock()
	s.pause = p
	s.mu.Unlock()
	if err := s.ln.SetDeadline(time.Unix(1, 0)); err != nil {
		return handoff.DrainReport{}, err
	}
	select {
	case <-p.stopped:
	case <-ctx.Done():
		return handoff.DrainReport{}, ctx.Err()
	}
	s.wg.Wait()
	return handoff.DrainReport{AcceptClosed: true}, nil
}

// Seal writes the revision durably (temp file, fsync, rename).
func (s *server) Seal(ctx context.Context) (handoff.SealReport, error) {
	rev := s.rev.Load()
	tmp := s.revPath() + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return handoff.SealReport{}, err
	}
	_, err = fmt.Fprintf(f, "%d\n", rev)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, s.revPath())
	}
	return handoff.SealReport{LastRevisionPerShard: []uint64{rev}}, err
}

// ResumeAfterAbort reopens the state from the data directory and accepts
// again.
func (s *server) ResumeAfterAbort(ctx context.Context) error {
	if err := s.load(); err != nil {
		return err
	}
	s.mu.Lock()
	p := s.pause
	s.pause = nil
	s.mu.Unlock()
	if p == nil {
		return nil
	}
	if err := s.ln.SetDeadline(time.Time{}); err != nil {
		return err
	}
	close(p.resume)
	return nil
}

// SnapshotState reports one shard at the current revision.
func (s *server) SnapshotState() handoff.StateSnapshot {
	return handoff.StateSnapshot{ShardCount: 1, OpenConns: uint32(s.open.Load()), LastRevisionPerShard: []uint64{s.rev.Load()}}
}
