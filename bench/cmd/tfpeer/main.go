// Command tfpeer is the peer the benchmark compares handoff with: an HTTP
// server upgraded by github.com/cloudflare/tableflip v1.2.3 in its
// documented style (tableflip.New, Listen, Ready, Exit, SIGHUP → Upgrade,
// http.Server.Shutdown on exit), serving the same HTTP API as kvd
// (PUT/GET /kv/{key}, /healthz) from memory.
//
// tableflip moves listening sockets only, not state: each generation starts
// with an empty map. The benchmark therefore counts the peer's transport
// failures and 5xx, not its lost writes.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/cloudflare/tableflip"
)

func main() {
	listenAddr := flag.String("listen", "127.0.0.1:8080", "`address` to listen on")
	pidFile := flag.String("pid-file", "", "`path` to pid file")
	flag.Parse()
	log.SetPrefix(fmt.Sprintf("tfpeer %d ", os.Getpid()))

	upg, err := tableflip.New(tableflip.Options{PIDFile: *pidFile})
	if err != nil {
		panic(err)
	}
	defer upg.Stop()

	// Do an upgrade on SIGHUP.
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGHUP)
		for range sig {
			if err := upg.Upgrade(); err != nil {
				log.Println("Upgrade failed:", err)
			}
		}
	}()

	// Listen must be called before Ready.
	ln, err := upg.Listen("tcp", *listenAddr)
	if err != nil {
		log.Fatalln("Can't listen:", err)
	}
	// The same server settings as kvd's.
	server := http.Server{Handler: newStore().routes(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	go func() {
		if err := server.Serve(ln); err != http.ErrServerClosed {
			log.Println("HTTP server:", err)
		}
	}()

	if err := upg.Ready(); err != nil {
		panic(err)
	}
	<-upg.Exit()

	// Make sure to set a deadline on exiting the process after upg.Exit()
	// is closed. No new upgrades can be performed if the parent doesn't
	// exit.
	time.AfterFunc(30*time.Second, func() {
		log.Println("Graceful shutdown timed out")
		os.Exit(1)
	})
	// Wait for connections to drain.
	server.Shutdown(context.Background())
}

// store is the in-memory key-value map behind the HTTP API.
type store struct {
	mu sync.RWMutex
	m  map[string][]byte
}

func newStore() *store { return &store{m: make(map[string][]byte)} }

func (s *store) routes() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("PUT /kv/{key}", s.put)
	mux.HandleFunc("GET /kv/{key}", s.get)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "ok\n")
	})
	return mux
}

func (s *store) put(w http.ResponseWriter, r *http.Request) {
	v, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 16<<20))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	s.m[r.PathValue("key")] = v
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	io.WriteString(w, "{\"revision\":0}\n")
}

func (s *store) get(w http.ResponseWriter, r *http.Request) {
	s.mu.RLock()
	v, ok := s.m[r.PathValue("key")]
	s.mu.RUnlock()
	if !ok {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Write(v)
}
