package main

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/handoff-go/handoff/examples/kvd/store"
)

// httpDo sends one request to ts and returns status and body.
func httpDo(t *testing.T, ts *testServer, method, path, body string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequestWithContext(testCtx(t), method, "http://"+ts.httpAddr+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b), resp.Header
}

func TestHTTP_putGet(t *testing.T) {
	ts := startTestServer(t, faults{})
	t.Cleanup(http.DefaultClient.CloseIdleConnections)
	if code, body, h := httpDo(t, ts, "PUT", "/kv/a", "hello"); code != 200 || body != "{\"revision\":1}\n" || h.Get("Kvd-Revision") != "1" {
		t.Fatalf("PUT: %d %q %v", code, body, h)
	}
	if code, body, _ := httpDo(t, ts, "GET", "/kv/a", ""); code != 200 || body != "hello" {
		t.Fatalf("GET: %d %q", code, body)
	}
	if code, _, _ := httpDo(t, ts, "GET", "/kv/missing", ""); code != 404 {
		t.Fatalf("GET missing: %d, want 404", code)
	}
	if code, _, _ := httpDo(t, ts, "POST", "/kv/a", "x"); code != 405 {
		t.Fatalf("POST: %d, want 405", code)
	}
	if code, _, _ := httpDo(t, ts, "PUT", "/kv/big", strings.Repeat("x", store.MaxValueSize+1)); code != 413 {
		t.Fatalf("PUT too large: %d, want 413", code)
	}
	if code, _, _ := httpDo(t, ts, "PUT", "/kv/"+strings.Repeat("k", store.MaxKeySize+1), "x"); code != 400 {
		t.Fatalf("PUT long key: %d, want 400", code)
	}
}

func TestHTTP_statsAndHealthz(t *testing.T) {
	ts := startTestServer(t, faults{})
	t.Cleanup(http.DefaultClient.CloseIdleConnections)
	httpDo(t, ts, "PUT", "/kv/a", "1")
	httpDo(t, ts, "PUT", "/kv/b", "2")
	code, body, _ := httpDo(t, ts, "GET", "/stats", "")
	var st stats
	if err := json.Unmarshal([]byte(body), &st); err != nil || code != 200 {
		t.Fatalf("stats: %d %q (%v)", code, body, err)
	}
	if st.BuildID != "test-build" || st.Revision != 2 || st.Keys != 2 || st.PID == 0 || st.Sealed {
		t.Fatalf("stats = %+v", st)
	}
	if code, body, _ := httpDo(t, ts, "GET", "/healthz", ""); code != 200 || body != "ok\n" {
		t.Fatalf("healthz: %d %q", code, body)
	}
	sick := startTestServer(t, faults{unhealthy: true})
	if code, _, _ := httpDo(t, sick, "GET", "/healthz", ""); code != 503 {
		t.Fatalf("healthz with --fail unhealthy: %d, want 503", code)
	}
}
