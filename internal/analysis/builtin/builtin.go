// Package builtin is the analysis provider that reads ramp's own per-revision measurements:
// request metrics from ramp's proxy and instance metrics from the process supervisor. It
// needs no Prometheus; the Source interface is what local mode hands it.
package builtin

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/analysis"
)

// Source gives the measurements ramp keeps per revision.
type Source interface {
	// Requests sums the requests the revision answered since the given time.
	Requests(rollout string, revision int64, since time.Time) RequestStats
	// Instances describes the revision's instances now.
	Instances(rollout string, revision int64) InstanceStats
}

// RequestStats are the requests of one revision over a window.
type RequestStats struct {
	// Requests is the number of responses; Errors the number of them that were 5xx (or
	// failed to reach the instance).
	Requests, Errors int64
	// Latency gives a quantile (0 < q < 1) of the full response time; nil means not
	// recorded (a latency metric is then an error).
	Latency func(q float64) time.Duration
	// TTFB gives a quantile of the time to the response headers; nil means not recorded.
	TTFB func(q float64) time.Duration
	// FirstToken gives a quantile of the time to the first byte of the response body (for a
	// streamed LLM answer, its first token); nil means not recorded.
	FirstToken func(q float64) time.Duration
	// Duration is the span the stats cover, used for request-rate. Zero means from since
	// until now.
	Duration time.Duration
}

// InstanceStats describe the instances of one revision.
type InstanceStats struct {
	// Restarts counts instance restarts (unexpected exits) of the revision.
	Restarts int64
	// ReadinessFailures counts readiness probe failures of the revision's instances.
	ReadinessFailures int64
	// CPUSeconds is the CPU time used by the instances so far.
	CPUSeconds float64
	// CPURate is the CPU the instances use now, in cores.
	CPURate float64
	// MemoryBytes is the resident memory of the instances now.
	MemoryBytes int64
}

// Provider measures builtin metrics. It implements analysis.Provider.
type Provider struct {
	src   Source
	clock func() time.Time
}

var _ analysis.Provider = (*Provider)(nil)

// New returns a provider reading src. A nil clock means time.Now.
func New(src Source, clock func() time.Time) *Provider {
	if clock == nil {
		clock = time.Now
	}
	return &Provider{src: src, clock: clock}
}

// ErrUnknownMetric is returned for a builtin metric name that ramp does not measure.
var ErrUnknownMetric = errors.New("unknown builtin metric")

// kind says what a builtin metric reads.
type kind int

const (
	ratio     kind = iota // needs minRequests
	count                 // request count or rate: meaningful at zero requests
	instances             // reads InstanceStats
)

var metrics = map[string]kind{
	"error-rate":         ratio,
	"request-count":      count,
	"request-rate":       count,
	"latency-p50":        ratio,
	"latency-p95":        ratio,
	"latency-p99":        ratio,
	"ttfb-p50":           ratio,
	"ttfb-p95":           ratio,
	"ttfb-p99":           ratio,
	"first-token-p50":    ratio,
	"first-token-p95":    ratio,
	"first-token-p99":    ratio,
	"restarts":           instances,
	"readiness-failures": instances,
	"cpu":                instances,
	"memory":             instances,
}

// Metrics lists the builtin metric names, sorted; spec validation can check against it.
func Metrics() []string {
	names := make([]string, 0, len(metrics))
	for n := range metrics {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Measure measures m for t.Revision and, when the metric asks for a baseline and t has one,
// for t.Baseline. Request metrics look back over the metric's window (nil: since the run
// started). A ratio or quantile metric (error-rate, latency-*, ttfb-*, first-token-*) with fewer than
// minRequests requests (zero means 1), on either revision, is Inconclusive; request-count and
// request-rate are Inconclusive only under an explicit minRequests.
func (p *Provider) Measure(ctx context.Context, m v1alpha1.Metric, t analysis.Target) (analysis.Value, error) {
	if err := ctx.Err(); err != nil {
		return analysis.Value{}, err
	}
	b := m.Provider.Builtin
	if b == nil {
		return analysis.Value{}, fmt.Errorf("metric %q has no builtin provider", m.Name)
	}
	if _, ok := metrics[b.Metric]; !ok {
		return analysis.Value{}, fmt.Errorf("%w %q", ErrUnknownMetric, b.Metric)
	}
	now := p.clock()
	since := t.Since
	if b.Window != nil {
		w, err := analysis.Duration(b.Window)
		if err != nil {
			return analysis.Value{}, fmt.Errorf("window: %w", err)
		}
		if w == 0 {
			return analysis.Value{}, fmt.Errorf("window must be longer than 0")
		}
		since = now.Add(-w)
	}
	q := query{metric: b.Metric, rollout: t.Rollout, since: since, now: now, minRequests: int64(b.MinRequests)}

	v, err := p.measure(q, t.Revision)
	if err != nil || v.Inconclusive || !b.Baseline || t.Baseline == 0 {
		return v, err
	}
	base, err := p.measure(q, t.Baseline)
	return analysis.WithBaseline(v, base, err, t.Baseline)
}

type query struct {
	metric      string
	rollout     string
	since, now  time.Time
	minRequests int64 // zero: the default for the metric's kind
}

// measure measures one revision.
func (p *Provider) measure(q query, revision int64) (analysis.Value, error) {
	k := metrics[q.metric]
	if k == instances {
		return instanceValue(q.metric, p.src.Instances(q.rollout, revision)), nil
	}

	rs := p.src.Requests(q.rollout, revision, q.since)
	minReq := q.minRequests
	if minReq == 0 && k == ratio {
		minReq = 1
	}
	if rs.Requests < minReq {
		return analysis.Value{Inconclusive: true, Text: fmt.Sprintf("only %d requests (min %d)", rs.Requests, minReq)}, nil
	}

	switch q.metric {
	case "error-rate":
		r := float64(rs.Errors) / float64(rs.Requests)
		return analysis.Value{Result: r, Text: fmt.Sprintf("%s (%d/%d 5xx)", num(r), rs.Errors, rs.Requests)}, nil
	case "request-count":
		return analysis.Value{Result: float64(rs.Requests), Text: fmt.Sprintf("%d requests", rs.Requests)}, nil
	case "request-rate":
		d := rs.Duration
		if d <= 0 {
			d = q.now.Sub(q.since)
		}
		if d <= 0 {
			return analysis.Value{Inconclusive: true, Text: "empty window"}, nil
		}
		r := float64(rs.Requests) / d.Seconds()
		return analysis.Value{Result: r, Text: fmt.Sprintf("%s req/s (%d in %s)", num(r), rs.Requests, d.Round(time.Millisecond))}, nil
	}

	// latency-pNN, ttfb-pNN or first-token-pNN
	quantiles, what := rs.Latency, "latency"
	switch {
	case strings.HasPrefix(q.metric, "ttfb-"):
		quantiles, what = rs.TTFB, "ttfb"
	case strings.HasPrefix(q.metric, "first-token-"):
		quantiles, what = rs.FirstToken, "first-token"
	}
	if quantiles == nil {
		return analysis.Value{}, fmt.Errorf("%s is not recorded for revision %d", what, revision)
	}
	pct := q.metric[len(q.metric)-3:] // p50, p95, p99
	n, _ := strconv.Atoi(pct[1:])
	r := quantiles(float64(n) / 100).Seconds()
	return analysis.Value{Result: r, Text: fmt.Sprintf("%ss (%s of %d requests)", num(r), pct, rs.Requests)}, nil
}

func instanceValue(metric string, is InstanceStats) analysis.Value {
	switch metric {
	case "restarts":
		return analysis.Value{Result: float64(is.Restarts), Text: fmt.Sprintf("%d restarts", is.Restarts)}
	case "readiness-failures":
		return analysis.Value{Result: float64(is.ReadinessFailures), Text: fmt.Sprintf("%d readiness failures", is.ReadinessFailures)}
	case "cpu":
		return analysis.Value{Result: is.CPURate, Text: num(is.CPURate) + " cores"}
	default: // memory
		return analysis.Value{Result: float64(is.MemoryBytes), Text: fmt.Sprintf("%d bytes (%.1f MiB)", is.MemoryBytes, float64(is.MemoryBytes)/(1<<20))}
	}
}

// num prints a measured value with 4 significant digits.
func num(f float64) string { return strconv.FormatFloat(f, 'g', 4, 64) }
