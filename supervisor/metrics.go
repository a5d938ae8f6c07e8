package supervisor

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/handoff-go/handoff/internal/wire"
)

// Metrics are the supervisor's Prometheus metrics (names of DESIGN section 7).
// A nil *Metrics records nothing.
type Metrics struct {
	handoffs   prometheus.Counter
	failures   prometheus.Counter
	rolledBack *prometheus.CounterVec
	sealFail   prometheus.Counter
	restarts   prometheus.Counter
	duration   *carriedHistogram
	drain      *carriedHistogram
	seal       *carriedHistogram
	beginReady *carriedHistogram
}

// NewMetrics creates the metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	buckets := prometheus.ExponentialBuckets(0.001, 2, 17) // 1 ms … ~65 s
	h := func(name, help string) *carriedHistogram {
		return newCarriedHistogram(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets})
	}
	m := &Metrics{
		handoffs: prometheus.NewCounter(prometheus.CounterOpts{Name: "handoff_handoffs_total", Help: "Handoffs committed."}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{Name: "handoff_failures_total", Help: "Handoffs that did not commit (dry runs excluded)."}),
		rolledBack: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "handoff_rolled_back_total",
			Help: "Handoffs rolled back, by abort reason."}, []string{"reason"}),
		sealFail:   prometheus.NewCounter(prometheus.CounterOpts{Name: "handoff_seal_failures_total", Help: "Handoffs whose seal failed."}),
		restarts:   prometheus.NewCounter(prometheus.CounterOpts{Name: "handoff_incumbent_restarts_total", Help: "Incumbents restarted after a crash."}),
		duration:   h("handoff_duration_seconds", "Trigger to outcome."),
		drain:      h("handoff_drain_seconds", "PrepareHandoff to Drained."),
		seal:       h("handoff_seal_seconds", "SealRequest to SealComplete."),
		beginReady: h("handoff_begin_to_ready_seconds", "Begin to Ready."),
	}
	reg.MustRegister(m.handoffs, m.failures, m.rolledBack, m.sealFail, m.restarts, m.duration, m.drain, m.seal, m.beginReady)
	return m
}

func (m *Metrics) observe(o Outcome) {
	if m == nil || o.DryRun {
		return
	}
	m.duration.Observe(o.Total.Seconds())
	for _, p := range o.Phases {
		switch p.Phase {
		case "drained":
			m.drain.Observe(p.Duration.Seconds())
		case "sealed":
			m.seal.Observe(p.Duration.Seconds())
		case "ready":
			m.beginReady.Observe(p.Duration.Seconds())
		}
	}
	if o.Committed {
		m.handoffs.Inc()
		return
	}
	m.failures.Inc()
	m.rolledBack.WithLabelValues(o.Reason).Inc()
	if o.Reason == wire.ReasonSealFailed.String() {
		m.sealFail.Inc()
	}
}

func (m *Metrics) restarted() {
	if m != nil {
		m.restarts.Inc()
	}
}
