// Command supervisor is the small supervisor the end-to-end tests in test/
// drive: package supervisor with a journal and a data dir, listeners bound on
// loopback (or taken back from a live incumbent after a restart), commands
// from stdin and results on stdout, one JSON object per line.
//
//	supervisor -control PATH -journal PATH -data DIR -listen http,resp -coldstart JSON
//
// On start it calls ResumeFromJournal; when no incumbent answers it binds one
// TCP listener per name on 127.0.0.1:0 and cold-starts the spec given by
// -coldstart. It then prints a "ready" event naming its listeners with their
// addresses and socket inodes (a restarted driver must report the same
// inodes: it took the very same kernel sockets back), runs Supervisor.Run in
// the background (restarts of a crashed incumbent) and reads commands:
//
//	{"op":"swap","binary":"/path/kvd","args":[...],"env":[...],"deadline_ms":10000}
//	{"op":"release"}  let a swap started with "hold": true commit
//	{"op":"status"}
//	{"op":"stop"}   stop the incumbent gracefully, close, exit 0
//
// End of input makes it exit at once and leave the incumbent running, as a
// supervisor that is upgraded or crashes would.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/handoff-go/handoff/internal/sysx"
	"github.com/handoff-go/handoff/supervisor"
)

// spec is a SpawnSpec as the tests write it.
type spec struct {
	Binary       string   `json:"binary"`
	Args         []string `json:"args"`
	Env          []string `json:"env"`
	DeadlineMS   int      `json:"deadline_ms"`
	DrainGraceMS int      `json:"drain_grace_ms"`
	// Hold makes the swap wait after Ready, before Commit, until a
	// "release" command: a health probe the test controls.
	Hold bool `json:"hold"`
}

func (s spec) spawnSpec() supervisor.SpawnSpec {
	return supervisor.SpawnSpec{
		Binary: s.Binary, Args: s.Args, Env: s.Env,
		Deadline:   time.Duration(s.DeadlineMS) * time.Millisecond,
		DrainGrace: time.Duration(s.DrainGraceMS) * time.Millisecond,
	}
}

// command is one line of input.
type command struct {
	Op string `json:"op"`
	spec
}

// listenerInfo describes one listening socket the driver holds.
type listenerInfo struct {
	Name  string `json:"name"`
	Addr  string `json:"addr"`
	Inode uint64 `json:"inode"`
}

// out serialises events on stdout.
type out struct {
	mu  sync.Mutex
	enc *json.Encoder
}

func (o *out) emit(v map[string]any) {
	o.mu.Lock()
	defer o.mu.Unlock()
	_ = o.enc.Encode(v)
}

type config struct {
	control, journal, data, listen, coldstart string
}

func main() {
	var cfg config
	flag.StringVar(&cfg.control, "control", "", "control socket path of the daemon")
	flag.StringVar(&cfg.journal, "journal", "", "journal path")
	flag.StringVar(&cfg.data, "data", "", "daemon data directory")
	flag.StringVar(&cfg.listen, "listen", "http,resp", "listener names to bind on 127.0.0.1:0 at a cold start")
	flag.StringVar(&cfg.coldstart, "coldstart", "", "JSON spec of the daemon to cold-start")
	flag.Parse()
	o := &out{enc: json.NewEncoder(os.Stdout)}
	if err := run(cfg, o); err != nil {
		o.emit(map[string]any{"event": "fatal", "error": err.Error()})
		os.Exit(1)
	}
}

func run(cfg config, o *out) error {
	var cold spec
	if err := json.Unmarshal([]byte(cfg.coldstart), &cold); err != nil {
		return fmt.Errorf("-coldstart: %w", err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s, err := supervisor.New(cfg.control, supervisor.WithJournal(cfg.journal), supervisor.WithDataDir(cfg.data),
		supervisor.WithLogger(log.With("pid", os.Getpid())), supervisor.WithStdio(os.Stderr, os.Stderr))
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	adopted, err := s.ResumeFromJournal(ctx, cold.spawnSpec())
	if err != nil {
		return fmt.Errorf("resume from journal: %w", err)
	}
	if !adopted {
		if err := coldStart(ctx, s, cfg.listen, cold); err != nil {
			return err
		}
	}
	if err := announce(s, o, adopted); err != nil {
		return err
	}
	go func() { o.emit(map[string]any{"event": "run-ended", "error": errText(s.Run(ctx))}) }()
	go watchIncumbent(ctx, s, o)
	return serveCommands(ctx, s, o)
}

// coldStart binds the listeners and starts the first incumbent.
func coldStart(ctx context.Context, s *supervisor.Supervisor, names string, cold spec) error {
	var ls []supervisor.Listener
	for _, name := range strings.Split(names, ",") {
		f, err := bindLoopback(name)
		if err != nil {
			return err
		}
		ls = append(ls, supervisor.Listener{Name: name, File: f})
	}
	if err := s.SetListeners(ls); err != nil {
		return err
	}
	return s.Start(ctx, cold.spawnSpec())
}

// bindLoopback listens on 127.0.0.1:0 and keeps a close-on-exec duplicate of
// the socket (never through Fd, which would make the shared socket blocking).
func bindLoopback(name string) (*os.File, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen for %s: %w", name, err)
	}
	defer ln.Close()
	return sysx.DupFile(ln.(*net.TCPListener), name)
}

func announce(s *supervisor.Supervisor, o *out, adopted bool) error {
	var infos []listenerInfo
	for _, name := range s.Listeners() {
		info, err := describe(name, s.ListenerFile(name))
		if err != nil {
			return err
		}
		infos = append(infos, info)
	}
	o.emit(map[string]any{"event": "ready", "pid": os.Getpid(), "adopted": adopted,
		"incumbent": s.Incumbent(), "listeners": infos})
	return nil
}

// describe reads a listener's address (getsockname) and socket inode
// (fstat) through SyscallConn, leaving the descriptor's mode alone.
func describe(name string, f *os.File) (listenerInfo, error) {
	if f == nil {
		return listenerInfo{}, fmt.Errorf("no file for listener %s", name)
	}
	_, ino, err := sysx.FileInode(f)
	if err != nil {
		return listenerInfo{}, err
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return listenerInfo{}, err
	}
	var sa unix.Sockaddr
	var saErr error
	if err := rc.Control(func(fd uintptr) { sa, saErr = unix.Getsockname(int(fd)) }); err != nil {
		return listenerInfo{}, err
	}
	if saErr != nil {
		return listenerInfo{}, fmt.Errorf("getsockname %s: %w", name, saErr)
	}
	info := listenerInfo{Name: name, Inode: ino}
	if in4, ok := sa.(*unix.SockaddrInet4); ok {
		info.Addr = net.JoinHostPort(net.IP(in4.Addr[:]).String(), fmt.Sprint(in4.Port))
	}
	return info, nil
}

// watchIncumbent reports every change of the incumbent's pid (a swap, a
// restart after a crash), so the tests know every process that served.
func watchIncumbent(ctx context.Context, s *supervisor.Supervisor, o *out) {
	last := s.Incumbent()
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if pid := s.Incumbent(); pid != last {
			last = pid
			o.emit(map[string]any{"event": "incumbent", "pid": pid})
		}
	}
}

func serveCommands(ctx context.Context, s *supervisor.Supervisor, o *out) error {
	var swaps sync.WaitGroup
	gate := make(chan struct{})
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		var c command
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
			o.emit(map[string]any{"event": "error", "error": err.Error()})
			continue
		}
		switch c.Op {
		case "swap":
			swaps.Add(1)
			g := gate
			go func() { defer swaps.Done(); swap(ctx, s, o, c.spec, g) }()
		case "release":
			close(gate)
			gate = make(chan struct{})
		case "status":
			st := s.Status()
			o.emit(map[string]any{"event": "status", "incumbent": st.IncumbentPID, "draining": st.Draining})
		case "stop":
			swaps.Wait()
			s.Stop(10 * time.Second)
			o.emit(map[string]any{"event": "stopped"})
			return s.Close()
		default:
			o.emit(map[string]any{"event": "error", "error": "unknown op " + c.Op})
		}
	}
	return nil // end of input: leave the incumbent running
}

func swap(ctx context.Context, s *supervisor.Supervisor, o *out, sp spec, gate <-chan struct{}) {
	ss := sp.spawnSpec()
	if sp.Hold {
		ss.Probe = func(ctx context.Context) error {
			o.emit(map[string]any{"event": "holding"})
			select {
			case <-gate:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	ss.OnEvent = func(p supervisor.Progress) {
		o.emit(map[string]any{"event": "progress", "step": p.Step, "detail": p.Detail})
	}
	out, err := s.PerformHandoff(ctx, ss)
	o.emit(map[string]any{"event": "outcome", "committed": out.Committed, "old_pid": out.OldPID,
		"new_pid": out.NewPID, "reason": out.Reason, "cause": out.Cause, "error": errText(err),
		"in_progress": errors.Is(err, supervisor.ErrHandoffInProgress), "total_ms": out.Total.Milliseconds()})
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
