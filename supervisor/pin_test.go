package supervisor

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// sha256File returns the hex SHA-256 of a file's content.
func sha256File(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// TestHandoff_sha256Pin: a swap pinned to the binary's SHA-256 commits and
// runs that binary; a pin the file does not match, or one that is not a
// digest, fails before anything is spawned (ErrBadBinary) and leaves the
// incumbent serving with its lock.
func TestHandoff_sha256Pin(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, envOptions{})
	s := e.newSupervisor()
	o := e.coldStart(s, "old")
	e.mustPut("before", "x")
	for _, pin := range []string{strings.Repeat("0", 64), "not-a-digest"} {
		spec := e.daemonSpec("new")
		spec.SHA256 = pin
		spawned := false
		spec.OnEvent = func(p Progress) {
			e.onEvent(p)
			spawned = spawned || p.Step == "spawned"
		}
		out, err := e.handoff(s, spec)
		if !errors.Is(err, ErrBadBinary) || out.Committed {
			t.Fatalf("pin %q: %v (outcome %+v), want ErrBadBinary and no commit", pin, err, out)
		}
		if spawned || out.NewPID != 0 {
			t.Errorf("pin %q: a successor was spawned (pid %d) although the pin failed", pin, out.NewPID)
		}
		if s.Incumbent() != o {
			t.Fatalf("pin %q: incumbent %d, want %d unchanged", pin, s.Incumbent(), o)
		}
	}
	e.mustPut("after-refusals", "y")
	e.expectServedBy(o)
	e.expectHolders(o)

	spec := e.daemonSpec("new")
	spec.SHA256 = strings.ToUpper(sha256File(t, e.self)) // hex in either case
	n := e.mustCommit(s, spec)
	exe, err := os.Readlink("/proc/" + strconv.Itoa(n) + "/exe")
	if err != nil {
		t.Fatal(err)
	}
	if want, _ := filepath.EvalSymlinks(e.self); exe != want {
		t.Errorf("the pinned successor runs %s, want %s", exe, want)
	}
	e.mustPut("after", "z")
	e.expectServedBy(n)
	e.checkAcked()
}

// TestPinBinary_runsTheFileItHashed: the path is replaced by another
// program after the pin was checked; the process started from the pin
// runs the content that was hashed.
func TestPinBinary_runsTheFileItHashed(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "daemon")
	copyFile(t, "/bin/true", path)
	copyFile(t, "/bin/false", filepath.Join(dir, "next"))
	pin, err := pinBinary(path, sha256File(t, path), 10)
	if err != nil {
		t.Fatal(err)
	}
	defer pin.close()
	if int(pin.f.Fd()) < 10 {
		t.Errorf("pinned descriptor %d, want at least 10 (above the child's listeners)", pin.f.Fd())
	}
	if err := os.Rename(filepath.Join(dir, "next"), path); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(pin.path())
	cmd.Args[0] = path
	if err := cmd.Run(); err != nil {
		t.Fatalf("running the pinned file: %v (the replacement, /bin/false, ran instead?)", err)
	}
	if _, err := pinBinary(path, sha256File(t, "/bin/true"), 10); !errors.Is(err, ErrBadBinary) {
		t.Fatalf("pinning the replaced path to the old digest: %v, want ErrBadBinary", err)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Skipf("needs %s: %v", from, err)
	}
	if err := os.WriteFile(to, data, 0o755); err != nil {
		t.Fatal(err)
	}
}

// TestPinBinary_survivesTheChildsFDShuffle: between fork and exec the child
// moves an extra file that sits below its target number up to free numbers
// before placing it; the pinned descriptor must lie above all of those, or
// the exec would read a listener instead of the binary.
func TestPinBinary_survivesTheChildsFDShuffle(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "daemon")
	copyFile(t, "/bin/true", path)
	// The last extra file gets the lowest free number, below its target
	// number 3+n-1: the child moves it up to 3+n first, where a pin at the
	// bare 3+n would sit.
	low, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer low.Close()
	n := int(low.Fd()) + 2
	var extra []*os.File
	for j := range n - 1 {
		// The others sit high (200+), above their targets, so the child
		// moves only the last one, and 3+n is free for a careless pin.
		fd, err := unix.FcntlInt(low.Fd(), unix.F_DUPFD_CLOEXEC, 200+j)
		if err != nil {
			t.Fatal(err)
		}
		f := os.NewFile(uintptr(fd), os.DevNull)
		defer f.Close()
		extra = append(extra, f)
	}
	extra = append(extra, low)
	pin, err := pinBinary(path, sha256File(t, path), pinnedFDFloor(len(extra)))
	if err != nil {
		t.Fatal(err)
	}
	defer pin.close()
	cmd := exec.Command(pin.path())
	cmd.Args[0] = path
	cmd.ExtraFiles = extra
	if err := cmd.Run(); err != nil {
		t.Fatalf("running the pinned binary with %d extra files: %v", len(extra), err)
	}
}
