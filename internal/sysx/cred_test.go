package sysx

import (
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"testing"
)

func TestPeerCred_unixSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ctl.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := ln.AcceptUnix()
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	cred, err := PeerCred(server)
	if err != nil {
		t.Fatal(err)
	}
	if int(cred.Pid) != os.Getpid() || int(cred.Uid) != os.Getuid() || int(cred.Gid) != os.Getgid() {
		t.Fatalf("PeerCred = %+v, want pid %d uid %d gid %d", cred, os.Getpid(), os.Getuid(), os.Getgid())
	}
	wantNonblock(t, "accepted conn after PeerCred", server, true)
}

func TestPathInode_identifiesBoundSocketFile(t *testing.T) {
	dir := t.TempDir()
	tmp, path := filepath.Join(dir, ".ctl.tmp"), filepath.Join(dir, "ctl.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	defer ln.Close()
	dev, ino, err := PathInode(tmp)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	// Rename keeps the identity: the published path names what was bound.
	if d, i, err := PathInode(path); err != nil || d != dev || i != ino {
		t.Fatalf("after rename PathInode = %d:%d, %v; want %d:%d", d, i, err, dev, ino)
	}
	// The descriptor's own inode is the sockfs one, never the file's.
	if d, i, err := FileInode(ln); err != nil || (d == dev && i == ino) {
		t.Fatalf("FileInode(listener) = %d:%d, %v; want a sockfs identity unlike the path's %d:%d", d, i, err, dev, ino)
	}
	if _, _, err := PathInode(tmp); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("PathInode(missing) error = %v, want fs.ErrNotExist", err)
	}
}

func TestFileInode_regularFileMatchesPath(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fd, fi, err := FileInode(f)
	if err != nil {
		t.Fatal(err)
	}
	pd, pi, err := PathInode(path)
	if err != nil {
		t.Fatal(err)
	}
	if fd != pd || fi != pi {
		t.Fatalf("FileInode = %d:%d, PathInode = %d:%d; want equal", fd, fi, pd, pi)
	}
}
