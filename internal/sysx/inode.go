package sysx

import (
	"fmt"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// PathInode returns the device and inode of the file at path, without
// following a final symlink. A process records it for the control socket
// file right after binding, and compares later to learn whether the path
// still names its own socket: a different inode means another process took
// the path over (the commit mark of a swap), so it must not unlink it.
//
// For a socket, record the identity from the path (PathInode), not from the
// descriptor: fstat of a socket descriptor reports the sockfs inode, which
// never equals the inode of the file the socket is bound to.
func PathInode(path string) (dev, ino uint64, err error) {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		return 0, 0, &os.PathError{Op: "lstat", Path: path, Err: err}
	}
	return st.Dev, st.Ino, nil
}

// FileInode returns the device and inode of the open file behind c (fstat
// through SyscallConn, so the descriptor's blocking mode is untouched). For a
// regular file it equals [PathInode] of the path it was opened by, as long as
// that path was not replaced; for a socket see the note on PathInode.
func FileInode(c syscall.Conn) (dev, ino uint64, err error) {
	var (
		st      unix.Stat_t
		statErr error
	)
	if err := control(c, func(fd uintptr) { statErr = unix.Fstat(int(fd), &st) }); err != nil {
		return 0, 0, fmt.Errorf("handoff: fstat: %w", err)
	}
	if statErr != nil {
		return 0, 0, fmt.Errorf("handoff: %w", os.NewSyscallError("fstat", statErr))
	}
	return st.Dev, st.Ino, nil
}
