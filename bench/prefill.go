package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"sync"
	"time"

	"github.com/handoff-go/handoff/examples/kvd/store"
)

// prefill writes about size bytes of kvd data into dataDir through kvd's
// own store package (group commit, fsync per batch), before kvd starts.
func prefill(size int64, valueSize int) func(string) error {
	return func(dataDir string) error {
		st, err := store.Open(dataDir, store.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
		if err != nil {
			return err
		}
		if err := st.StartWrites(); err != nil {
			st.Close()
			return err
		}
		n := int(size / int64(valueSize))
		if err := putMany(st, n, valueSize); err != nil {
			st.Close()
			return err
		}
		return st.Close()
	}
}

// putMany writes n values from 32 writers, so that the store batches them.
func putMany(st *store.Store, n, valueSize int) error {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	next := make(chan int)
	for range 32 {
		wg.Go(func() {
			for i := range next {
				v := valueFor(-1, uint32(i), valueSize)
				if _, err := st.Put(context.Background(), fmt.Sprintf("prefill-%d", i), v); err != nil {
					mu.Lock()
					first = cmp.Or(first, err)
					mu.Unlock()
				}
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	return first
}

// verifyAcked opens the data directory after the daemon stopped and checks
// every acknowledged write of the load: it returns how many are missing or
// hold another value.
func verifyAcked(dataDir string, l *load) (checked, lost int, err error) {
	st, err := store.Open(dataDir, store.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		return 0, 0, err
	}
	defer st.Close()
	for _, c := range l.clients {
		for _, seq := range c.acked {
			checked++
			v, ok := st.Get(keyFor(c.id, seq))
			if !ok || string(v) != string(valueFor(c.id, seq, l.valueSize)) {
				lost++
			}
		}
	}
	return checked, lost, nil
}

// timeOpens times kvd's store.Open of dataDir (what a successor does
// between Begin and Ready) three times, optionally under the CPU profiler.
func timeOpens(dataDir, tmp string, profile bool) (summary, []string) {
	var ds []time.Duration
	var pf *os.File
	if profile {
		pf, _ = os.Create(filepath.Join(tmp, "open.pprof"))
		if pf != nil && pprof.StartCPUProfile(pf) != nil {
			pf.Close()
			pf = nil
		}
	}
	for range 3 {
		t0 := time.Now()
		st, err := store.Open(dataDir, store.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
		if err != nil {
			logfn("  store.Open %s: %v", dataDir, err)
			break
		}
		ds = append(ds, time.Since(t0))
		st.Close()
	}
	if pf == nil {
		return summarize(ds), nil
	}
	pprof.StopCPUProfile()
	pf.Close()
	out, err := exec.Command("go", "tool", "pprof", "-top", "-nodecount=8", pf.Name()).Output()
	if err != nil {
		return summarize(ds), nil
	}
	return summarize(ds), pprofLines(string(out))
}
