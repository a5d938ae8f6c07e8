package sysx

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// WriteFileAtomic replaces path with data so that a crash at any moment
// leaves either the old content or the new, never a mix: it writes a temporary
// file in the same directory (created with O_EXCL, so it never reuses a
// leftover), fsyncs it, renames it over path and fsyncs the directory so the
// rename itself is durable. On failure the temporary file is removed; only a
// crash in the middle can leave one behind, named "."+base+".tmp-*", which
// never affects path.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	if err := replace(path, data, perm, true); err != nil {
		return err
	}
	return SyncDir(filepath.Dir(path))
}

// ReplaceFileAtomic replaces path with data so that a process crashing at
// any moment, or a reader at any moment, sees either the old content or
// the new, never a mix — but it does not make the change durable: after a
// crash of the machine, path may hold the old content, the new, or (on
// some file systems) nothing. It is for files that describe live
// processes, which a machine crash makes stale anyway, and it saves the
// two fsyncs of [WriteFileAtomic].
func ReplaceFileAtomic(path string, data []byte, perm os.FileMode) error {
	return replace(path, data, perm, false)
}

func replace(path string, data []byte, perm os.FileMode, sync bool) error {
	tmp, err := writeTemp(path, data, perm, sync)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("handoff: replace %s: %w", path, err)
	}
	return nil
}

// TempPattern is the glob (relative to the directory of path) that matches the
// temporary files WriteFileAtomic may leave behind after a crash.
func TempPattern(path string) string {
	return "." + filepath.Base(path) + ".tmp-*"
}

func writeTemp(path string, data []byte, perm os.FileMode, sync bool) (string, error) {
	name, err := tempName(path)
	if err != nil {
		return "", err
	}
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_CLOEXEC, perm)
	if err != nil {
		return "", fmt.Errorf("handoff: write %s: %w", path, err)
	}
	if err := writeClose(f, data, sync); err != nil {
		_ = os.Remove(name)
		return "", fmt.Errorf("handoff: write %s: %w", path, err)
	}
	return name, nil
}

func writeClose(f *os.File, data []byte, sync bool) error {
	_, err := f.Write(data)
	if err == nil && sync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func tempName(path string) (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("handoff: temporary name for %s: %w", path, err)
	}
	return filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp-"+hex.EncodeToString(b[:])), nil
}

// SyncDir fsyncs a directory, making the creations, renames and removals of
// its entries durable.
func SyncDir(dir string) error {
	d, err := os.OpenFile(dir, os.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("handoff: sync directory: %w", err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("handoff: sync directory: %w", err)
	}
	return nil
}
