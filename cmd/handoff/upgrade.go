package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

const upgradeAbout = `Ask the running supervisor to swap the daemon to a new binary (the configured
one by default) and print each phase as it happens with its duration, then the
outcome. With --dry-run the new binary is started, warmed up and handshaken,
then stopped: the incumbent is never touched. A binary other than the
configured one must be in allowed_binaries. With --sha256 the supervisor
hashes the binary first and refuses it unless the content matches; it then
runs the very file it hashed, even if the path is replaced meanwhile.

Exit status: 0 committed (or dry run passed), 1 rolled back (the old daemon
still serves; the reason is printed), 2 error (supervisor unreachable, another
swap running, binary not allowed or not executable).

With --supervisor the supervisor replaces its own binary in place (this
program's path by default, or --binary, which must then be in
allowed_binaries): same pid, same listening sockets, the incumbent untouched.
Exit 0 when the new supervisor serves, 1 when it refused the carried state and
the previous binary was restored, 2 when the new binary failed its pre-flight
run (nothing was replaced) or on any other error.`

// runUpgrade is `handoff upgrade`.
func runUpgrade(args []string) int {
	fs := newFlagSet("upgrade", "handoff upgrade [--binary PATH] [--sha256 HEX] [--dry-run] [--config FILE | --socket PATH] [--json]",
		upgradeAbout, "handoff upgrade --config /etc/handoff/kvd.toml --binary /usr/local/bin/kvd-next")
	binary := fs.String("binary", "", "swap to this `path` instead of the configured binary")
	dryRun := fs.Bool("dry-run", false, "start the new binary as a canary and stop it; never touch the incumbent")
	pin := fs.String("sha256", "", "refuse the binary unless its SHA-256 is this `hex` digest (run exactly the file hashed)")
	cfgPath := fs.String("config", "", "the supervisor's config `file` (to find its trigger socket)")
	socket := fs.String("socket", "", "the supervisor's trigger socket `path`")
	asJSON := fs.Bool("json", false, "print the events as JSON lines, as received")
	self := fs.Bool("supervisor", false, "upgrade the supervisor itself in place (same pid, same sockets)")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	req, err := upgradeRequest(*binary, *dryRun)
	if err != nil {
		return fail(err)
	}
	req.SHA256 = *pin
	path, err := triggerPath(*cfgPath, *socket)
	if err != nil {
		return fail(err)
	}
	p := &upgradePrinter{w: os.Stdout, json: *asJSON}
	if *self {
		if *dryRun || *pin != "" {
			return fail(fmt.Errorf("handoff: --dry-run and --sha256 do not apply to --supervisor"))
		}
		req.Op = opUpgradeSupervisor
		return upgradeSupervisor(path, req, p)
	}
	line, kind, err := call(path, req, p.progress)
	if err != nil {
		return fail(err)
	}
	return p.final(line, kind)
}

func upgradeRequest(binary string, dryRun bool) (request, error) {
	req := request{Op: opUpgrade, DryRun: dryRun}
	if binary == "" {
		return req, nil
	}
	abs, err := filepath.Abs(binary) // the supervisor's working directory is not ours
	if err != nil {
		return req, fmt.Errorf("handoff: --binary %s: %w", binary, err)
	}
	req.Binary = abs
	return req, nil
}

// fail prints err and returns the error exit code.
func fail(err error) int {
	fmt.Fprintln(os.Stderr, err)
	return exitError
}

// upgradePrinter renders a swap's events for a person, or passes the JSON
// lines through.
type upgradePrinter struct {
	w    io.Writer
	json bool
}

func (p *upgradePrinter) progress(line []byte, _ string) {
	if p.json {
		fmt.Fprintf(p.w, "%s\n", line)
		return
	}
	var ev progressEvent
	if json.Unmarshal(line, &ev) != nil {
		return
	}
	took := ""
	if ev.TookMS > 0 {
		took = "   " + fmtMS(ev.TookMS)
	}
	fmt.Fprintf(p.w, "  %-13s %s%s\n", ev.Step, dedupe(ev.Detail), took)
}

// final prints the last event and returns the exit code it means.
func (p *upgradePrinter) final(line []byte, kind string) int {
	if p.json {
		fmt.Fprintf(p.w, "%s\n", line)
	}
	switch kind {
	case evOutcome:
		var o outcomeJSON
		if err := json.Unmarshal(line, &o); err != nil {
			return fail(fmt.Errorf("handoff: bad outcome event: %w", err))
		}
		if !p.json {
			fmt.Fprintln(p.w, describeOutcome(o))
		}
		return outcomeCode(o)
	case evError:
		err := decodeError(line)
		if !p.json {
			fmt.Fprintln(os.Stderr, err)
		}
		return exitError
	}
	return fail(fmt.Errorf("handoff: unexpected %q event from the supervisor", kind))
}

func outcomeCode(o outcomeJSON) int {
	if o.Committed || (o.DryRun && o.Reason == "dry-run") {
		return exitOK
	}
	return exitRolledBack
}

// describeOutcome is the last line of a human-readable upgrade.
func describeOutcome(o outcomeJSON) string {
	id := o.HandoffID
	if len(id) > 8 {
		id = id[:8]
	}
	switch {
	case o.Committed:
		return fmt.Sprintf("committed: pid %d (build %s, %s) serves, replacing pid %d, in %s [handoff %s]",
			o.NewPID, orNone(o.BuildID), o.Binary, o.OldPID, fmtMS(o.TotalMS), id)
	case o.DryRun && o.Reason == "dry-run":
		return fmt.Sprintf("dry run passed: pid %d (build %s, %s) started and handshook, then was stopped; the incumbent was not touched (%s)",
			o.NewPID, orNone(o.BuildID), o.Binary, fmtMS(o.TotalMS))
	}
	still := "the incumbent still serves"
	if o.OldPID != 0 {
		still = fmt.Sprintf("pid %d still serves", o.OldPID)
	}
	return fmt.Sprintf("rolled back (%s): %s\n%s [handoff %s]", o.Reason, causeText(o), still, id)
}

// fmtMS renders milliseconds the way time.Duration does, to 0.1 ms.
func fmtMS(v float64) string {
	return msDuration(v).Round(100 * time.Microsecond).String()
}

// causeText is an outcome's cause without a repeated "<reason>: " prefix.
func causeText(o outcomeJSON) string {
	return strings.TrimPrefix(dedupe(strings.TrimSpace(o.Cause)), o.Reason+": ")
}

// dedupe drops a ": "-separated part that repeats the one before it
// ("dry-run: dry-run: started" reads "dry-run: started").
func dedupe(s string) string {
	parts := strings.Split(s, ": ")
	out := parts[:1]
	for _, p := range parts[1:] {
		if p != out[len(out)-1] {
			out = append(out, p)
		}
	}
	return strings.Join(out, ": ")
}
