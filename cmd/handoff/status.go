package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"
)

const statusAbout = `Show what the running supervisor knows: the incumbent (pid, build id, uptime),
the listeners, the incumbent's own state snapshot, the last swap with its phase
durations, the old generations still draining, and the counters.

Exit status: 0 an incumbent serves, 1 none does, 2 error (supervisor
unreachable).`

// runStatus is `handoff status`.
func runStatus(args []string) int {
	fs := newFlagSet("status", "handoff status [--config FILE | --socket PATH] [--json]",
		statusAbout, "handoff status --config /etc/handoff/kvd.toml")
	cfgPath := fs.String("config", "", "the supervisor's config `file` (to find its trigger socket)")
	socket := fs.String("socket", "", "the supervisor's trigger socket `path`")
	asJSON := fs.Bool("json", false, "print the status as one JSON object")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	path, err := triggerPath(*cfgPath, *socket)
	if err != nil {
		return fail(err)
	}
	st, line, err := fetchStatus(path)
	if err != nil {
		return fail(err)
	}
	if *asJSON {
		fmt.Printf("%s\n", line)
	} else {
		printStatus(os.Stdout, st)
	}
	if st.Incumbent == nil {
		return exitRolledBack
	}
	return exitOK
}

// fetchStatus asks the supervisor at path for its status.
func fetchStatus(path string) (statusEvent, []byte, error) {
	var st statusEvent
	line, kind, err := call(path, request{Op: opStatus}, func([]byte, string) {})
	if err != nil {
		return st, nil, err
	}
	if kind != evStatus {
		return st, nil, decodeError(line)
	}
	if err := json.Unmarshal(line, &st); err != nil {
		return st, nil, fmt.Errorf("handoff: bad status event: %w", err)
	}
	return st, line, nil
}

// printStatus renders a status for a person.
func printStatus(out io.Writer, st statusEvent) {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	row := func(k, format string, args ...any) { fmt.Fprintf(w, "%s\t"+format+"\n", append([]any{k}, args...)...) }
	row("supervisor", "pid %d, up %s, config %s", st.SupervisorPID, fmtUptime(st.SupervisorUpMS), st.Config)
	if i := st.Incumbent; i != nil {
		row("incumbent", "pid %d, build %s, up %s, %s", i.PID, orNone(i.BuildID), fmtUptime(i.UptimeMS), i.Binary)
	} else {
		row("incumbent", "none running")
	}
	for n, l := range st.Listeners {
		row(map[bool]string{true: "listeners"}[n == 0], "%s  %s %s (%s)", l.Name, l.Network, l.Address, l.Source)
	}
	printSnapshot(row, st)
	printLast(row, st.LastOutcome)
	row("draining", "%s (at most %d)", pidList(st.Draining), st.MaxDraining)
	c := st.Counters
	row("counters", "%d committed, %d rolled back, %d restarts", c.Handoffs, c.Rollbacks, c.Restarts)
	if st.MetricsAddr != "" {
		row("metrics", "http://%s/metrics", st.MetricsAddr)
	}
	w.Flush()
}

func printSnapshot(row func(k, format string, args ...any), st statusEvent) {
	if s := st.Snapshot; s != nil {
		row("state", "%d shards, %d open connections, revisions %v", s.ShardCount, s.OpenConns, s.LastRevisionPerShard)
	} else if st.SnapshotError != "" {
		row("state", "unavailable: %s", st.SnapshotError)
	}
}

func printLast(row func(k, format string, args ...any), o *outcomeJSON) {
	if o == nil {
		row("last swap", "none yet")
		return
	}
	ago := ""
	if o.Finished != nil {
		ago = fmt.Sprintf(", %s ago", time.Since(*o.Finished).Round(time.Second))
	}
	row("last swap", "%s in %s%s", outcomeWord(*o), fmtMS(o.TotalMS), ago)
	if !o.Committed && o.Cause != "" && o.Reason != "dry-run" {
		row("", "cause: %s", causeText(*o))
	}
	var phases []string
	for _, p := range o.Phases {
		phases = append(phases, p.Phase+" "+fmtMS(p.TookMS))
	}
	if len(phases) > 0 {
		row("", "%s", strings.Join(phases, ", "))
	}
}

func pidList(pids []int) string {
	if len(pids) == 0 {
		return "none"
	}
	s := make([]string, len(pids))
	for i, p := range pids {
		s[i] = fmt.Sprint(p)
	}
	return "pids " + strings.Join(s, ", ")
}

func fmtUptime(v float64) string {
	d := msDuration(v)
	if d < time.Minute {
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}
