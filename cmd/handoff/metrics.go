package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metricsServer serves /metrics from the supervisor's own registry.
type metricsServer struct {
	srv  *http.Server
	ln   net.Listener
	addr string // the bound address (the real port for ":0")
	done chan struct{}
}

// listenMetrics binds metrics_addr.
func listenMetrics(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("handoff: metrics_addr %s: %w", addr, err)
	}
	return ln, nil
}

// serveMetrics serves /metrics on ln (bound here, or carried through a
// self-upgrade) until close.
func serveMetrics(ln net.Listener, reg *prometheus.Registry, log *slog.Logger) *metricsServer {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	m := &metricsServer{
		srv:  &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second},
		ln:   ln,
		addr: ln.Addr().String(),
		done: make(chan struct{}),
	}
	go func() {
		defer close(m.done)
		if err := m.srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			log.Error("handoff.metrics", "err", err)
		}
	}()
	log.Info("handoff.metrics", "addr", m.addr)
	return m
}

// carriedMetricsFits reports whether a metrics listener carried through a
// self-upgrade still answers the configured address (the config file is
// read again by the new image and may have changed): the same port (any,
// for port 0) on the same host (all interfaces, when the config names
// none).
func carriedMetricsFits(cfgAddr string, ln net.Listener) bool {
	want, err := net.ResolveTCPAddr("tcp", cfgAddr)
	have, ok := ln.Addr().(*net.TCPAddr)
	if err != nil || !ok {
		return false
	}
	if want.Port != 0 && want.Port != have.Port {
		return false
	}
	if want.IP == nil || want.IP.IsUnspecified() {
		return have.IP.IsUnspecified() // all interfaces, as configured
	}
	return want.IP.Equal(have.IP)
}

func (m *metricsServer) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = m.srv.Shutdown(ctx)
	<-m.done
}

// counters reads the supervisor's counters from the registry, so that
// `handoff status` and /metrics always agree.
func counters(reg prometheus.Gatherer) countersJSON {
	var c countersJSON
	mfs, err := reg.Gather()
	if err != nil {
		return c
	}
	for _, mf := range mfs {
		var sum float64
		for _, m := range mf.GetMetric() {
			sum += m.GetCounter().GetValue()
		}
		switch mf.GetName() {
		case "handoff_handoffs_total":
			c.Handoffs = uint64(sum)
		case "handoff_rolled_back_total":
			c.Rollbacks = uint64(sum)
		case "handoff_incumbent_restarts_total":
			c.Restarts = uint64(sum)
		}
	}
	return c
}
