package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"
)

func TestQuantile_nearestRank(t *testing.T) {
	var ds []time.Duration
	for i := 1; i <= 100; i++ {
		ds = append(ds, time.Duration(i))
	}
	s := summarize(ds)
	if s.P50 != 50 || s.P99 != 99 || s.Max != 100 || s.Min != 1 || s.N != 100 {
		t.Fatalf("summary = %+v", s)
	}
}

func TestOverlaps_windows(t *testing.T) {
	ws := []window{{10, 20}, {30, 40}}
	cases := []struct {
		from, to time.Duration
		want     bool
	}{
		{0, 5, false}, {0, 10, true}, {15, 16, true}, {21, 29, false}, {25, 35, true}, {41, 50, false},
	}
	for _, c := range cases {
		if got := overlaps(ws, c.from, c.to); got != c.want {
			t.Errorf("overlaps(%v, %v) = %v, want %v", c.from, c.to, got, c.want)
		}
	}
}

func TestMaxGap_spansTheWindow(t *testing.T) {
	p := &prober{recs: []probeRec{{end: 1}, {end: 2}, {end: 3}, {end: 10}, {end: 11}, {end: 30}}}
	if gap, at := p.maxGap(4, 9); gap != 7 || at != 3 {
		t.Fatalf("maxGap(4, 9) = %v at %v, want 7 at 3", gap, at)
	}
	if gap, _ := p.maxGap(0, 2); gap != 1 {
		t.Fatalf("maxGap(0, 2) = %v, want 1", gap)
	}
}

func TestClassify_errorClasses(t *testing.T) {
	op := func(err error) error {
		return &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", err)}
	}
	cases := []struct {
		err  error
		want errClass
	}{
		{op(syscall.ECONNREFUSED), classRefused},
		{op(syscall.ECONNRESET), classReset},
		{op(syscall.EPIPE), classReset},
		{fmt.Errorf("x: %w", io.EOF), classEOF},
		{os.ErrDeadlineExceeded, classTimeout},
		{&statusError{code: 503}, class5xx},
		{&errRESP{msg: "ERR"}, class5xx},
		{&statusError{code: 400}, classOther},
		{errors.New("odd"), classOther},
	}
	for _, c := range cases {
		if got := classOf(c.err); got != c.want {
			t.Errorf("classOf(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

func TestSelfTest_clientSeesEveryFailure(t *testing.T) {
	st, err := runSelfTest()
	if err != nil {
		t.Fatal(err)
	}
	if !st.Passed || st.Arrivals != 4 {
		t.Fatalf("self-test: %+v", st)
	}
}
