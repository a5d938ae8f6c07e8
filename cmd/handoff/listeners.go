package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/handoff-go/handoff/internal/config"
	"github.com/handoff-go/handoff/internal/sdnotify"
	"github.com/handoff-go/handoff/internal/sysx"
	"github.com/handoff-go/handoff/supervisor"
)

// Where a listening socket came from.
const (
	sourceBound   = "bound"
	sourceSystemd = "systemd"
	sourceAdopted = "adopted"
)

// minBacklog is the accept backlog a swap needs: connections that arrive
// while no process accepts wait there (DESIGN section 1).
const minBacklog = 4096

// heldListener is one listening socket the supervisor holds for the whole
// service lifetime.
type heldListener struct {
	name, network, address, source string
	file                           *os.File
	owned                          ownedPath // unix path this process created, removed at the final stop
}

func toSupervisor(ls []heldListener) []supervisor.Listener {
	out := make([]supervisor.Listener, len(ls))
	for i, l := range ls {
		out[i] = supervisor.Listener{Name: l.name, File: l.file}
	}
	return out
}

// bindAll binds every configured listener. On error the ones already bound
// are closed and their socket files removed.
func bindAll(ctx context.Context, cfg *config.Config) ([]heldListener, error) {
	var out []heldListener
	for _, l := range cfg.Listeners {
		h, err := bindOne(ctx, l)
		if err != nil {
			releaseListeners(out, true)
			return nil, fmt.Errorf("handoff: listener %q (%s %s): %w", l.Name, l.Network, l.Address, err)
		}
		out = append(out, h)
	}
	return out, nil
}

// bindOne binds a listener and keeps only a dup of its descriptor (made
// with F_DUPFD_CLOEXEC through SyscallConn, never Fd or File, which would
// flip the shared socket to blocking mode), then closes the net object.
func bindOne(ctx context.Context, l config.Listener) (heldListener, error) {
	h := heldListener{name: l.Name, network: l.Network, address: l.Address, source: sourceBound}
	if l.IsUnixPath() {
		if err := claimSocketPath(l.Network, l.Address); err != nil {
			return h, err
		}
	}
	sc, closer, err := listen(ctx, l)
	if err != nil {
		return h, err
	}
	defer closer.Close()
	if h.file, err = sysx.DupFile(sc, l.Name); err != nil {
		return h, err
	}
	h.address = socketAddress(h.file, l.Address)
	if l.IsUnixPath() {
		h.owned, err = own(l.Address)
	}
	return h, err
}

// listen binds one socket. Stream sockets get Go's backlog, which is the
// kernel maximum (net.core.somaxconn); unix stream listeners are told not to
// unlink their path when the net object closes, since the dup lives on.
func listen(ctx context.Context, l config.Listener) (syscall.Conn, interface{ Close() error }, error) {
	var lc net.ListenConfig
	if l.IsPacket() {
		pc, err := lc.ListenPacket(ctx, l.Network, l.Address)
		if err != nil {
			return nil, nil, err
		}
		return pc.(syscall.Conn), pc, nil
	}
	ln, err := lc.Listen(ctx, l.Network, l.Address)
	if err != nil {
		return nil, nil, err
	}
	if ul, ok := ln.(*net.UnixListener); ok {
		ul.SetUnlinkOnClose(false)
	}
	return ln.(syscall.Conn), ln, nil
}

// somaxconn reads net.core.somaxconn, the cap on every listen backlog.
func somaxconn() (int, error) {
	data, err := os.ReadFile("/proc/sys/net/core/somaxconn")
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(data)))
}

// warnBacklog logs when the kernel caps backlogs below what a swap needs.
func warnBacklog(log *slog.Logger) {
	if n, err := somaxconn(); err == nil && n < minBacklog {
		log.Warn("handoff.listen", "somaxconn", n, "warning",
			fmt.Sprintf("net.core.somaxconn is %d, below %d: connections arriving during a swap may be refused when the backlog fills; raise it with sysctl -w net.core.somaxconn=%d", n, minBacklog, minBacklog))
	}
}

// takeActivated matches the sockets systemd passed against the configured
// listeners by name and checks each one's kind. Sockets no listener names
// are closed, and so is everything on error.
func takeActivated(cfg *config.Config, files []sdnotify.NamedFile, log *slog.Logger) ([]heldListener, error) {
	byName := make(map[string]*os.File, len(files))
	for _, f := range files {
		byName[f.Name] = f.File
	}
	out := make([]heldListener, 0, len(cfg.Listeners))
	var err error
	for _, l := range cfg.Listeners {
		var h heldListener
		if h, err = activatedOne(l, byName[l.Name], files); err != nil {
			break
		}
		delete(byName, l.Name)
		out = append(out, h)
	}
	for name, f := range byName {
		if err == nil {
			log.Warn("handoff.listen", "listener", name, "warning", "systemd passed a socket no [[listener]] names; closing it")
		}
		f.Close()
	}
	if err != nil {
		releaseListeners(out, true)
		return nil, err
	}
	return out, nil
}

func activatedOne(l config.Listener, f *os.File, all []sdnotify.NamedFile) (heldListener, error) {
	if f == nil {
		return heldListener{}, fmt.Errorf("handoff: listener %q: systemd passed sockets named %s but none named %q: set FileDescriptorName=%s in the .socket unit",
			l.Name, namesOf(all), l.Name, l.Name)
	}
	if err := checkSocketKind(f, l); err != nil {
		return heldListener{}, fmt.Errorf("handoff: listener %q from systemd: %w", l.Name, err)
	}
	return heldListener{name: l.Name, network: l.Network, address: socketAddress(f, l.Address), source: sourceSystemd, file: f}, nil
}

func namesOf(files []sdnotify.NamedFile) string {
	names := make([]string, len(files))
	for i, f := range files {
		names[i] = f.Name
	}
	return "[" + strings.Join(names, " ") + "]"
}

// checkSocketKind verifies a passed descriptor is a socket of the family
// and type the config says (stream and listening, or datagram).
func checkSocketKind(f *os.File, l config.Listener) error {
	var domain, typ, accepting int
	var err error
	rc, rerr := f.SyscallConn()
	if rerr != nil {
		return rerr
	}
	cerr := rc.Control(func(fd uintptr) {
		domain, err = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_DOMAIN)
		if err == nil {
			typ, err = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TYPE)
		}
		if err == nil && typ == unix.SOCK_STREAM {
			accepting, err = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_ACCEPTCONN)
		}
	})
	if err := errors.Join(cerr, err); err != nil {
		return fmt.Errorf("not a socket: %w", err)
	}
	return compareKind(l, domain, typ, accepting == 1)
}

func compareKind(l config.Listener, domain, typ int, accepting bool) error {
	wantType, wantUnix := unix.SOCK_STREAM, strings.HasPrefix(l.Network, "unix")
	if l.IsPacket() {
		wantType = unix.SOCK_DGRAM
	}
	isUnix := domain == unix.AF_UNIX
	if typ != wantType || isUnix != wantUnix {
		return fmt.Errorf("the socket is %s but the config says network %q", kindName(domain, typ), l.Network)
	}
	if typ == unix.SOCK_STREAM && !accepting {
		return fmt.Errorf("the stream socket is not listening (ListenStream= in the .socket unit, Accept=no)")
	}
	return nil
}

func kindName(domain, typ int) string {
	fam := map[int]string{unix.AF_INET: "IPv4", unix.AF_INET6: "IPv6", unix.AF_UNIX: "unix"}[domain]
	if fam == "" {
		fam = fmt.Sprintf("family %d", domain)
	}
	kind := map[int]string{unix.SOCK_STREAM: "stream", unix.SOCK_DGRAM: "datagram", unix.SOCK_SEQPACKET: "seqpacket"}[typ]
	return fam + " " + kind
}

// socketAddress returns the address the socket is bound to (the real port
// for ":0"), or fallback when the kernel does not say.
func socketAddress(f *os.File, fallback string) string {
	var sa unix.Sockaddr
	rc, err := f.SyscallConn()
	if err != nil {
		return fallback
	}
	if rc.Control(func(fd uintptr) { sa, err = unix.Getsockname(int(fd)) }) != nil || err != nil {
		return fallback
	}
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return net.JoinHostPort(net.IP(a.Addr[:]).String(), strconv.Itoa(a.Port))
	case *unix.SockaddrInet6:
		return net.JoinHostPort(net.IP(a.Addr[:]).String(), strconv.Itoa(a.Port))
	case *unix.SockaddrUnix:
		if a.Name != "" {
			return a.Name
		}
	}
	return fallback
}

// adoptedListeners describes the sockets a restarted supervisor took back
// from a running incumbent. A configured unix path is owned (removed at the
// final stop) when the adopted socket is bound to it.
func adoptedListeners(cfg *config.Config, sup *supervisor.Supervisor) []heldListener {
	var out []heldListener
	for _, name := range sup.Listeners() {
		f := sup.ListenerFile(name)
		h := heldListener{name: name, source: sourceAdopted, address: socketAddress(f, "?")}
		if i := slices.IndexFunc(cfg.Listeners, func(l config.Listener) bool { return l.Name == name }); i >= 0 {
			l := cfg.Listeners[i]
			h.network = l.Network
			if l.IsUnixPath() && h.address == l.Address {
				h.owned, _ = own(l.Address)
			}
		}
		out = append(out, h)
	}
	return out
}

// releaseListeners closes the descriptors (unless the supervisor owns them
// now) and removes the socket files this process created.
func releaseListeners(ls []heldListener, closeFiles bool) {
	for _, l := range ls {
		if closeFiles && l.file != nil {
			l.file.Close()
		}
		_ = l.owned.remove()
	}
}
