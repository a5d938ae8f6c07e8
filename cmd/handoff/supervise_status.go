package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/handoff-go/handoff/supervisor"
)

// snapshotTimeout bounds the status query to the incumbent.
const snapshotTimeout = 5 * time.Second

// status builds the answer to a status request.
func (svc *service) status(ctx context.Context) statusEvent {
	st := svc.sup.Status()
	ev := statusEvent{
		Event: evStatus, SupervisorPID: os.Getpid(), SupervisorBin: ownBinary(), SupervisorUpMS: ms(time.Since(svc.started)),
		Config: svc.cfg.File, TriggerSocket: svc.cfg.TriggerSocket, ControlSocket: svc.cfg.ControlSocket,
		Listeners: svc.listenerJSON(), Draining: append([]int{}, st.Draining...),
		MaxDraining: svc.cfg.MaxDraining, Counters: counters(svc.reg),
	}
	if svc.metrics != nil {
		ev.MetricsAddr = svc.metrics.addr
	}
	if st.IncumbentPID != 0 {
		ev.Incumbent = &incumbentJSON{PID: st.IncumbentPID, Binary: st.IncumbentBinary, BuildID: st.IncumbentBuildID,
			Started: st.IncumbentSince, UptimeMS: ms(time.Since(st.IncumbentSince))}
		svc.addSnapshot(ctx, &ev)
	}
	ev.LastOutcome = svc.lastOutcome(st.Last)
	return ev
}

func (svc *service) addSnapshot(ctx context.Context, ev *statusEvent) {
	ctx, cancel := context.WithTimeout(ctx, snapshotTimeout)
	defer cancel()
	snap, err := svc.sup.Snapshot(ctx)
	if err != nil {
		ev.SnapshotError = err.Error()
		return
	}
	ev.Snapshot = &snapshotJSON{PID: snap.PID, BuildID: snap.BuildID, Started: snap.Started,
		ShardCount: snap.ShardCount, OpenConns: snap.OpenConns,
		LastRevisionPerShard: snap.LastRevisionPerShard, Listeners: snap.Listeners}
	if ev.Incumbent.BuildID == "" {
		ev.Incumbent.BuildID = snap.BuildID
	}
}

func (svc *service) lastOutcome(last *supervisor.Outcome) *outcomeJSON {
	if last == nil {
		return nil
	}
	o := newOutcome(*last)
	o.Event = ""
	svc.mu.Lock()
	at := svc.lastAt
	svc.mu.Unlock()
	if !at.IsZero() {
		o.Finished = &at
	}
	return &o
}

func (svc *service) listenerJSON() []listenerJSON {
	out := make([]listenerJSON, len(svc.listeners))
	for i, l := range svc.listeners {
		out[i] = listenerJSON{Name: l.name, Network: l.network, Address: l.address, Source: l.source}
	}
	return out
}

// updateStatus sends systemd the one-line status `systemctl status` shows.
// It uses what the supervisor knows already: asking the incumbent for its
// snapshot here would hold every swap's answer to its client for a round
// trip that the line does not need.
func (svc *service) updateStatus() {
	if svc.notify == nil {
		return
	}
	st := svc.sup.Status()
	ev := statusEvent{Draining: st.Draining, LastOutcome: svc.lastOutcome(st.Last)}
	if st.IncumbentPID != 0 {
		ev.Incumbent = &incumbentJSON{PID: st.IncumbentPID, BuildID: st.IncumbentBuildID}
	}
	svc.notifyLog(svc.notify.Status(statusLine(ev)))
}

// statusLine summarises a status in one line, e.g. "incumbent pid 1234
// (build 5f2c), last swap committed 3 → 1234, 2 draining".
func statusLine(ev statusEvent) string {
	var parts []string
	if ev.Incumbent == nil {
		parts = append(parts, "no incumbent")
	} else {
		parts = append(parts, fmt.Sprintf("incumbent pid %d (build %s)", ev.Incumbent.PID, orNone(ev.Incumbent.BuildID)))
	}
	if o := ev.LastOutcome; o != nil {
		parts = append(parts, "last swap "+outcomeWord(*o))
	}
	if len(ev.Draining) > 0 {
		parts = append(parts, fmt.Sprintf("%d draining", len(ev.Draining)))
	}
	return strings.Join(parts, ", ")
}

func orNone(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// outcomeWord names an outcome briefly: "committed", "dry run ok",
// "rolled back (successor-exited)".
func outcomeWord(o outcomeJSON) string {
	switch {
	case o.Committed:
		return fmt.Sprintf("committed pid %d → %d", o.OldPID, o.NewPID)
	case o.DryRun && o.Reason == "dry-run":
		return "dry run ok"
	}
	return fmt.Sprintf("rolled back (%s)", o.Reason)
}

// ownBinary is the resolved path of the running supervisor binary.
func ownBinary() string {
	self, err := os.Executable()
	if err != nil {
		return ""
	}
	if real, err := realPath(self); err == nil {
		return real
	}
	return self
}
