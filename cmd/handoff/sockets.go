package main

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"syscall"
	"time"

	"github.com/handoff-go/handoff/internal/sysx"
)

// errSocketInUse means a unix socket path is answered by a live process.
var errSocketInUse = errors.New("handoff: socket path in use")

// claimSocketPath makes path free for a new unix socket of network (unix or
// unixgram). It never deletes a live socket: when something answers there
// it refuses; a stale socket file (nobody answers) is removed; anything
// that is not a socket is left alone and refused.
func claimSocketPath(network, path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("handoff: %w", err)
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("handoff: %s exists and is not a socket (%v); move it away", path, fi.Mode().Type())
	}
	live, err := socketAnswers(network, path)
	if err != nil {
		return err
	}
	if live {
		return fmt.Errorf("%w: %s is answered by a running process (another supervisor or daemon?); stop it or choose another path", errSocketInUse, path)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("handoff: remove stale socket: %w", err)
	}
	return nil
}

// socketAnswers reports whether a process is bound at path: connect
// succeeds (live) or fails with ECONNREFUSED (stale).
func socketAnswers(network, path string) (bool, error) {
	c, err := net.DialTimeout(network, path, 2*time.Second)
	if err == nil {
		c.Close()
		return true, nil
	}
	if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return false, fmt.Errorf("handoff: probe %s: %w", path, err)
}

// ownedPath is a socket file this process bound, identified by inode so
// that it is removed only while the path still names it: a path another
// process took over is never deleted.
type ownedPath struct {
	path     string
	dev, ino uint64
}

// own records the inode now at path.
func own(path string) (ownedPath, error) {
	dev, ino, err := sysx.PathInode(path)
	if err != nil {
		return ownedPath{}, fmt.Errorf("handoff: %w", err)
	}
	return ownedPath{path: path, dev: dev, ino: ino}, nil
}

// remove unlinks the path if it still names the recorded inode.
func (o ownedPath) remove() error {
	if o.path == "" {
		return nil
	}
	dev, ino, err := sysx.PathInode(o.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if dev != o.dev || ino != o.ino {
		return nil // someone else's now
	}
	if err := os.Remove(o.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("handoff: %w", err)
	}
	return nil
}
