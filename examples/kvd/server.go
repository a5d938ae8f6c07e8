package main

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/handoff-go/handoff/examples/kvd/store"
	"github.com/handoff-go/handoff/httpdrain"
)

// server is kvd's serving part: the store, the HTTP and RESP front ends,
// and (drain.go) the Drainable that hands them off. main builds it after
// the handoff role is settled; tests build it directly.
type server struct {
	cfg     config
	log     *slog.Logger
	started time.Time

	cur     atomic.Pointer[store.Store]
	writeMu sync.RWMutex // held shared by writes, exclusively to swap the store

	http    *httpdrain.Server
	resp    *respServer
	serving sync.WaitGroup // the HTTP Serve goroutines
}

// newServer wraps an open store. Nothing is served until start.
func newServer(cfg config, log *slog.Logger, st *store.Store) *server {
	s := &server{cfg: cfg, log: log, started: time.Now()}
	s.cur.Store(st)
	s.http = httpdrain.New(&http.Server{
		Handler:           s.routes(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	})
	s.resp = newRESPServer(s.respCommand, log, defaultRESPTimeouts)
	return s
}

// start serves HTTP on httpLn and RESP on respLn; either may be nil, not
// both.
func (s *server) start(httpLn, respLn net.Listener) error {
	if httpLn == nil && respLn == nil {
		return errNoListeners
	}
	if respLn != nil {
		if err := s.resp.serve(respLn); err != nil {
			return err
		}
	}
	if httpLn != nil {
		s.serving.Go(func() {
			if err := s.http.Serve(httpLn); !errors.Is(err, http.ErrServerClosed) {
				s.log.Error("kvd: http listener failed", "err", err)
			}
		})
	}
	return nil
}

// close stops serving at once and closes the store (without a footer
// unless Seal already wrote one). It is for the end of the process.
func (s *server) close() {
	if err := s.http.Close(); err != nil {
		s.log.Warn("kvd: close http", "err", err)
	}
	s.serving.Wait()
	s.resp.close()
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if err := s.store().Close(); err != nil {
		s.log.Warn("kvd: close store", "err", err)
	}
}

func (s *server) store() *store.Store { return s.cur.Load() }

// put writes through the current store; it returns once the write is
// durable.
func (s *server) put(ctx context.Context, key string, value []byte) (uint64, error) {
	s.writeMu.RLock()
	defer s.writeMu.RUnlock()
	return s.store().Put(ctx, key, value)
}

func (s *server) get(key string) ([]byte, bool) { return s.store().Get(key) }

// health returns why kvd should not be sent traffic, or nil: a failed,
// closed or sealed store cannot take writes.
func (s *server) health() error {
	if s.cfg.faults.unhealthy {
		return errUnhealthyFault
	}
	return s.store().WriteErr()
}

// stats is the body of GET /stats.
type stats struct {
	PID           int     `json:"pid"`
	BuildID       string  `json:"build_id"`
	Revision      uint64  `json:"revision"`
	UptimeSeconds float64 `json:"uptime_seconds"`
	Keys          int     `json:"keys"`
	Sealed        bool    `json:"sealed"`
}

func (s *server) stats() stats {
	st := s.store()
	return stats{
		PID: os.Getpid(), BuildID: s.cfg.buildID, Revision: st.LastRevision(),
		UptimeSeconds: time.Since(s.started).Seconds(), Keys: st.Len(), Sealed: st.Sealed(),
	}
}
