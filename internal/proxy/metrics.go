package proxy

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the proxy's Prometheus series. rollout is a constant label, so the collectors
// of several proxies can share one registry.
type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	ttfb     *prometheus.HistogramVec
	inflight *prometheus.GaugeVec
}

// poolObservers are a pool's series, looked up once per SetTable.
type poolObservers struct {
	rev, role string
	duration  prometheus.Observer
	ttfb      prometheus.Observer
	inflight  prometheus.Gauge
}

// requestBuckets suit responses that stream for seconds to minutes.
var requestBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300}

func newMetrics(rollout string) *metrics {
	cl := prometheus.Labels{"rollout": rollout}
	labels := []string{"revision", "role"}
	return &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name:        "ramp_requests_total",
			Help:        "Requests proxied, by revision, role and status class (error: the instance failed to answer).",
			ConstLabels: cl,
		}, append(labels, "code_class")),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:        "ramp_request_duration_seconds",
			Help:        "Time from a request's arrival to the end of its response body.",
			ConstLabels: cl,
			Buckets:     requestBuckets,
		}, labels),
		ttfb: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:        "ramp_ttfb_seconds",
			Help:        "Time from a request's arrival to the instance's response headers.",
			ConstLabels: cl,
			Buckets:     requestBuckets,
		}, labels),
		inflight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name:        "ramp_requests_in_flight",
			Help:        "Requests being proxied now.",
			ConstLabels: cl,
		}, labels),
	}
}

func (m *metrics) observers(rev int64, role string) poolObservers {
	r := strconv.FormatInt(rev, 10)
	return poolObservers{
		rev:      r,
		role:     role,
		duration: m.duration.WithLabelValues(r, role),
		ttfb:     m.ttfb.WithLabelValues(r, role),
		inflight: m.inflight.WithLabelValues(r, role),
	}
}

// forget drops the series of a revision that is gone.
func (m *metrics) forget(rev int64) {
	l := prometheus.Labels{"revision": strconv.FormatInt(rev, 10)}
	m.requests.DeletePartialMatch(l)
	m.duration.DeletePartialMatch(l)
	m.ttfb.DeletePartialMatch(l)
	m.inflight.DeletePartialMatch(l)
}

// counter boxes a Counter for an atomic.Pointer.
type counter struct{ prometheus.Counter }

// observe records a finished request of pl; class is a classIndex.
func (m *metrics) observe(pl *pool, class int, lat, ttfb time.Duration, hasTTFB bool) {
	c := pl.requests[class].Load()
	if c == nil {
		// Two requests may look the child up at once: they find the same one.
		c = &counter{m.requests.WithLabelValues(pl.obs.rev, pl.obs.role, classNames[class])}
		pl.requests[class].Store(c)
	}
	c.Inc()
	pl.obs.duration.Observe(lat.Seconds())
	if hasTTFB {
		pl.obs.ttfb.Observe(ttfb.Seconds())
	}
}

func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	m.requests.Describe(ch)
	m.duration.Describe(ch)
	m.ttfb.Describe(ch)
	m.inflight.Describe(ch)
}

func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	m.requests.Collect(ch)
	m.duration.Collect(ch)
	m.ttfb.Collect(ch)
	m.inflight.Collect(ch)
}

// Collector returns the proxy's per-revision metrics for a Prometheus registry:
// ramp_requests_total{rollout,revision,role,code_class} (code_class 1xx…5xx, or error when
// the instance failed to answer), ramp_request_duration_seconds and ramp_ttfb_seconds
// histograms and the ramp_requests_in_flight gauge, labelled rollout, revision, role; and
// ramp_mirror_requests_total{rollout,revision,role,result} for mirrored copies.
func (p *Proxy) Collector() prometheus.Collector {
	return collectors{p.metrics, p.mirrors.counter}
}

// collectors is several collectors as one.
type collectors []prometheus.Collector

func (cs collectors) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range cs {
		c.Describe(ch)
	}
}

func (cs collectors) Collect(ch chan<- prometheus.Metric) {
	for _, c := range cs {
		c.Collect(ch)
	}
}
