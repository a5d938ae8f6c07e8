package sdnotify

import (
	"fmt"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// EnvSocket is the variable systemd sets to its notification socket.
const EnvSocket = "NOTIFY_SOCKET"

// sendTimeout bounds one datagram send: systemd's socket never blocks for
// long, and a wedged one must not stall the supervisor.
const sendTimeout = 5 * time.Second

// Notifier sends state messages to systemd. The zero of *Notifier (nil)
// sends nothing. Safe for concurrent use: each message opens its own socket,
// as sd_notify does.
type Notifier struct {
	addr string
}

// FromEnv returns a Notifier for $NOTIFY_SOCKET, or nil (and no error) when
// it is unset. It removes the variable from the environment, so that the
// daemons the supervisor spawns do not talk to systemd in its name (with
// NotifyAccess=main systemd would ignore them, with noise in its log).
func FromEnv() (*Notifier, error) {
	v, ok := os.LookupEnv(EnvSocket)
	_ = os.Unsetenv(EnvSocket) // fails only for names with '=' or NUL
	if !ok || v == "" {
		return nil, nil
	}
	return New(v)
}

// New returns a Notifier for socket: an absolute path, or "@name" for the
// Linux abstract namespace.
func New(socket string) (*Notifier, error) {
	if !strings.HasPrefix(socket, "/") && !strings.HasPrefix(socket, "@") {
		return nil, fmt.Errorf("%w: %q is neither an absolute path nor an @abstract name", ErrBadSocket, socket)
	}
	return &Notifier{addr: socket}, nil
}

// Socket returns the address messages go to ("" for a nil Notifier).
func (n *Notifier) Socket() string {
	if n == nil {
		return ""
	}
	return n.addr
}

// Notify sends one message made of the given KEY=VALUE lines.
func (n *Notifier) Notify(lines ...string) error {
	return n.send(strings.Join(lines, "\n"), nil)
}

// Ready says the service is up: the first incumbent serves, or a reload
// (swap) has finished.
func (n *Notifier) Ready() error { return n.Notify("READY=1") }

// Reloading says a reload (a swap) starts. systemd wants the monotonic
// clock with it, to match the READY=1 that ends the reload.
func (n *Notifier) Reloading() error {
	return n.Notify("RELOADING=1", fmt.Sprintf("MONOTONIC_USEC=%d", MonotonicUsec()))
}

// Stopping says the service is shutting down.
func (n *Notifier) Stopping() error { return n.Notify("STOPPING=1") }

// Status sets the one-line status `systemctl status` shows.
func (n *Notifier) Status(s string) error {
	return n.Notify("STATUS=" + strings.NewReplacer("\n", " ", "\r", " ").Replace(s))
}

// StoreFDs hands descriptors to systemd's file descriptor store under name
// (the unit needs FileDescriptorStoreMax= large enough). systemd keeps its
// own copies; the caller still owns files.
func (n *Notifier) StoreFDs(name string, files ...*os.File) error {
	if n == nil || len(files) == 0 {
		return nil
	}
	return withFDs(files, nil, func(fds []int) error {
		return n.send("FDSTORE=1\nFDNAME="+name, unix.UnixRights(fds...))
	})
}

// withFDs calls fn with the raw descriptors of files, each held valid by
// its SyscallConn().Control for the duration (never Fd, which could switch
// a shared socket to blocking mode).
func withFDs(files []*os.File, fds []int, fn func([]int) error) error {
	if len(files) == 0 {
		return fn(fds)
	}
	rc, err := files[0].SyscallConn()
	if err != nil {
		return fmt.Errorf("handoff: fd store: %s: %w", files[0].Name(), err)
	}
	var inner error
	if err := rc.Control(func(fd uintptr) { inner = withFDs(files[1:], append(fds, int(fd)), fn) }); err != nil {
		return fmt.Errorf("handoff: fd store: %s: %w", files[0].Name(), err)
	}
	return inner
}

// send writes one datagram, with optional SCM_RIGHTS, from a fresh
// close-on-exec socket (a connected datagram socket cannot carry a
// destination with sendmsg, and net refuses that combination).
func (n *Notifier) send(msg string, oob []byte) error {
	if n == nil {
		return nil
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("handoff: sd_notify: %w", os.NewSyscallError("socket", err))
	}
	defer unix.Close(fd)
	tv := unix.NsecToTimeval(sendTimeout.Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &tv); err != nil {
		return fmt.Errorf("handoff: sd_notify: %w", os.NewSyscallError("setsockopt", err))
	}
	to := &unix.SockaddrUnix{Name: n.addr}
	if err := unix.Sendmsg(fd, []byte(msg), oob, to, unix.MSG_NOSIGNAL); err != nil {
		return fmt.Errorf("handoff: sd_notify %q to %s: %w", firstLine(msg), n.addr, os.NewSyscallError("sendmsg", err))
	}
	return nil
}

func firstLine(s string) string {
	first, _, _ := strings.Cut(s, "\n")
	return first
}

// MonotonicUsec returns CLOCK_MONOTONIC in microseconds, the clock
// MONOTONIC_USEC= is measured on.
func MonotonicUsec() uint64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0 // cannot fail for CLOCK_MONOTONIC on Linux
	}
	return uint64(ts.Sec)*1e6 + uint64(ts.Nsec)/1e3
}
