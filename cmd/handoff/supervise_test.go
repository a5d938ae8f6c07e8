package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/handoff-go/handoff/internal/sysx"
)

// TestSuperviseCheck_validatesWithoutStarting: --check exits 0 with the
// plan for a good config, 2 with one error naming the field for a bad one,
// and starts nothing.
func TestSuperviseCheck_validatesWithoutStarting(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		extra string
		code  int
		want  []string
	}{
		{name: "valid", code: 0, want: []string{"is valid", "http tcp 127.0.0.1:0 (fd 3)", "trigger.sock (mode 0600"}},
		{name: "bad duration", extra: `deadline = "sixty"`, code: 2, want: []string{"handoff.toml:7: deadline:", `"sixty" is not a duration`}},
		{name: "unknown key", extra: `dedline = "60s"`, code: 2, want: []string{"dedline: unknown key"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			f.writeConfig(options{extra: tc.extra})
			r := f.handoff("supervise", "--config", f.config, "--check")
			out := r.stdout + r.stderr
			if r.code != tc.code {
				t.Fatalf("exit %d, want %d:\n%s", r.code, tc.code, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			if _, err := os.Stat(f.trigger); !os.IsNotExist(err) {
				t.Errorf("--check created the trigger socket (%v)", err)
			}
		})
	}
}

func TestSupervise_requiresConfig(t *testing.T) {
	t.Parallel()
	r := runHandoff(t, nil, "supervise")
	if r.code != 2 || !strings.Contains(r.stderr, "--config FILE is required") {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
}

// TestSupervise_notifiesSystemd checks the sd_notify conversation: READY=1
// once the first incumbent serves, RELOADING=1 with MONOTONIC_USEC= before
// a swap and READY=1 after it, STATUS= naming the incumbent, STOPPING=1 at
// the stop; and the listener handed to the fd store.
func TestSupervise_notifiesSystemd(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.start(options{})
	if !contains(f.notify.seen, "FDSTORE=1\nFDNAME=http") {
		t.Errorf("no FDSTORE for the listener before READY=1: %q", f.notify.seen)
	}
	status := f.notify.waitFor(t, "STATUS=", nil)
	if want := "STATUS=incumbent pid " + strconv.Itoa(f.incumbent()); !strings.HasPrefix(status, want) {
		t.Errorf("got %q, want %q…", status, want)
	}
	if r := f.upgrade(); r.code != 0 {
		t.Fatalf("upgrade: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	reload := f.notify.waitFor(t, "RELOADING=1", nil)
	if !strings.Contains(reload, "\nMONOTONIC_USEC=") {
		t.Errorf("RELOADING=1 without MONOTONIC_USEC: %q", reload)
	}
	f.notify.waitFor(t, "READY=1", nil)
	status = f.notify.waitFor(t, "STATUS=", nil)
	if want := "incumbent pid " + strconv.Itoa(f.incumbent()); !strings.Contains(status, want) || !strings.Contains(status, "last swap committed") {
		t.Errorf("got %q, want %q and the last swap", status, want)
	}
	f.stop()
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// TestSupervise_restartsACrashedIncumbent: the listening socket stays open
// while the incumbent is down, so a client connecting meanwhile waits in
// the backlog and is served by the restarted daemon, never refused. The
// restart is held at a gate until the client has connected and sent its
// request, and the client connects only once the old process is gone.
func TestSupervise_restartsACrashedIncumbent(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	gate := filepath.Join(f.dir, "gate")
	f.start(options{extra: fmt.Sprintf("env = { DAEMON_GATE = %q }", gate)})
	addr := f.listenerAddr("http")
	old := f.incumbent()
	if err := unix.Mkfifo(gate, 0o600); err != nil {
		t.Fatal(err)
	}
	killAndWait(t, old)
	c, err := net.Dial("tcp", addr) // no process accepts now: the backlog holds it
	if err != nil {
		t.Fatalf("connect while the incumbent is down: %v", err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: test\r\n\r\n")
	openGate(t, gate)
	pid := readPID(t, c)
	if pid == old {
		t.Fatalf("served by the killed pid %d", old)
	}
	f.track(pid)
	st := f.status()
	if st.Incumbent == nil || st.Incumbent.PID != pid || st.Counters.Restarts != 1 {
		t.Fatalf("status after the crash: incumbent %+v, counters %+v", st.Incumbent, st.Counters)
	}
	f.stop()
}

// killAndWait SIGKILLs pid and waits, through a pidfd, until it is gone.
func killAndWait(t *testing.T, pid int) {
	t.Helper()
	p, err := sysx.OpenProcess(pid, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := p.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if err := p.Wait(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestSupervise_socketActivation: sockets passed as systemd passes them
// (LISTEN_FDS, LISTEN_FDNAMES, fds from 3) are used by name instead of
// binding; a missing name or a socket of the wrong kind is refused.
func TestSupervise_socketActivation(t *testing.T) {
	t.Parallel()
	t.Run("used by name", func(t *testing.T) {
		f := newFixture(t)
		ln := listenTCP(t)
		f.start(options{env: []string{"LISTEN_FDS=1", "LISTEN_FDNAMES=http"}, extraFiles: []*os.File{dupOf(t, ln)},
			listeners: "[[listener]]\nname = \"http\"\nnetwork = \"tcp\"\naddress = \"127.0.0.1:1\"\n"})
		st := f.status()
		if len(st.Listeners) != 1 || st.Listeners[0].Source != "systemd" || st.Listeners[0].Address != ln.Addr().String() {
			t.Fatalf("listeners %+v, want the passed socket %s from systemd", st.Listeners, ln.Addr())
		}
		if contains(f.notify.seen, "FDSTORE=1\nFDNAME=http") {
			t.Error("an activated socket was put in the fd store again")
		}
		if pid, _ := get(t, "tcp", ln.Addr().String()); pid != st.Incumbent.PID {
			t.Fatalf("served by %d, incumbent %d", pid, st.Incumbent.PID)
		}
		f.stop()
	})
	refusals := []struct {
		name, names string
		file        func(t *testing.T) *os.File
		want        string
	}{
		{"unknown name", "web", func(t *testing.T) *os.File { return dupOf(t, listenTCP(t)) }, "none named \"http\": set FileDescriptorName=http"},
		{"wrong kind", "http", func(t *testing.T) *os.File { return dupOf(t, listenUDP(t)) }, "the socket is IPv4 datagram but the config says network \"tcp\""},
	}
	for _, tc := range refusals {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			f.launch(options{env: []string{"LISTEN_FDS=1", "LISTEN_FDNAMES=" + tc.names}, extraFiles: []*os.File{tc.file(t)}})
			f.waitExit()
			if code := f.sup.ProcessState.ExitCode(); code != 2 || !strings.Contains(f.stderr.String(), tc.want) {
				t.Fatalf("exit %d, want 2 and %q in:\n%s", code, tc.want, f.stderr)
			}
		})
	}
}

func listenTCP(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

func listenUDP(t *testing.T) net.PacketConn {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	return pc
}

// dupOf returns a close-on-exec dup of a socket (never Fd or File).
func dupOf(t *testing.T, c any) *os.File {
	t.Helper()
	f, err := sysx.DupFile(c.(syscall.Conn), "passed")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// TestSupervise_unixListener: a stale socket file is replaced, the daemon
// serves on the path, and the file is removed at the final stop; a live
// socket at the path is never deleted, the supervisor refuses to start.
func TestSupervise_unixListener(t *testing.T) {
	t.Parallel()
	listener := "[[listener]]\nname = \"http\"\nnetwork = \"unix\"\naddress = \"http.sock\"\n"
	t.Run("stale file replaced, removed at stop", func(t *testing.T) {
		f := newFixture(t)
		path := filepath.Join(f.dir, "http.sock")
		staleSocket(t, path)
		f.start(options{listeners: listener})
		if pid, _ := get(t, "unix", path); pid != f.incumbent() {
			t.Fatal("not served by the incumbent")
		}
		f.stop()
		if _, err := os.Lstat(path); !os.IsNotExist(err) {
			t.Fatalf("socket file left after the stop (%v)", err)
		}
	})
	t.Run("live socket refused", func(t *testing.T) {
		f := newFixture(t)
		path := filepath.Join(f.dir, "http.sock")
		ln, err := net.Listen("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		f.launch(options{listeners: listener})
		f.waitExit()
		if code := f.sup.ProcessState.ExitCode(); code != 2 || !strings.Contains(f.stderr.String(), "is answered by a running process") {
			t.Fatalf("exit %d, stderr:\n%s", code, f.stderr)
		}
		c, err := net.Dial("unix", path)
		if err != nil {
			t.Fatalf("the live socket was broken: %v", err)
		}
		c.Close()
	})
}

// staleSocket leaves a socket file at path with nobody behind it.
func staleSocket(t *testing.T, path string) {
	t.Helper()
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
}

// TestSupervise_refusesASecondSupervisor: a live trigger socket means a
// supervisor runs; a second one with the same config refuses to start and
// leaves the first untouched.
func TestSupervise_refusesASecondSupervisor(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.start(options{})
	r := runCmd(f.t, bins.supervise, nil, "supervise", "--config", f.config)
	if r.code != 2 || !strings.Contains(r.stderr, "is another `handoff supervise` running") {
		t.Fatalf("exit %d, stderr:\n%s", r.code, r.stderr)
	}
	if st := f.status(); st.Incumbent == nil {
		t.Fatal("the first supervisor lost its incumbent")
	}
	f.stop()
}

// TestSupervise_coldStartFailureExitsTwo: a daemon that dies before it
// binds its control socket fails the start with the cause, and the
// supervisor leaves no socket file behind.
func TestSupervise_coldStartFailureExitsTwo(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.launch(options{binary: "daemon-broken"})
	f.waitExit()
	log := f.stderr.String()
	if code := f.sup.ProcessState.ExitCode(); code != 2 || !strings.Contains(log, "cold start of "+f.bin("daemon-broken")) || !strings.Contains(log, "exited before binding") {
		t.Fatalf("exit %d, log:\n%s", code, log)
	}
	if _, err := os.Lstat(f.trigger); !os.IsNotExist(err) {
		t.Errorf("trigger socket left behind (%v)", err)
	}
}

// TestSupervise_adoptsTheIncumbentAfterASupervisorCrash: a supervisor that
// dies leaves the daemon serving on the same sockets; the next supervisor
// reconciles the journal, takes those very sockets back from the incumbent
// and adopts it instead of binding or starting anything, and the next swap
// works (DESIGN section 2, "If S dies mid-swap" and restart).
func TestSupervise_adoptsTheIncumbentAfterASupervisorCrash(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.start(options{})
	addr := f.listenerAddr("http")
	inc := f.incumbent()
	if err := f.sup.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-f.supDone
	if pid, _ := get(t, "tcp", addr); pid != inc {
		t.Fatalf("without a supervisor: served by %d, want %d", pid, inc)
	}
	f.start(options{})
	st := f.status()
	if st.Incumbent == nil || st.Incumbent.PID != inc || len(st.Listeners) != 1 || st.Listeners[0].Source != "adopted" || st.Listeners[0].Address != addr {
		t.Fatalf("after restart: incumbent %+v listeners %+v, want pid %d adopted with %s", st.Incumbent, st.Listeners, inc, addr)
	}
	if r := f.upgrade(); r.code != 0 {
		t.Fatalf("swap from the adopted incumbent: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if pid, _ := get(t, "tcp", addr); pid == inc {
		t.Fatal("still served by the adopted incumbent after the swap")
	}
	f.stop()
}
