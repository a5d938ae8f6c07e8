package handoff

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/handoff-go/handoff/internal/fdpass"
	"github.com/handoff-go/handoff/internal/listenenv"
	"github.com/handoff-go/handoff/internal/sysx"
)

// Listeners are the sockets (and any other files) a daemon inherited, by
// name, in fd order. The daemon takes each entry once, as the kind it is:
// [Listeners.Listener] for TCP and Unix stream listeners,
// [Listeners.PacketConn] for UDP and Unix datagram sockets, [Listeners.File]
// for anything else.
//
// Taking an entry gives the daemon its own duplicate; the library keeps the
// inherited descriptor for the whole life of the process, also for entries
// the daemon never takes or has already closed. That is how an incumbent can
// hand the very same sockets back to a restarted supervisor (DESIGN section
// 2), so the kernel socket and its accept queue never close while the
// service is supervised. Closing what the daemon took (for example at Drain)
// therefore never closes the socket, and a Unix socket's path is never
// unlinked.
//
// A nil or zero Listeners has no entries. Methods are safe for concurrent
// use.
type Listeners struct {
	mu      sync.Mutex
	entries []*listenerEntry
	closed  bool
}

// listenerEntry keeps a raw descriptor rather than an *os.File: no
// finalizer can close it if the daemon drops its *Listeners, so it stays
// open for the life of the process as DESIGN section 4 requires; it is not
// registered with the runtime poller; and no Fd call can ever touch it.
type listenerEntry struct {
	name  string
	fd    int // kept until Close
	taken bool
}

// newListeners keeps fds (which it now owns) under names, in order.
func newListeners(names []string, fds []int) *Listeners {
	ls := &Listeners{entries: make([]*listenerEntry, len(names))}
	for i, name := range names {
		ls.entries[i] = &listenerEntry{name: name, fd: fds[i]}
	}
	return ls
}

// inheritedListeners keeps the descriptors [listenenv.Read] claimed.
func inheritedListeners(in listenenv.Inherited) *Listeners {
	return newListeners(in.Names, in.FDs)
}

// NewListeners builds Listeners from sockets a daemon bound itself (a cold
// start without inherited listeners), so that its incumbent can still hand
// them to a supervisor that asks (pass the result to [WithListeners]). It
// keeps its own duplicate of each conn; the caller keeps ownership of conns.
// Names follow the LISTEN_FDNAMES rules: non-empty printable ASCII without
// ':', '=' or spaces, and unique.
func NewListeners(names []string, conns []syscall.Conn) (*Listeners, error) {
	if len(names) != len(conns) {
		return nil, fmt.Errorf("handoff: NewListeners: %d names for %d conns: %w", len(names), len(conns), os.ErrInvalid)
	}
	if err := listenenv.CheckNames(names); err != nil {
		return nil, err
	}
	fds := make([]int, 0, len(conns))
	for i, c := range conns {
		fd, err := sysx.DupConnFD(c)
		if err != nil {
			closeFDs(fds)
			return nil, fmt.Errorf("handoff: NewListeners: keep %q: %w", names[i], err)
		}
		fds = append(fds, fd)
	}
	return newListeners(names, fds), nil
}

// Len is the number of entries, taken or not.
func (ls *Listeners) Len() int {
	if ls == nil {
		return 0
	}
	ls.mu.Lock()
	defer ls.mu.Unlock()
	return len(ls.entries)
}

// Names lists every entry's name in fd order, taken or not.
func (ls *Listeners) Names() []string {
	if ls == nil {
		return nil
	}
	ls.mu.Lock()
	defer ls.mu.Unlock()
	names := make([]string, len(ls.entries))
	for i, e := range ls.entries {
		names[i] = e.name
	}
	return names
}

// Listener takes the listening TCP or Unix stream socket called name. The
// caller owns the result; closing it leaves the socket open (see
// [Listeners]). A name that does not exist wraps [ErrNoListener], a second
// take wraps [ErrUsed], and an entry of another kind is a [*KindError] that
// leaves the entry available.
func (ls *Listeners) Listener(name string) (net.Listener, error) {
	return take(ls, name, kindListener, func(f *os.File) (net.Listener, error) {
		defer f.Close()
		return net.FileListener(f)
	})
}

// PacketConn takes the UDP or Unix datagram socket called name. Errors are
// as for [Listeners.Listener].
func (ls *Listeners) PacketConn(name string) (net.PacketConn, error) {
	return take(ls, name, kindPacket, func(f *os.File) (net.PacketConn, error) {
		defer f.Close()
		return net.FilePacketConn(f)
	})
}

// File takes the entry called name whatever its kind, as a duplicate the
// caller owns and closes. Errors are as for [Listeners.Listener].
func (ls *Listeners) File(name string) (*os.File, error) {
	return take(ls, name, kindAny, func(f *os.File) (*os.File, error) { return f, nil })
}

// take marks the entry name taken once open has made a T of a fresh
// duplicate. open owns the duplicate: it returns it or closes it.
func take[T any](ls *Listeners, name string, want kindWant, open func(*os.File) (T, error)) (T, error) {
	var zero T
	if ls == nil {
		ls = &Listeners{}
	}
	ls.mu.Lock()
	defer ls.mu.Unlock()
	e, err := ls.lookup(name)
	if err != nil {
		return zero, err
	}
	if err := want.check(e); err != nil {
		return zero, err
	}
	dup, err := sysx.DupFD(e.fd, e.name)
	if err != nil {
		return zero, err
	}
	v, err := open(dup)
	if err != nil {
		return zero, fmt.Errorf("handoff: listener %q: %w", name, err)
	}
	e.taken = true
	return v, nil
}

// lookup finds the untaken entry name; ls.mu is held.
func (ls *Listeners) lookup(name string) (*listenerEntry, error) {
	if ls.closed {
		return nil, fmt.Errorf("handoff: listener %q: listeners closed: %w", name, ErrClosed)
	}
	for _, e := range ls.entries {
		if e.name != name {
			continue
		}
		if e.taken {
			return nil, fmt.Errorf("handoff: listener %q was already taken: %w", name, ErrUsed)
		}
		return e, nil
	}
	return nil, fmt.Errorf("handoff: listener %q not inherited (have: %s): %w", name, ls.namesList(), ErrNoListener)
}

func (ls *Listeners) namesList() string {
	if len(ls.entries) == 0 {
		return "none"
	}
	names := make([]string, len(ls.entries))
	for i, e := range ls.entries {
		names[i] = fmt.Sprintf("%q", e.name)
	}
	return strings.Join(names, ", ")
}

// duplicates returns a fresh duplicate of every kept descriptor, taken or
// not, with its name, in fd order; the caller closes the files. It exists to
// answer a restarted supervisor's ListenersRequest and for nothing else.
func (ls *Listeners) duplicates() (names []string, files []*os.File, err error) {
	if ls == nil {
		return nil, nil, nil
	}
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if ls.closed {
		return nil, nil, fmt.Errorf("handoff: duplicate listeners: %w", ErrClosed)
	}
	for _, e := range ls.entries {
		f, err := sysx.DupFD(e.fd, e.name)
		if err != nil {
			fdpass.CloseAll(files)
			return nil, nil, err
		}
		names, files = append(names, e.name), append(files, f)
	}
	return names, files, nil
}

// Close closes the kept descriptors. Call it only when the process is about
// to exit, or in tests: afterwards the incumbent can no longer hand the
// sockets back to a restarted supervisor. What the daemon took stays open.
// Close is idempotent.
func (ls *Listeners) Close() error {
	if ls == nil {
		return nil
	}
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if ls.closed {
		return nil
	}
	ls.closed = true
	var errs []error
	for _, e := range ls.entries {
		if err := unix.Close(e.fd); err != nil {
			errs = append(errs, fmt.Errorf("handoff: close listener %q: %w", e.name, os.NewSyscallError("close", err)))
		}
	}
	return errors.Join(errs...)
}

func closeFDs(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}
