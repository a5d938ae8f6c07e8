package main

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// TestStatus_reportsIncumbentStateAndLastSwap: status shows the incumbent,
// its own snapshot (asked over the control socket), the listeners, the last
// swap with its phase durations and the counters, as JSON and for people.
func TestStatus_reportsIncumbentStateAndLastSwap(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.start(options{})
	addr := f.listenerAddr("http")
	get(t, "tcp", addr)
	get(t, "tcp", addr)
	if r := f.upgrade("--binary", f.bin("daemon-next")); r.code != 0 {
		t.Fatalf("upgrade: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	st := f.status()
	inc, snap := st.Incumbent, st.Snapshot
	if inc == nil || snap == nil || snap.PID != inc.PID || snap.BuildID != "daemon-next" || inc.BuildID != "daemon-next" {
		t.Fatalf("incumbent %+v snapshot %+v (%s)", inc, snap, st.SnapshotError)
	}
	if snap.ShardCount != 1 || len(snap.LastRevisionPerShard) != 1 || snap.LastRevisionPerShard[0] != 2 || strings.Join(snap.Listeners, ",") != "http" {
		t.Errorf("snapshot %+v: want 1 shard at revision 2 (two requests sealed), listener http", snap)
	}
	last := st.LastOutcome
	if last == nil || !last.Committed || len(last.Phases) != 6 || last.Finished == nil || st.Counters.Handoffs != 1 {
		t.Fatalf("last outcome %+v, counters %+v", last, st.Counters)
	}
	r := f.handoff("status", "--config", f.config)
	for _, w := range []string{
		fmt.Sprintf("incumbent   pid %d, build daemon-next", inc.PID), "listeners   http  tcp " + addr + " (bound)",
		"state       1 shards, 0 open connections, revisions [2]", "last swap   committed pid", "spawned ",
		"draining    ", "counters    1 committed, 0 rolled back, 0 restarts",
	} {
		if r.code != 0 || !strings.Contains(r.stdout, w) {
			t.Errorf("exit %d; status lacks %q:\n%s", r.code, w, r.stdout)
		}
	}
	f.stop()
}

// TestMetrics_countersMatchTheSwaps scrapes /metrics with the Prometheus
// text parser after two commits, a rollback and a dry run.
func TestMetrics_countersMatchTheSwaps(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.start(options{extra: `metrics_addr = "127.0.0.1:0"`})
	for _, args := range [][]string{{"--binary", f.bin("daemon-next")}, {"--binary", f.bin("daemon-broken")}, {"--dry-run"}, {}} {
		f.upgrade(args...)
	}
	st := f.status()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := parser.TextToMetricFamilies(strings.NewReader(scrape(t, "http://"+st.MetricsAddr+"/metrics")))
	if err != nil {
		t.Fatal(err)
	}
	sum := func(name string) float64 {
		var s float64
		for _, m := range mfs[name].GetMetric() {
			s += m.GetCounter().GetValue()
		}
		return s
	}
	want := map[string]float64{
		"handoff_handoffs_total":           2,
		"handoff_failures_total":           1,
		"handoff_rolled_back_total":        1,
		"handoff_seal_failures_total":      0,
		"handoff_incumbent_restarts_total": 0,
	}
	for name, v := range want {
		if got := sum(name); got != v {
			t.Errorf("%s = %v, want %v", name, got, v)
		}
	}
	rb := mfs["handoff_rolled_back_total"].GetMetric()
	if len(rb) != 1 || rb[0].GetLabel()[0].GetValue() != "successor-exited" {
		t.Errorf("rolled back by reason: %v", rb)
	}
	if n := mfs["handoff_duration_seconds"].GetMetric()[0].GetHistogram().GetSampleCount(); n != 3 {
		t.Errorf("handoff_duration_seconds count %d, want 3 (dry runs excluded)", n)
	}
	if _, ok := mfs["go_goroutines"]; !ok {
		t.Error("no Go runtime metrics")
	}
	if c := st.Counters; c.Handoffs != 2 || c.Rollbacks != 1 {
		t.Errorf("status counters %+v disagree with /metrics", c)
	}
	f.stop()
}

// scrape returns the body of a /metrics page.
func scrape(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %v", url, resp.StatusCode, err)
	}
	return string(body)
}

// TestSwaps_backToBackStayWithinMaxDraining: old generations that keep
// running after Commit (finishing reads) are capped at max_draining; a
// swap beyond the cap stops the oldest first. status lists them.
func TestSwaps_backToBackStayWithinMaxDraining(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.start(options{extra: "max_draining = 1\nexit_grace = \"1h\"\nenv = { DAEMON_LINGER = \"1h\" }"})
	var olds []int
	for i := 0; i < 3; i++ {
		olds = append(olds, f.incumbent())
		if r := f.upgrade(); r.code != 0 {
			t.Fatalf("swap %d: exit %d\n%s%s", i, r.code, r.stdout, r.stderr)
		}
		st := f.status()
		if len(st.Draining) != 1 || st.Draining[0] != olds[i] || st.MaxDraining != 1 {
			t.Fatalf("swap %d: draining %v, want [%d] (max 1)", i, st.Draining, olds[i])
		}
		for _, gone := range olds[:i] {
			if alive(gone) {
				t.Fatalf("swap %d: generation %d beyond max_draining still runs", i, gone)
			}
		}
	}
	f.stop()
}
