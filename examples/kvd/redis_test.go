package main

import (
	"net"
	"os/exec"
	"strings"
	"testing"
)

// TestRESP_redisCLI drives kvd with the real redis-cli.
func TestRESP_redisCLI(t *testing.T) {
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		t.Skip("redis-cli not found: install redis-tools to run this test")
	}
	ts := startTestServer(t, faults{})
	host, port, _ := net.SplitHostPort(ts.respAddr)
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.CommandContext(testCtx(t), cli, append([]string{"-h", host, "-p", port}, args...)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("redis-cli %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"PING"}, "PONG"},
		{[]string{"SET", "greeting", "hello world"}, "OK"},
		{[]string{"GET", "greeting"}, "hello world"},
		{[]string{"GET", "missing"}, ""},
	}
	for _, tc := range cases {
		if got := run(tc.args...); got != tc.want {
			t.Errorf("redis-cli %v = %q, want %q", tc.args, got, tc.want)
		}
	}
	if info := run("INFO"); !strings.Contains(info, "kvd_build_id:test-build") {
		t.Errorf("INFO = %q", info)
	}
	if bench, err := exec.LookPath("redis-benchmark"); err == nil {
		out, err := exec.CommandContext(testCtx(t), bench, "-h", host, "-p", port,
			"-t", "set,get", "-n", "2000", "-c", "8", "-q").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "SET") || !strings.Contains(string(out), "GET") {
			t.Errorf("redis-benchmark: %v\n%s", err, out)
		}
	}
}
