package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// demoModule is the module whose examples/kvd the demo builds.
const demoModule = "github.com/handoff-go/handoff"

// errNoKVD means the kvd source is not reachable from here.
var errNoKVD = errors.New("handoff: demo: kvd source not found")

// prepareKVD puts a kvd binary in the temp dir: the one --kvd names, or a
// fresh build of examples/kvd (built once; every generation runs it under
// its own path and build id).
func (d *demoRun) prepareKVD(ctx context.Context) error {
	binDir := filepath.Join(d.dir, "bin")
	if err := os.Mkdir(binDir, 0o700); err != nil {
		return fmt.Errorf("handoff: demo: %w", err)
	}
	d.kvd = filepath.Join(binDir, "kvd")
	if d.cfg.KVD != "" {
		return demoCopyFile(d.cfg.KVD, d.kvd)
	}
	root, err := demoModuleRoot()
	if err != nil {
		return err
	}
	start := time.Now()
	d.p.linef("building kvd from %s", filepath.Join(root, "examples", "kvd"))
	if err := demoGoBuild(ctx, root, d.kvd, "./examples/kvd"); err != nil {
		return err
	}
	d.p.linef("built kvd in %s", demoRound(time.Since(start)))
	return nil
}

// genBinary returns the path generation n runs: a link to (or copy of)
// the built kvd, so that each swap resolves a distinct binary path.
func (d *demoRun) genBinary(n int) (string, error) {
	path := filepath.Join(filepath.Dir(d.kvd), fmt.Sprintf("kvd-gen-%d", n))
	if err := os.Link(d.kvd, path); err == nil {
		return path, nil
	}
	return path, demoCopyFile(d.kvd, path)
}

// demoFileSHA256 returns the hex SHA-256 of a file's content.
func demoFileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("handoff: demo: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("handoff: demo: hashing %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// demoModuleRoot finds the checkout holding examples/kvd: upwards from
// the working directory (`go run ./cmd/handoff demo` runs in the
// checkout), then upwards from where this file was compiled.
func demoModuleRoot() (string, error) {
	var starts []string
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		starts = append(starts, filepath.Dir(file))
	}
	for _, start := range starts {
		if root, ok := demoWalkUp(start); ok {
			return root, nil
		}
	}
	return "", fmt.Errorf("%w: no checkout of %s above %s; run the demo from a checkout "+
		"(git clone https://%s && cd handoff && go run ./cmd/handoff demo) or pass --kvd PATH to a built kvd",
		errNoKVD, demoModule, strings.Join(starts, " or "), demoModule)
}

// demoWalkUp returns the first directory at or above dir whose go.mod
// declares demoModule and which holds examples/kvd.
func demoWalkUp(dir string) (string, bool) {
	for {
		if isDemoRoot(dir) {
			return dir, true
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", false
		}
		dir = parent
	}
}

func isDemoRoot(dir string) bool {
	if _, err := os.Stat(filepath.Join(dir, "examples", "kvd", "main.go")); err != nil {
		return false
	}
	return demoModuleName(filepath.Join(dir, "go.mod")) == demoModule
}

// demoModuleName reads the module path from a go.mod ("" if none).
func demoModuleName(gomod string) string {
	f, err := os.Open(gomod)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "module "); ok {
			return strings.Trim(strings.TrimSpace(rest), `"`)
		}
	}
	return ""
}

// demoGoBuild runs `go build -o out pkg` in root.
func demoGoBuild(ctx context.Context, root, out, pkg string) error {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return fmt.Errorf("handoff: demo: building kvd needs the go command (install Go, or pass --kvd PATH): %w", err)
	}
	cmd := exec.CommandContext(ctx, goBin, "build", "-o", out, pkg)
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("handoff: demo: go build %s in %s: %w\n%s", pkg, root, err, b)
	}
	return nil
}

// demoCopyFile copies an executable.
func demoCopyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("handoff: demo: %w", err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		return fmt.Errorf("handoff: demo: %w", err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("handoff: demo: copy %s: %w", src, err)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("handoff: demo: copy %s: %w", src, err)
	}
	return nil
}
