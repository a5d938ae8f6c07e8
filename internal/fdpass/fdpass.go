// Package fdpass moves open descriptors and kernel credentials across a Unix
// socket: it builds SCM_RIGHTS control data from files and parses received
// control data back into files and an SCM_CREDENTIALS ucred.
//
// Ownership: sending never transfers ownership (the sender keeps and later
// closes its files; the kernel installs copies in the receiver). Received
// descriptors belong to whoever Parse returns them to, and Parse closes every
// descriptor it does not return. Descriptors are read through
// SyscallConn().Control, never (*os.File).Fd, which would switch a shared
// socket to blocking mode in every process that holds it.
package fdpass

import (
	"errors"
	"fmt"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// MaxFDs is the most descriptors one message may carry: the kernel's
// per-message limit (SCM_MAX_FD), so Rights fails clearly where sendmsg
// would fail with EINVAL.
const MaxFDs = 253

// OOBSize is the receive control-buffer size: room for 256 descriptors (more
// than a sender can attach) and one ucred, so a legal message is never
// truncated.
var OOBSize = unix.CmsgSpace(256*4) + unix.CmsgSpace(unix.SizeofUcred)

// Sentinel errors.
var (
	// ErrTooManyFDs means a message would carry more than MaxFDs
	// descriptors.
	ErrTooManyFDs = errors.New("handoff: too many descriptors for one message")

	// ErrBadControl means received control data could not be parsed.
	ErrBadControl = errors.New("handoff: malformed control message")
)

// Rights returns SCM_RIGHTS control data carrying files' descriptors in
// order, or nil for no files. The descriptors are only borrowed: the caller
// must keep every file open until the message is sent and then call
// runtime.KeepAlive(files).
func Rights(files []*os.File) ([]byte, error) {
	if len(files) == 0 {
		return nil, nil
	}
	if len(files) > MaxFDs {
		return nil, fmt.Errorf("%w: %d (limit %d)", ErrTooManyFDs, len(files), MaxFDs)
	}
	fds := make([]int, len(files))
	for i, f := range files {
		fd, err := rawFD(f)
		if err != nil {
			return nil, err
		}
		fds[i] = fd
	}
	return unix.UnixRights(fds...), nil
}

// rawFD returns f's descriptor number without Fd's side effects.
func rawFD(f *os.File) (int, error) {
	if f == nil {
		return -1, errors.New("handoff: pass descriptor: nil file")
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return -1, fmt.Errorf("handoff: pass descriptor %s: %w", f.Name(), err)
	}
	fd := -1
	if err := rc.Control(func(u uintptr) { fd = int(u) }); err != nil {
		return -1, fmt.Errorf("handoff: pass descriptor %s: %w", f.Name(), err)
	}
	runtime.KeepAlive(f)
	return fd, nil
}

// Parse extracts the descriptors (from every SCM_RIGHTS message, in order)
// and the credentials (the last SCM_CREDENTIALS message, or nil) from
// received control data. Other control messages are ignored. The returned
// files belong to the caller. On error, every descriptor found is closed and
// no file is returned.
func Parse(oob []byte) (files []*os.File, cred *unix.Ucred, err error) {
	var fds []int
	defer func() {
		if err != nil {
			closeFDs(fds)
		}
	}()
	for len(oob) > 0 {
		if len(oob) < unix.SizeofCmsghdr {
			return nil, nil, fmt.Errorf("%w: %d stray bytes", ErrBadControl, len(oob))
		}
		hdr, data, rest, perr := unix.ParseOneSocketControlMessage(oob)
		if perr != nil {
			return nil, nil, fmt.Errorf("%w: %w", ErrBadControl, perr)
		}
		oob = rest
		fds, cred, err = parseOne(hdr, data, fds, cred)
		if err != nil {
			return nil, nil, err
		}
	}
	return wrap(fds), cred, nil
}

// parseOne adds one control message's descriptors or credentials.
func parseOne(hdr unix.Cmsghdr, data []byte, fds []int, cred *unix.Ucred) ([]int, *unix.Ucred, error) {
	if hdr.Level != unix.SOL_SOCKET {
		return fds, cred, nil
	}
	msg := &unix.SocketControlMessage{Header: hdr, Data: data}
	switch hdr.Type {
	case unix.SCM_RIGHTS:
		if len(data)%4 != 0 {
			return fds, cred, fmt.Errorf("%w: SCM_RIGHTS with %d data bytes", ErrBadControl, len(data))
		}
		got, err := unix.ParseUnixRights(msg)
		if err != nil {
			return fds, cred, fmt.Errorf("%w: SCM_RIGHTS: %w", ErrBadControl, err)
		}
		fds = append(fds, got...)
	case unix.SCM_CREDENTIALS:
		c, err := unix.ParseUnixCredentials(msg)
		if err != nil {
			return fds, cred, fmt.Errorf("%w: SCM_CREDENTIALS: %w", ErrBadControl, err)
		}
		cred = c
	}
	return fds, cred, nil
}

// wrap turns received descriptor numbers into files.
func wrap(fds []int) []*os.File {
	if len(fds) == 0 {
		return nil
	}
	files := make([]*os.File, len(fds))
	for i, fd := range fds {
		files[i] = os.NewFile(uintptr(fd), fmt.Sprintf("scm-rights-%d", i))
	}
	return files
}

// closeFDs closes raw descriptor numbers.
func closeFDs(fds []int) {
	for _, fd := range fds {
		_ = unix.Close(fd)
	}
}

// CloseAll closes every non-nil file, ignoring errors. It is for error
// paths, where the files are being discarded anyway.
func CloseAll(files []*os.File) {
	for _, f := range files {
		if f != nil {
			_ = f.Close()
		}
	}
}
