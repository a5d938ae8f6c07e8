package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/handoff-go/handoff/internal/config"
)

// printPlan prints what `handoff supervise` would do with cfg (--check).
func printPlan(out io.Writer, cfg *config.Config) {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "config %s is valid.\n\n", cfg.File)
	row := func(k, format string, args ...any) { fmt.Fprintf(w, "%s\t"+format+"\n", append([]any{k}, args...)...) }
	row("daemon", "%s", strings.Join(append([]string{resolved(cfg.Binary)}, cfg.Args...), " "))
	for _, kv := range cfg.SortedEnv() {
		row("  env", "%s", kv)
	}
	row("control socket", "%s", cfg.ControlSocket)
	row("trigger socket", "%s (mode %#o; admits root, uid %d%s)", cfg.TriggerSocket, triggerMode(cfg), os.Geteuid(), uidList(cfg.AllowedUIDs))
	row("journal", "%s", cfg.Journal)
	row("data dir", "%s", orDash(cfg.DataDir))
	printListeners(row, cfg)
	row("swaps", "deadline %v, drain grace %v; old generations: exit grace %v, at most %d draining", cfg.Deadline, cfg.DrainGrace, cfg.ExitGrace, cfg.MaxDraining)
	for _, b := range cfg.AllowedBinaries {
		row("  allowed binary", "%s", resolved(b))
	}
	row("stop", "SIGTERM to the daemon, SIGKILL after %v", cfg.StopGrace)
	row("metrics", "%s", metricsURL(cfg.MetricsAddr))
	if n, err := somaxconn(); err == nil {
		row("backlog", "net.core.somaxconn = %d%s", n, backlogNote(n))
	}
	for _, warning := range missingDirs(cfg) {
		row("warning", "%s", warning)
	}
	w.Flush()
}

// missingDirs names the directories the supervisor needs that do not exist
// yet (systemd's RuntimeDirectory= may create them at start, so this is a
// warning, not an error).
func missingDirs(cfg *config.Config) []string {
	var out []string
	need := [][2]string{{"control_socket", cfg.ControlSocket}, {"trigger_socket", cfg.TriggerSocket}, {"journal", cfg.Journal}}
	seen := map[string]bool{}
	for _, n := range need {
		dir := filepath.Dir(n[1])
		if _, err := os.Stat(dir); err != nil && !seen[dir] {
			seen[dir] = true
			out = append(out, fmt.Sprintf("directory %s (for %s) does not exist: create it before starting", dir, n[0]))
		}
	}
	return out
}

func printListeners(row func(k, format string, args ...any), cfg *config.Config) {
	if len(cfg.Listeners) == 0 {
		row("listeners", "none")
		return
	}
	for i, l := range cfg.Listeners {
		k := ""
		if i == 0 {
			k = "listeners"
		}
		row(k, "%s %s %s (fd %d)", l.Name, l.Network, l.Address, 3+i)
	}
	row("", "(taken by name from systemd instead when LISTEN_FDS is set)")
}

// resolved shows where a path's links lead, when they lead elsewhere.
func resolved(p string) string {
	if r, err := filepath.EvalSymlinks(p); err == nil && r != p {
		return p + " -> " + r
	}
	return p
}

func uidList(uids []uint32) string {
	var b strings.Builder
	for _, u := range uids {
		fmt.Fprintf(&b, ", uid %d", u)
	}
	return b.String()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func metricsURL(addr string) string {
	if addr == "" {
		return "off (set metrics_addr)"
	}
	return "http://" + addr + "/metrics"
}

func backlogNote(n int) string {
	if n < minBacklog {
		return fmt.Sprintf(" (below %d: raise it, connections arriving during a swap may be refused)", minBacklog)
	}
	return ""
}
