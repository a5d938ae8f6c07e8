package main

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// faults are the failures --fail injects, to demonstrate and test
// rollback. The zero value injects nothing.
type faults struct {
	exitAtStart     bool          // exit 3 before anything else
	exitBeforeReady bool          // successor: exit 3 after Begin, before Ready
	neverReady      bool          // successor: block after Begin until killed
	unhealthy       bool          // report HealthzOK=false in Ready, 503 on /healthz
	failSeal        bool          // Seal returns an error
	slowOpen        time.Duration // successor: pause while opening state, holding the lock
	slowDrain       time.Duration // pause at the start of Drain
	slowSeal        time.Duration // pause at the start of Seal
}

// faultModes documents --fail.
const faultModes = "exit-at-start, exit-before-ready, never-ready, unhealthy, seal, " +
	"slow-open=DURATION, slow-drain=DURATION, slow-seal=DURATION"

// parse adds the comma-separated modes in spec.
func (f *faults) parse(spec string) error {
	for _, mode := range strings.Split(spec, ",") {
		if err := f.parseOne(strings.TrimSpace(mode)); err != nil {
			return err
		}
	}
	return nil
}

func (f *faults) parseOne(mode string) error {
	name, arg, hasArg := strings.Cut(mode, "=")
	flags := map[string]*bool{
		"exit-at-start": &f.exitAtStart, "exit-before-ready": &f.exitBeforeReady,
		"never-ready": &f.neverReady, "unhealthy": &f.unhealthy, "seal": &f.failSeal,
	}
	durations := map[string]*time.Duration{
		"slow-open": &f.slowOpen, "slow-drain": &f.slowDrain, "slow-seal": &f.slowSeal,
	}
	if b, ok := flags[name]; ok && !hasArg {
		*b = true
		return nil
	}
	d, ok := durations[name]
	if !ok || !hasArg {
		return fmt.Errorf("kvd: unknown --fail mode %q (modes: %s)", mode, faultModes)
	}
	v, err := time.ParseDuration(arg)
	if err != nil || v < 0 {
		return fmt.Errorf("kvd: --fail %s: want a duration such as 2s", mode)
	}
	*d = v
	return nil
}

// pause waits d, or returns ctx's error if ctx ends first.
func pause(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("kvd: interrupted: %w", ctx.Err())
	}
}

// afterBegin applies the successor faults that strike right after Begin.
func (f faults) afterBegin(ctx context.Context) error {
	switch {
	case f.exitBeforeReady:
		return errExitFault
	case f.neverReady:
		<-ctx.Done()
		return fmt.Errorf("kvd: never ready (--fail never-ready): %w", ctx.Err())
	}
	return nil
}
