package main

import (
	"os"
	"path/filepath"
	"time"
)

// floorResult is the spawn floor of one binary.
type floorResult struct {
	Label string
	What  string
	Sum   summary
	Errs  int
}

// runFloors times spawn → Hello for each binary, round-robin so that drift
// of the machine affects them alike.
func runFloors(b binaries, base string, n int) ([]floorResult, error) {
	dir, err := os.MkdirTemp(base, "floor-")
	if err != nil {
		return nil, err
	}
	logf, err := os.Create(filepath.Join(dir, "log"))
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	http, _, err := listenDup("http")
	if err != nil {
		return nil, err
	}
	defer http.Close()
	resp, _, err := listenDup("resp")
	if err != nil {
		return nil, err
	}
	defer resp.Close()
	kvdArgs := []string{"--data", dir, "--control", filepath.Join(dir, "c.sock")}
	two, names := []*os.File{http, resp}, []string{"http", "resp"}
	targets := []floorTarget{
		{Label: "kvd", Bin: b.KVD, Args: append(kvdArgs, "--build-id", "bench-kvd"), Names: names, Files: two, Frame: true},
		{Label: "kvd, default build id", Bin: b.KVD, Args: kvdArgs, Names: names, Files: two, Frame: true},
		{Label: "nopd", Bin: b.Nopd, Args: kvdArgs, Names: names[:1], Files: two[:1], Frame: true},
		{Label: "bare Go binary", Bin: b.Bare, Names: names[:1], Files: two[:1]},
	}
	whats := []string{
		"kvd (the benchmark passes --build-id), DetectRole + Hello",
		"kvd without --build-id: hashes its own executable before Hello",
		"minimal daemon on the library (bench/cmd/nopd), DetectRole + Hello",
		"Go binary without the library, writes 1 byte (bench/cmd/bare)",
	}
	ds := make([][]time.Duration, len(targets))
	errs := make([]int, len(targets))
	for i := 0; i < n; i++ {
		for j, t := range targets {
			d, err := floorOnce(t, logf)
			if err != nil {
				errs[j]++
				logfn("  floor %s: %v", t.Label, err)
				continue
			}
			ds[j] = append(ds[j], d)
		}
	}
	var out []floorResult
	for j, t := range targets {
		out = append(out, floorResult{Label: t.Label, What: whats[j], Sum: summarize(ds[j]), Errs: errs[j]})
	}
	return out, nil
}
