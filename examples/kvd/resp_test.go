package main

import (
	"fmt"
	"strings"
	"testing"
)

func TestRESP_commands(t *testing.T) {
	ts := startTestServer(t, faults{})
	c := dialRESP(t, ts.respAddr)
	cases := []struct {
		cmd  string
		want string
	}{
		{"PING", "+PONG"},
		{"ping hello", "$hello"},
		{"ECHO x", "$x"},
		{"GET missing", "$nil"},
		{"SET k v1", "+OK"},
		{"set k v2", "+OK"},
		{"GET k", "$v2"},
		{"SET k v EX 10", "-ERR syntax error (kvd supports SET key value only)"},
		{"GET", "-ERR wrong number of arguments for 'get' command"},
		{"FLUSHALL", "-ERR unknown command 'FLUSHALL'"},
		{"COMMAND DOCS", "*0[]"},
		{"COMMAND", "*0[]"},
		{"CONFIG GET save", "*2[$save $]"},
		{"CONFIG SET save x", "-ERR kvd supports CONFIG GET parameter only"},
		{"SELECT 0", "+OK"},
		{"SELECT 1", "-ERR DB index is out of range"},
	}
	for _, tc := range cases {
		if got := c.call(t, tc.cmd); got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.cmd, got, tc.want)
		}
	}
	info := c.call(t, "INFO")
	for _, want := range []string{"kvd_build_id:test-build", "revision:2", "process_id:"} {
		if !strings.Contains(info, want) {
			t.Errorf("INFO %q lacks %q", info, want)
		}
	}
	if got := c.call(t, "QUIT"); got != "+OK" {
		t.Fatalf("QUIT: %q", got)
	}
	c.wantClosed(t)
}

func TestRESP_pipelinedAndInline(t *testing.T) {
	ts := startTestServer(t, faults{})
	c := dialRESP(t, ts.respAddr)
	var cmds []string
	for i := range 50 {
		cmds = append(cmds, fmt.Sprintf("SET k%d v%d", i, i))
	}
	c.send(t, cmds...)
	for i := range 50 {
		if got := c.reply(t); got != "+OK" {
			t.Fatalf("pipelined SET %d: %q", i, got)
		}
	}
	c.Write([]byte("GET k7\r\n"))
	if got := c.reply(t); got != "$v7" {
		t.Fatalf("inline GET: %q", got)
	}
}

// TestRESP_protocolErrorClosesConnection: a malformed command gets one
// error reply, then the connection is closed (as Redis does).
func TestRESP_protocolErrorClosesConnection(t *testing.T) {
	ts := startTestServer(t, faults{})
	c := dialRESP(t, ts.respAddr)
	c.Write([]byte("*1\r\n$99999999999\r\n"))
	if got := c.reply(t); !strings.HasPrefix(got, "-ERR Protocol error: invalid length") {
		t.Fatalf("got %q", got)
	}
	c.wantClosed(t)
}
