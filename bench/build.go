package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// binaries are the programs the benchmark runs, built once per run into a
// temporary directory (no build tags: what a user builds).
type binaries struct {
	KVD, Handoff, Nopd, Bare, TFPeer string
	BuildTime                        time.Duration
}

func buildAll(repo, benchDir, dir string) (binaries, error) {
	start := time.Now()
	b := binaries{
		KVD: filepath.Join(dir, "kvd"), Handoff: filepath.Join(dir, "handoff"),
		Nopd: filepath.Join(dir, "nopd"), Bare: filepath.Join(dir, "bare"), TFPeer: filepath.Join(dir, "tfpeer"),
	}
	steps := []struct{ wd, out, pkg string }{
		{repo, b.KVD, "./examples/kvd"},
		{repo, b.Handoff, "./cmd/handoff"},
		{benchDir, b.Nopd, "./cmd/nopd"},
		{benchDir, b.Bare, "./cmd/bare"},
		{benchDir, b.TFPeer, "./cmd/tfpeer"},
	}
	for _, s := range steps {
		cmd := exec.Command("go", "build", "-o", s.out, s.pkg)
		cmd.Dir = s.wd
		cmd.Stderr = os.Stderr
		if err := cmd.Run(); err != nil {
			return b, fmt.Errorf("bench: go build %s (in %s): %w", s.pkg, s.wd, err)
		}
	}
	b.BuildTime = time.Since(start)
	return b, nil
}

// fileSize is the size of path in bytes, or -1.
func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return -1
	}
	return fi.Size()
}
