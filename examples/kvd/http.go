package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/handoff-go/handoff/examples/kvd/store"
)

// routes is kvd's HTTP API.
func (s *server) routes() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("PUT /kv/{key}", s.handlePut)
	mux.HandleFunc("GET /kv/{key}", s.handleGet)
	mux.HandleFunc("GET /healthz", s.handleHealthz)
	mux.HandleFunc("GET /stats", s.handleStats)
	return mux
}

// putReply is the body of a successful PUT.
type putReply struct {
	Revision uint64 `json:"revision"`
}

// handlePut stores the body under the key and answers 200 with the
// revision, only once the write is durable.
func (s *server) handlePut(w http.ResponseWriter, r *http.Request) {
	value, err := io.ReadAll(http.MaxBytesReader(w, r.Body, store.MaxValueSize))
	if err != nil {
		httpError(w, fmt.Errorf("kvd: read body: %w", err))
		return
	}
	rev, err := s.put(r.Context(), r.PathValue("key"), value)
	if err != nil {
		httpError(w, err)
		return
	}
	w.Header().Set("Kvd-Revision", strconv.FormatUint(rev, 10))
	writeJSON(w, putReply{Revision: rev})
}

// handleGet answers the value (200) or 404.
func (s *server) handleGet(w http.ResponseWriter, r *http.Request) {
	v, ok := s.get(r.PathValue("key"))
	if !ok {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Write(v)
}

// handleHealthz answers 200 "ok", or 503 with the reason.
func (s *server) handleHealthz(w http.ResponseWriter, r *http.Request) {
	if err := s.health(); err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	io.WriteString(w, "ok\n")
}

func (s *server) handleStats(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, s.stats())
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

// httpError maps an error to its status. A store that is sealed, closed or
// read-only is a temporary condition (503 with Retry-After): the client
// should retry, and will reach the successor or the resumed incumbent.
func httpError(w http.ResponseWriter, err error) {
	code := http.StatusInternalServerError
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig), errors.Is(err, store.ErrTooLarge):
		code = http.StatusRequestEntityTooLarge
	case errors.Is(err, store.ErrKey):
		code = http.StatusBadRequest
	case errors.Is(err, store.ErrSealed), errors.Is(err, store.ErrClosed), errors.Is(err, store.ErrReadOnly):
		w.Header().Set("Retry-After", "1")
		code = http.StatusServiceUnavailable
	}
	http.Error(w, err.Error(), code)
}
