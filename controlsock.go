package handoff

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/handoff-go/handoff/internal/sysx"
)

// controlSocket is the control socket path this process bound, with the
// identity (device and inode) of the file it created there. The path changing
// hands is the commit mark of a swap, so a process only ever unlinks or
// re-binds the path while it still names this exact file.
type controlSocket struct {
	path string
	ln   *net.UnixListener
	dev  uint64
	ino  uint64
}

// bindControl binds a fresh socket at a temporary name beside path and renames
// it over path, so the path always answers: the old socket file (a previous
// incumbent's, or a stale one) is replaced atomically and never deleted first.
func bindControl(path string) (*controlSocket, error) {
	tmp := filepath.Join(filepath.Dir(path), fmt.Sprintf(".%s.%d.tmp", filepath.Base(path), os.Getpid()))
	_ = os.Remove(tmp) // our own pid-unique temporary name, left only by a crash of ours
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("handoff: bind control socket %s: %w", path, err)
	}
	ln.SetUnlinkOnClose(false)
	cs := &controlSocket{path: path, ln: ln}
	if err := cs.publish(tmp); err != nil {
		ln.Close()
		_ = os.Remove(tmp)
		return nil, err
	}
	return cs, nil
}

func (cs *controlSocket) publish(tmp string) error {
	if err := os.Chmod(tmp, 0o600); err != nil {
		return fmt.Errorf("handoff: control socket %s: %w", cs.path, err)
	}
	dev, ino, err := sysx.PathInode(tmp)
	if err != nil {
		return err
	}
	cs.dev, cs.ino = dev, ino
	if err := os.Rename(tmp, cs.path); err != nil {
		return fmt.Errorf("handoff: publish control socket %s: %w", cs.path, err)
	}
	return nil
}

// takenOver reports whether the path no longer names the socket file we
// bound: proof that a successor committed (DESIGN's recovery rule). A missing
// path is proof too: nobody but a committed successor replaces the path (by
// rename, so it is never missing meanwhile), and a process only ever unlinks
// a path that is its own, so a missing path means a successor bound it and
// has since stopped for good. Only an error other than "does not exist"
// proves nothing.
func (cs *controlSocket) takenOver() bool {
	dev, ino, err := sysx.PathInode(cs.path)
	if errors.Is(err, fs.ErrNotExist) {
		return true
	}
	if err != nil {
		return false
	}
	return dev != cs.dev || ino != cs.ino
}

// owned reports whether the path still names the file this process bound.
func (cs *controlSocket) owned() bool {
	dev, ino, err := sysx.PathInode(cs.path)
	return err == nil && dev == cs.dev && ino == cs.ino
}

// close stops listening; it never unlinks the path.
func (cs *controlSocket) close() error { return cs.ln.Close() }

// removeIfOwned unlinks the path only while it still names our file (at a
// final stop, never after a swap committed).
func (cs *controlSocket) removeIfOwned() {
	if cs.owned() {
		_ = os.Remove(cs.path)
	}
}

// checkNotLive refuses to replace a control socket path on which a live
// process answers: a cold start must never steal a running incumbent's path.
func checkNotLive(path string) error {
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		c.Close()
		return fmt.Errorf("handoff: %s answers connections; is an incumbent already running? %w", path, ErrSocketPathTaken)
	}
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOENT) {
		return nil
	}
	return fmt.Errorf("handoff: probe control socket %s: %w", path, err)
}
