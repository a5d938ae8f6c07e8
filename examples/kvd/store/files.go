package store

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// Err reports why the store failed, or nil while it is healthy.
func (s *Store) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failErr
}

// WriteErr reports why a Put would fail now ([ErrReadOnly], [ErrSealed],
// [ErrClosed], [ErrFailed]), or nil while the store takes writes.
func (s *Store) WriteErr() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stateErr()
}

// failure is Err for the writer's own checks.
func (s *Store) failure() error {
	if err := s.Err(); err != nil {
		return fmt.Errorf("%w: %w", ErrFailed, err)
	}
	return nil
}

// setFailed records the first write failure; every later write fails.
func (s *Store) setFailed(err error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failErr == nil {
		s.failErr = err
		s.cfg.logger.Error("kvd: store failed; no more writes until reopened", "path", s.path, "err", err)
	}
	if s.state != stateClosed {
		s.state = stateFailed
	}
	return fmt.Errorf("%w: %w", ErrFailed, s.failErr)
}

// writeSync appends buf and makes it durable. After any failure the store
// is failed for good: a failed fsync may have dropped dirty pages, so the
// page cache no longer says what is on disk.
func (s *Store) writeSync(buf []byte) error {
	if err := s.failure(); err != nil {
		return err
	}
	if _, err := s.w.Write(buf); err != nil {
		return s.setFailed(fmt.Errorf("kvd: write log: %w", err))
	}
	if err := fdatasync(s.w); err != nil {
		return s.setFailed(fmt.Errorf("kvd: sync log %s: %w", s.path, err))
	}
	return nil
}

// fdatasync flushes f's data and the metadata needed to read it back.
func fdatasync(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		for {
			if serr = unix.Fdatasync(int(fd)); !errors.Is(serr, unix.EINTR) {
				return
			}
		}
	}); err != nil {
		return err
	}
	return os.NewSyscallError("fdatasync", serr)
}

// openAppend opens (creating it if needed) the log for appending; a new
// file's directory entry is made durable too.
func openAppend(path string) (*os.File, error) {
	_, statErr := os.Stat(path)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("kvd: open log for writing: %w", err)
	}
	if errors.Is(statErr, os.ErrNotExist) {
		if err := syncDir(filepath.Dir(path)); err != nil {
			f.Close()
			return nil, err
		}
	}
	return f, nil
}

// syncDir fsyncs a directory so that renames and creations in it survive a
// crash.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("kvd: sync dir: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("kvd: sync dir %s: %w", dir, err)
	}
	return nil
}

// repairTail cuts off the torn tail Open found: the bytes go to
// kvd.log.<offset>.broken first (temp file, fsync, rename, fsync of the
// directory), then the log is truncated and synced. Called with mu held.
func (s *Store) repairTail() error {
	t := s.torn
	if t.at >= t.size {
		return nil
	}
	broken := fmt.Sprintf("%s.%d.broken", s.path, t.at)
	if err := saveBytes(s.path, t.at, broken); err != nil {
		return err
	}
	if err := truncateSync(s.path, t.at); err != nil {
		return err
	}
	s.cfg.logger.Warn("kvd: cut torn tail off the log", "path", s.path,
		"offset", t.at, "bytes", t.size-t.at, "kept", broken)
	s.torn = tornTail{at: t.at, size: t.at}
	return nil
}

// saveBytes copies path[from:] durably to dst.
func saveBytes(path string, from int64, dst string) error {
	src, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("kvd: save torn tail: %w", err)
	}
	defer src.Close()
	tmp := dst + ".tmp"
	out, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("kvd: save torn tail: %w", err)
	}
	_, err = io.Copy(out, io.NewSectionReader(src, from, 1<<62))
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, dst)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("kvd: save torn tail to %s: %w", dst, err)
	}
	return syncDir(filepath.Dir(dst))
}

// truncateSync cuts path at size and syncs it.
func truncateSync(path string, size int64) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("kvd: truncate log: %w", err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		return fmt.Errorf("kvd: truncate log: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("kvd: truncate log: %w", err)
	}
	return nil
}
