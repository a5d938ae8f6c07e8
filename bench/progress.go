package main

import (
	"fmt"
	"strings"
)

// logSeries prints a series' headline to the progress log.
func logSeries(s series) {
	var b strings.Builder
	fmt.Fprintf(&b, "  %s: %d swaps (%d failed), serving p50 %s p99 %s, old gone p50 %s ms |",
		s.Config, len(s.Recs), s.failed(), ms(s.ready().P50), ms(s.ready().P99), ms(s.oldGone().P50))
	for _, n := range s.phaseNames() {
		fmt.Fprintf(&b, " %s %s", n, ms(s.phase(n).P50))
	}
	logfn("%s", b.String())
}

// logFloors prints the floors to the progress log.
func logFloors(fs []floorResult) {
	for _, f := range fs {
		logfn("  floor %s: p50 %s p99 %s max %s ms, %d errors", f.Label, ms(f.Sum.P50), ms(f.Sum.P99), ms(f.Sum.Max), f.Errs)
	}
}
