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
	// firstToken is the time to the first byte of the response body.
	firstToken *prometheus.HistogramVec
	inflight   *prometheus.GaugeVec
	// discarded counts upstream connections closed instead of reused because the instance
	// broke HTTP's framing, by reason.
	discarded *prometheus.CounterVec
}

// poolObservers are a pool's series, looked up once per SetTable.
type poolObservers struct {
	rev, role string
	duration  prometheus.Observer
	ttfb      prometheus.Observer
	first     prometheus.Observer
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
		firstToken: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "ramp_time_to_first_token_seconds",
			Help: "Time from a request's arrival to the first byte of its response body sent to the client " +
				"(for a streamed LLM answer, its first token); requests whose answer had no body are not in it.",
			ConstLabels: cl,
			Buckets:     requestBuckets,
		}, labels),
		inflight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name:        "ramp_requests_in_flight",
			Help:        "Requests being proxied now.",
			ConstLabels: cl,
		}, labels),
		discarded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ramp_upstream_connections_discarded_total",
			Help: "Upstream connections closed instead of reused because the instance broke HTTP framing " +
				"(reason unasked-bytes: bytes after the answer it framed; head-too-large: an answer head over maxResponseHeaderBytes).",
			ConstLabels: cl,
		}, append(labels, "reason")),
	}
}

func (m *metrics) observers(rev int64, role string) poolObservers {
	r := strconv.FormatInt(rev, 10)
	return poolObservers{
		rev:      r,
		role:     role,
		duration: m.duration.WithLabelValues(r, role),
		ttfb:     m.ttfb.WithLabelValues(r, role),
		first:    m.firstToken.WithLabelValues(r, role),
		inflight: m.inflight.WithLabelValues(r, role),
	}
}

// forget drops the series of a revision that is gone.
func (m *metrics) forget(rev int64) {
	l := prometheus.Labels{"revision": strconv.FormatInt(rev, 10)}
	for _, v := range m.vecs() {
		v.DeletePartialMatch(l)
	}
}

// revisionVec is a metric family with a revision label.
type revisionVec interface {
	prometheus.Collector
	DeletePartialMatch(prometheus.Labels) int
}

// vecs are the proxy's metric families.
func (m *metrics) vecs() []revisionVec {
	return []revisionVec{m.requests, m.duration, m.ttfb, m.firstToken, m.inflight, m.discarded}
}

// counter boxes a Counter for an atomic.Pointer.
type counter struct{ prometheus.Counter }

// observe records a finished request of pl; class is a classIndex.
func (m *metrics) observe(pl *pool, class int, lat, ttfb time.Duration, hasTTFB bool, first time.Duration, hasFirst bool) {
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
	if hasFirst {
		pl.obs.first.Observe(first.Seconds())
	}
}

func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, v := range m.vecs() {
		v.Describe(ch)
	}
}

func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	for _, v := range m.vecs() {
		v.Collect(ch)
	}
}

// Collector returns the proxy's per-revision metrics for a Prometheus registry:
// ramp_requests_total{rollout,revision,role,code_class} (code_class 1xx…5xx, or error when
// the instance failed to answer), ramp_request_duration_seconds, ramp_ttfb_seconds (to the
// response headers) and ramp_time_to_first_token_seconds (to the first body byte) histograms
// and the ramp_requests_in_flight gauge, labelled rollout, revision, role;
// ramp_upstream_connections_discarded_total{rollout,revision,role,reason}; and
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

// Reasons of ramp_upstream_connections_discarded_total.
const (
	reasonUnasked      = "unasked-bytes"
	reasonHeadTooLarge = "head-too-large"
)

// discarded counts n upstream connections of st's instance closed for reason, and logs it
// the first time for that instance and reason.
func (p *Proxy) discarded(st *reqState, reason string, n int) {
	p.metrics.discarded.WithLabelValues(st.pool.obs.rev, st.pool.obs.role, reason).Add(float64(n))
	bit := uint32(1)
	if reason == reasonHeadTooLarge {
		bit = 2
	}
	b := st.t.b
	for {
		old := b.warned.Load()
		if old&bit != 0 {
			return
		}
		if b.warned.CompareAndSwap(old, old|bit) {
			break
		}
	}
	msg := "instance sent bytes after the answer it framed (a second answer, or a body after HEAD, 204 or 304): " +
		"its connection is closed, never reused; logged once per instance"
	if reason == reasonHeadTooLarge {
		msg = "instance's answer head is over spec.proxy.maxResponseHeaderBytes: answered 502; logged once per instance"
	}
	p.log.Warn(msg, keyRevision, st.pool.rev, keyBackend, b.id, "addr", st.t.addr, "reason", reason)
}
