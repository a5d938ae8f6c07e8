package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// kvdBuild builds examples/kvd once, for the test that runs the real
// example daemon under `handoff supervise`.
var kvdBuild struct {
	once sync.Once
	path string
	err  error
}

func kvdBinary(t *testing.T) string {
	t.Helper()
	kvdBuild.once.Do(func() {
		out := filepath.Join(bins.dir, "kvd-e2e")
		if b, err := exec.Command("go", "build", "-o", out, "../../examples/kvd").CombinedOutput(); err != nil {
			kvdBuild.err = fmt.Errorf("build examples/kvd: %w\n%s", err, b)
			return
		}
		kvdBuild.path = out
	})
	if kvdBuild.err != nil {
		t.Fatal(kvdBuild.err)
	}
	return kvdBuild.path
}

// TestSupervise_kvdKeepsItsWritesAcrossASwap is the operator guide's path
// with the real example daemon: two named listeners, a write acknowledged
// by the first process, `handoff upgrade` to another binary, and the write
// read back from the new process on the same socket.
func TestSupervise_kvdKeepsItsWritesAcrossASwap(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	copyFile(t, kvdBinary(t), f.bin("daemon"))
	copyFile(t, kvdBinary(t), f.bin("daemon-next"))
	f.start(options{listeners: tcpListener + "[[listener]]\nname = \"resp\"\nnetwork = \"tcp\"\naddress = \"127.0.0.1:0\"\n"})
	base := "http://" + f.listenerAddr("http")
	old := f.incumbent()
	httpDo(t, http.MethodPut, base+"/kv/greeting", "hello")
	if r := f.upgrade("--binary", f.bin("daemon-next")); r.code != 0 {
		t.Fatalf("upgrade: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	var st struct {
		PID int `json:"pid"`
	}
	if err := json.Unmarshal([]byte(httpDo(t, http.MethodGet, base+"/stats", "")), &st); err != nil || st.PID == old || st.PID != f.incumbent() {
		t.Fatalf("stats pid %d (%v): want the new incumbent, not %d", st.PID, err, old)
	}
	if got := httpDo(t, http.MethodGet, base+"/kv/greeting", ""); got != "hello" {
		t.Fatalf("GET after the swap = %q, want %q", got, "hello")
	}
	f.stop()
}

// httpDo sends one request without keep-alive and returns the body.
func httpDo(t *testing.T, method, url, body string) string {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Close = true
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("%s %s: %d %q %v", method, url, resp.StatusCode, b, err)
	}
	return string(b)
}
