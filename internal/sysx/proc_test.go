package sysx

import (
	"context"
	"errors"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/handoff-go/handoff/internal/testproc"
)

func TestParseProcStat_commandNameWithParens(t *testing.T) {
	rest := " S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 424242 20 21\n"
	tests := []struct {
		name      string
		line      string
		wantState byte
		wantStart uint64
		wantErr   bool
	}{
		{name: "plain", line: "77 (kvd)" + rest, wantState: 'S', wantStart: 424242},
		{name: "parens and spaces in comm", line: "77 (a) b (c) d)" + rest, wantState: 'S', wantStart: 424242},
		{name: "zombie", line: "77 (kvd) Z 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 9 20\n", wantState: 'Z', wantStart: 9},
		{name: "no paren", line: "77 kvd S 1 2", wantErr: true},
		{name: "truncated", line: "77 (kvd) S 1 2 3", wantErr: true},
		{name: "bad start", line: "77 (kvd) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 x 20\n", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st, err := parseProcStat(77, []byte(tc.line))
			if tc.wantErr {
				if err == nil {
					t.Fatalf("parse %q: got %+v, want an error", tc.line, st)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if st.state != tc.wantState || st.startTime != tc.wantStart {
				t.Fatalf("parse %q: got state %c start %d, want %c %d", tc.line, st.state, st.startTime, tc.wantState, tc.wantStart)
			}
		})
	}
}

func TestProcStartTime_selfAndChild(t *testing.T) {
	testproc.CheckLeaks(t)
	self, err := ProcStartTime(os.Getpid())
	if err != nil || self == 0 {
		t.Fatalf("ProcStartTime(self) = %d, %v; want a positive tick count", self, err)
	}
	before := time.Now()
	c := startRole(t, "print-start")
	reported, err := strconv.ParseUint(c.Line(t), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ProcStartTime(c.Pid())
	if err != nil {
		t.Fatal(err)
	}
	if got != reported {
		t.Fatalf("ProcStartTime(child) = %d, the child read %d for itself", got, reported)
	}
	if got < self {
		t.Fatalf("child started at %d, before its parent at %d", got, self)
	}
	// The child started after `before`; its wall-clock start, good to a
	// tick, must say so (and not lie in the future).
	at, err := ProcStartedAt(c.Pid())
	if err != nil {
		t.Fatal(err)
	}
	if tick := time.Second / userHZ; at.Before(before.Add(-2*tick)) || at.After(time.Now().Add(2*tick)) {
		t.Errorf("ProcStartedAt(child) = %v, want between %v and now (%v)", at, before, time.Now())
	}
	c.Wait(t)
	if _, err := ProcStartTime(c.Pid()); !errors.Is(err, ErrProcessGone) {
		t.Fatalf("ProcStartTime(reaped child) error = %v, want ErrProcessGone", err)
	}
}

func TestOpenProcess_signalAndWait(t *testing.T) {
	testproc.CheckLeaks(t)
	c := startRole(t, "sleep")
	c.Line(t)
	start, err := ProcStartTime(c.Pid())
	if err != nil {
		t.Fatal(err)
	}
	p, err := OpenProcess(c.Pid(), start)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if p.PID() != c.Pid() || p.StartTime() != start {
		t.Fatalf("Process names pid %d start %d, want %d %d", p.PID(), p.StartTime(), c.Pid(), start)
	}
	// The child blocks on its stdin, which stays open: it cannot have exited.
	if p.Exited() {
		t.Fatal("Exited() = true for a process blocked on its stdin")
	}
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitCtx(t, p)
	if !p.Exited() {
		t.Fatal("Exited() = false after Wait returned")
	}
	// Exited but not reaped: a zombie, which is not alive.
	if Alive(c.Pid()) {
		t.Fatal("Alive(zombie) = true")
	}
	if ws := c.Wait(t); !ws.Signaled() || ws.Signal() != syscall.SIGTERM {
		t.Fatalf("child wait status %v, want killed by SIGTERM", ws)
	}
	if err := p.Signal(syscall.SIGTERM); !errors.Is(err, ErrProcessGone) {
		t.Fatalf("Signal after reap: %v, want ErrProcessGone", err)
	}
}

func waitCtx(t *testing.T, p *Process) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := p.Wait(ctx); err != nil {
		t.Fatalf("Wait: %v", err)
	}
}

func TestOpenProcess_rejectsReusedPid(t *testing.T) {
	testproc.CheckLeaks(t)
	c := startRole(t, "sleep")
	c.Line(t)
	start, err := ProcStartTime(c.Pid())
	if err != nil {
		t.Fatal(err)
	}
	// A recorded start time that differs is what a recycled pid looks like.
	_, err = OpenProcess(c.Pid(), start+1)
	if !errors.Is(err, ErrPidReused) || !errors.Is(err, ErrProcessGone) {
		t.Fatalf("OpenProcess with a wrong start time: %v, want ErrPidReused and ErrProcessGone", err)
	}
	c.Wait(t)
	if _, err := OpenProcess(c.Pid(), start); !errors.Is(err, ErrProcessGone) {
		t.Fatalf("OpenProcess of a reaped child: %v, want ErrProcessGone", err)
	}
}

func TestProcessWait_contextEnds(t *testing.T) {
	testproc.CheckLeaks(t)
	c := startRole(t, "sleep")
	c.Line(t)
	p, err := OpenProcess(c.Pid(), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Wait(ctx) }()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait on a live process with a cancelled context: %v, want context.Canceled", err)
	}
	// The first Wait's cancellation must not leak into the next one.
	if err := p.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitCtx(t, p)
	c.Wait(t)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("second Close: %v, want nil", err)
	}
	if p.Exited() {
		t.Fatal("Exited() = true after Close")
	}
}

func TestAlive(t *testing.T) {
	tests := []struct {
		name string
		pid  int
		want bool
	}{
		{name: "self", pid: os.Getpid(), want: true},
		{name: "init is alive even if we may not signal it", pid: 1, want: true},
		{name: "zero never", pid: 0, want: false},
		{name: "minus one never", pid: -1, want: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Alive(tc.pid); got != tc.want {
				t.Fatalf("Alive(%d) = %v, want %v", tc.pid, got, tc.want)
			}
		})
	}
}
