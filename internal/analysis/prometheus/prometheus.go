// Package prometheus is the analysis provider that runs PromQL over the Prometheus HTTP API
// (github.com/prometheus/client_golang/api): an instant query, or a range query reduced to
// one value. The query must give one series; none (or NaN) is "no data", Inconclusive.
// Requests go through prometheus/common's HTTP client (basic auth, bearer token, TLS) and,
// for Amazon Managed Service for Prometheus, github.com/prometheus/sigv4's signer.
package prometheus

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	promapi "github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/analysis"
	"ramp.dev/ramp/internal/spec"
)

// Defaults for the fields a metric leaves empty.
const (
	DefaultTimeout = 30 * time.Second
	DefaultRange   = 5 * time.Minute
	DefaultReduce  = "last"
)

// Provider measures prometheus metrics. It implements analysis.Provider.
type Provider struct {
	clock func() time.Time

	mu sync.Mutex
	// signers are the SigV4 signers by settings (see signer).
	signers map[string]http.RoundTripper
}

var _ analysis.Provider = (*Provider)(nil)

// New returns a provider. A nil clock means time.Now (the time of instant queries and the end
// of range queries).
func New(clock func() time.Time) *Provider {
	if clock == nil {
		clock = time.Now
	}
	return &Provider{clock: clock}
}

// Measure runs the metric's query, with its template variables replaced (see
// analysis.Expand), and returns the one value it gives.
func (p *Provider) Measure(ctx context.Context, m v1alpha1.Metric, t analysis.Target) (analysis.Value, error) {
	pm := m.Provider.Prometheus
	if pm == nil {
		return analysis.Value{}, fmt.Errorf("metric %q has no prometheus provider", m.Name)
	}
	query, err := analysis.Expand(pm.Query, &m, t)
	if err != nil {
		return analysis.Value{}, fmt.Errorf("query: %w", err)
	}
	address, err := analysis.Expand(pm.Address, &m, t)
	if err != nil {
		return analysis.Value{}, fmt.Errorf("address: %w", err)
	}
	timeout := DefaultTimeout
	if pm.Timeout != nil {
		if timeout, err = analysis.Duration(pm.Timeout); err != nil {
			return analysis.Value{}, fmt.Errorf("timeout: %w", err)
		}
	}
	var headers [][2]string
	for _, h := range pm.Headers {
		v, err := analysis.Expand(h.Value, &m, t)
		if err != nil {
			return analysis.Value{}, fmt.Errorf("header %s: %w", h.Key, err)
		}
		headers = append(headers, [2]string{h.Key, v})
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	ctx, rt, done, err := p.roundTripper(ctx, pm, headers, t)
	if err != nil {
		return analysis.Value{}, err
	}
	defer done()
	client, err := promapi.NewClient(promapi.Config{Address: address, RoundTripper: rt})
	if err != nil {
		return analysis.Value{}, fmt.Errorf("address %q: %w", address, err)
	}
	api := promv1.NewAPI(client)
	now := p.clock()

	if pm.RangeQuery == nil {
		res, warnings, _, err := api.Query(ctx, query, now, promv1.WithTimeout(timeout))
		if err != nil {
			return analysis.Value{}, fmt.Errorf("query %q: %w", query, err)
		}
		v, err := instant(res)
		return withWarnings(v, warnings), err
	}

	rq := pm.RangeQuery
	span, step, reduce, err := rangeOf(rq)
	if err != nil {
		return analysis.Value{}, err
	}
	res, warnings, _, err := api.QueryRange(ctx, query, promv1.Range{Start: now.Add(-span), End: now, Step: step}, promv1.WithTimeout(timeout))
	if err != nil {
		return analysis.Value{}, fmt.Errorf("range query %q: %w", query, err)
	}
	v, err := reduced(res, reduce, span)
	return withWarnings(v, warnings), err
}

// rangeOf reads a range query's window, step and reducer, with their defaults.
func rangeOf(rq *v1alpha1.PrometheusRangeQuery) (span, step time.Duration, reduce string, err error) {
	span = DefaultRange
	if rq.Range != nil {
		if span, err = analysis.Duration(rq.Range); err != nil {
			return 0, 0, "", fmt.Errorf("rangeQuery.range: %w", err)
		}
		if span <= 0 {
			return 0, 0, "", fmt.Errorf("rangeQuery.range must be longer than 0")
		}
	}
	step = max(span/60, time.Second)
	if rq.Step != nil {
		if step, err = analysis.Duration(rq.Step); err != nil {
			return 0, 0, "", fmt.Errorf("rangeQuery.step: %w", err)
		}
		if step <= 0 {
			return 0, 0, "", fmt.Errorf("rangeQuery.step must be longer than 0")
		}
	}
	reduce = rq.Reduce
	if reduce == "" {
		reduce = DefaultReduce
	}
	if !slices.Contains(spec.PrometheusReducers, reduce) {
		return 0, 0, "", fmt.Errorf("rangeQuery.reduce %q is not one of %s", reduce, strings.Join(spec.PrometheusReducers, ", "))
	}
	return span, step, reduce, nil
}

// instant turns an instant query's result into a value.
func instant(res model.Value) (analysis.Value, error) {
	switch r := res.(type) {
	case model.Vector:
		if len(r) == 0 {
			return noData("the query returned no series"), nil
		}
		if len(r) > 1 {
			return analysis.Value{}, tooMany(len(r), func(i int) model.Metric { return r[i].Metric })
		}
		return number(float64(r[0].Value), "")
	case *model.Scalar:
		return number(float64(r.Value), "")
	case model.Matrix:
		return analysis.Value{}, fmt.Errorf("the query returned a range vector (%d series); use rangeQuery, or a function such as rate() over it", len(r))
	case *model.String:
		return analysis.Value{}, fmt.Errorf("the query returned the string %q, not a number", r.Value)
	}
	return analysis.Value{}, fmt.Errorf("the query returned an unexpected %T", res)
}

// reduced turns a range query's result into one value.
func reduced(res model.Value, reduce string, span time.Duration) (analysis.Value, error) {
	r, ok := res.(model.Matrix)
	if !ok {
		return analysis.Value{}, fmt.Errorf("the range query returned a %s, want a matrix", res.Type())
	}
	if len(r) == 0 {
		return noData("the range query returned no series"), nil
	}
	if len(r) > 1 {
		return analysis.Value{}, tooMany(len(r), func(i int) model.Metric { return r[i].Metric })
	}
	var vals []float64
	for _, pt := range r[0].Values {
		if v := float64(pt.Value); !math.IsNaN(v) {
			vals = append(vals, v)
		}
	}
	if len(vals) == 0 {
		return noData(fmt.Sprintf("the range query returned no number in %d points", len(r[0].Values))), nil
	}
	var v float64
	switch reduce {
	case "last":
		v = vals[len(vals)-1]
	case "min":
		v = slices.Min(vals)
	case "max":
		v = slices.Max(vals)
	case "sum", "avg":
		for _, x := range vals {
			v += x
		}
		if reduce == "avg" {
			v /= float64(len(vals))
		}
	}
	return number(v, fmt.Sprintf(" (%s of %d points over %s)", reduce, len(vals), span))
}

func number(v float64, note string) (analysis.Value, error) {
	if math.IsNaN(v) {
		return noData("the query returned NaN"), nil
	}
	return analysis.Value{Result: v, Text: strings.TrimSuffix(fmt.Sprintf("%.6g", v), ".0") + note}, nil
}

func noData(why string) analysis.Value {
	return analysis.Value{Inconclusive: true, Text: "no data: " + why}
}

// tooMany names the count and the first few series.
func tooMany(n int, series func(int) model.Metric) error {
	var names []string
	for i := range min(n, 3) {
		names = append(names, series(i).String())
	}
	more := ""
	if n > 3 {
		more = ", …"
	}
	return fmt.Errorf("the query returned %d series, want one (aggregate it, e.g. with sum()): %s%s", n, strings.Join(names, ", "), more)
}

func withWarnings(v analysis.Value, w promv1.Warnings) analysis.Value {
	if len(w) > 0 && !v.Inconclusive {
		if v.Text == "" {
			v.Text = strings.TrimSuffix(fmt.Sprintf("%.6g", v.Result), ".0")
		}
		v.Text += " (warnings: " + strings.Join(w, "; ") + ")"
	}
	return v
}
