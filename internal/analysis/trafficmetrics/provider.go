package trafficmetrics

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/analysis"
)

// Scope is where a measurement target's requests are counted.
type Scope struct {
	// Address is the Prometheus to ask (http://host:port).
	Address string
	// Revision selects the requests of the revision under analysis (the canary), Baseline
	// those of the revision it is compared with (stable).
	Revision, Baseline Selector
}

// Resolver finds the scope of a measurement target; Kubernetes mode reads it from the
// Rollout's traffic routing. An error says why the target's requests cannot be read.
type Resolver interface {
	Scope(ctx context.Context, t analysis.Target) (Scope, error)
}

// Provider is the builtin provider of Kubernetes mode: it measures the request metrics of
// the builtin provider (Metrics()) from a router's metrics. It implements analysis.Provider.
type Provider struct {
	resolver  Resolver
	clock     func() time.Time
	transport http.RoundTripper
}

var _ analysis.Provider = (*Provider)(nil)

// NewProvider returns a provider that finds each target's scope with r. A nil clock means
// time.Now; a nil transport a clone of http.DefaultTransport.
func NewProvider(r Resolver, clock func() time.Time, transport http.RoundTripper) *Provider {
	if clock == nil {
		clock = time.Now
	}
	if transport == nil {
		transport = http.DefaultTransport.(*http.Transport).Clone()
	}
	return &Provider{resolver: r, clock: clock, transport: transport}
}

// MinWindow is the shortest look-back of a metric without a window: Prometheus needs two
// samples of a counter to tell its increase, and usual scrape intervals are 15s.
const MinWindow = 30 * time.Second

// Measure measures m for t.Revision and, when the metric asks for a baseline and t has one,
// for t.Baseline, over the metric's window (nil: since the run started, but at least
// MinWindow), with the builtin provider's minRequests rules.
func (p *Provider) Measure(ctx context.Context, m v1alpha1.Metric, t analysis.Target) (analysis.Value, error) {
	b := m.Provider.Builtin
	if b == nil {
		return analysis.Value{}, fmt.Errorf("metric %q has no builtin provider", m.Name)
	}
	if !Supported(b.Metric) {
		return analysis.Value{}, fmt.Errorf("builtin metric %q is not measured in Kubernetes mode; these are: %v", b.Metric, metrics)
	}
	now := p.clock()
	window := max(now.Sub(t.Since), MinWindow)
	if b.Window != nil {
		w, err := analysis.Duration(b.Window)
		if err != nil {
			return analysis.Value{}, fmt.Errorf("window: %w", err)
		}
		if w <= 0 {
			return analysis.Value{}, fmt.Errorf("window must be longer than 0")
		}
		window = w
	} else if t.Since.IsZero() {
		return analysis.Value{}, fmt.Errorf("no window and no run start to measure from")
	}
	sc, err := p.resolver.Scope(ctx, t)
	if err != nil {
		return analysis.Value{}, err
	}
	c, err := NewClient(sc.Address, p.transport)
	if err != nil {
		return analysis.Value{}, err
	}
	q := Query{Metric: b.Metric, Window: window, Now: now, MinRequests: int64(b.MinRequests)}
	v, err := c.Measure(ctx, q, sc.Revision)
	value := analysis.Value{Result: v.Result, Inconclusive: v.Inconclusive, Text: v.Text}
	if err != nil || v.Inconclusive || !b.Baseline || t.Baseline == 0 {
		return value, err
	}
	base, err := c.Measure(ctx, q, sc.Baseline)
	return analysis.WithBaseline(value, analysis.Value{Result: base.Result, Inconclusive: base.Inconclusive, Text: base.Text}, err, t.Baseline)
}
