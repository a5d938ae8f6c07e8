package supervisor

import (
	"slices"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// metricsState is what the metrics have counted, carried across a
// supervisor's re-exec (Reexec) so that neither Prometheus nor `handoff
// status` sees the counters fall back to zero when only the supervisor's
// binary changed.
type metricsState struct {
	Handoffs   float64                   `json:"handoffs"`
	Failures   float64                   `json:"failures"`
	RolledBack map[string]float64        `json:"rolled_back,omitempty"`
	SealFail   float64                   `json:"seal_failures"`
	Restarts   float64                   `json:"restarts"`
	Histograms map[string]histogramState `json:"histograms,omitempty"`
}

// histogramState is one histogram's sample count, sum and cumulative
// bucket counts, in the order of the histogram's upper bounds (JSON has
// no float keys).
type histogramState struct {
	Count   uint64    `json:"count"`
	Sum     float64   `json:"sum"`
	Bounds  []float64 `json:"bounds"`
	Buckets []uint64  `json:"buckets"`
}

// state reads what m has counted so far.
func (m *Metrics) state() *metricsState {
	if m == nil {
		return nil
	}
	st := &metricsState{
		Handoffs:   counterValue(m.handoffs),
		Failures:   counterValue(m.failures),
		SealFail:   counterValue(m.sealFail),
		Restarts:   counterValue(m.restarts),
		RolledBack: map[string]float64{},
		Histograms: map[string]histogramState{},
	}
	ch := make(chan prometheus.Metric, 64)
	go func() {
		m.rolledBack.Collect(ch)
		close(ch)
	}()
	for c := range ch {
		var d dto.Metric
		if c.Write(&d) != nil {
			continue
		}
		for _, l := range d.GetLabel() {
			if l.GetName() == "reason" {
				st.RolledBack[l.GetValue()] = d.GetCounter().GetValue()
			}
		}
	}
	for name, h := range m.histograms() {
		st.Histograms[name] = h.state()
	}
	return st
}

// restore adds a carried state to m, which has counted nothing yet.
func (m *Metrics) restore(st *metricsState) {
	if m == nil || st == nil {
		return
	}
	m.handoffs.Add(st.Handoffs)
	m.failures.Add(st.Failures)
	m.sealFail.Add(st.SealFail)
	m.restarts.Add(st.Restarts)
	for reason, v := range st.RolledBack {
		m.rolledBack.WithLabelValues(reason).Add(v)
	}
	for name, h := range m.histograms() {
		if hs, ok := st.Histograms[name]; ok {
			h.setBase(hs)
		}
	}
}

func (m *Metrics) histograms() map[string]*carriedHistogram {
	return map[string]*carriedHistogram{
		"duration": m.duration, "drain": m.drain, "seal": m.seal, "begin_to_ready": m.beginReady,
	}
}

func counterValue(c prometheus.Counter) float64 {
	var d dto.Metric
	if c.Write(&d) != nil {
		return 0
	}
	return d.GetCounter().GetValue()
}

// carriedHistogram is a histogram that may start from a carried state: a
// Prometheus histogram cannot be set, so what was carried is kept as a base
// and added to the live observations whenever it is collected.
type carriedHistogram struct {
	prometheus.Histogram
	base histogramState // set once, before the supervisor serves
}

func newCarriedHistogram(opts prometheus.HistogramOpts) *carriedHistogram {
	return &carriedHistogram{Histogram: prometheus.NewHistogram(opts)}
}

func (h *carriedHistogram) setBase(st histogramState) { h.base = st }

// state is the base plus what was observed live. A base whose bounds
// differ from the live histogram's (another binary's buckets) is dropped
// rather than added to the wrong buckets.
func (h *carriedHistogram) state() histogramState {
	var d dto.Metric
	if h.Histogram.Write(&d) != nil {
		return h.base
	}
	live := d.GetHistogram()
	st := histogramState{Count: live.GetSampleCount(), Sum: live.GetSampleSum()}
	for _, b := range live.GetBucket() {
		st.Bounds = append(st.Bounds, b.GetUpperBound())
		st.Buckets = append(st.Buckets, b.GetCumulativeCount())
	}
	if slices.Equal(h.base.Bounds, st.Bounds) && len(h.base.Buckets) == len(st.Buckets) {
		st.Count += h.base.Count
		st.Sum += h.base.Sum
		for i, n := range h.base.Buckets {
			st.Buckets[i] += n
		}
	}
	return st
}

// Collect reports the live histogram, or base plus live once a state was
// carried.
func (h *carriedHistogram) Collect(ch chan<- prometheus.Metric) {
	if h.base.Count == 0 {
		h.Histogram.Collect(ch)
		return
	}
	st := h.state()
	buckets := make(map[float64]uint64, len(st.Bounds))
	for i, ub := range st.Bounds {
		buckets[ub] = st.Buckets[i]
	}
	m, err := prometheus.NewConstHistogram(h.Desc(), st.Count, st.Sum, buckets)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(h.Desc(), err)
		return
	}
	ch <- m
}
