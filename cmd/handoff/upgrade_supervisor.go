package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
)

// upgradeSupervisor asks the supervisor to exec its new binary and then
// asks the new image (same pid, same trigger socket: the request waits in
// the socket's backlog while the new image starts) who it is.
func upgradeSupervisor(path string, req request, p *upgradePrinter) int {
	before, _, err := fetchStatus(path)
	if err != nil {
		return fail(err)
	}
	line, kind, err := call(path, req, p.progress)
	if err == nil {
		return p.final(line, kind) // refused before the exec: an error event
	}
	if !errors.Is(err, errNoOutcome) {
		return fail(err)
	}
	after, raw, err := fetchStatus(path)
	if err != nil {
		return fail(fmt.Errorf("handoff: the supervisor did not come back after exec: %w", err))
	}
	if p.json {
		fmt.Fprintf(p.w, "%s\n", raw)
	}
	return judgeSupervisorUpgrade(p, before, after, req.Binary)
}

// judgeSupervisorUpgrade compares the supervisor before and after: the same
// pid must answer, running the requested binary (or, when the new one
// refused the carried state, the previous one again).
func judgeSupervisorUpgrade(p *upgradePrinter, before, after statusEvent, want string) int {
	if after.SupervisorPID != before.SupervisorPID {
		return fail(fmt.Errorf("handoff: supervisor pid changed from %d to %d", before.SupervisorPID, after.SupervisorPID))
	}
	if want == "" {
		want = before.SupervisorBin
	}
	if real, err := realPath(want); err == nil {
		want = real
	}
	if after.SupervisorBin != want {
		say(p, "supervisor: the new binary refused the carried state; pid %d runs %s again\n", after.SupervisorPID, after.SupervisorBin)
		return exitRolledBack
	}
	say(p, "supervisor upgraded in place: pid %d runs %s; incumbent %s untouched\n",
		after.SupervisorPID, after.SupervisorBin, incumbentWord(after))
	return exitOK
}

func say(p *upgradePrinter, format string, args ...any) {
	if p.json {
		_ = json.NewEncoder(os.Stderr).Encode(map[string]string{"note": fmt.Sprintf(format, args...)})
		return
	}
	fmt.Fprintf(p.w, format, args...)
}

func incumbentWord(st statusEvent) string {
	if st.Incumbent == nil {
		return "(none)"
	}
	return fmt.Sprintf("pid %d", st.Incumbent.PID)
}
