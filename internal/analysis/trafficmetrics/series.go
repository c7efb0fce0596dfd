package trafficmetrics

import (
	"context"
	"fmt"
	"math"
	"time"

	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/control"
)

// SeriesWindow is the look-back of each point of the dashboard's charts in Kubernetes mode:
// a point is the rate over the SeriesWindow before it (Prometheus needs two samples of a
// counter, and usual scrape intervals are 15s), so the lines are smoothed over that much.
const SeriesWindow = MinWindow

// SeriesQueries are the PromQL range queries of one revision's chart lines. Each gives at
// most one series; an empty query means the revision has no such line.
type SeriesQueries struct {
	// Rate is the revision's requests per second.
	Rate string
	// ErrorShare is the share of its requests answered 5xx (NaN without requests).
	ErrorShare string
	// LatencyP95 and FirstTokenP95 are in seconds; FirstTokenP95 is empty without the app's
	// first-token histogram (spec.appMetrics.firstToken).
	LatencyP95, FirstTokenP95 string
	// Business are the business metrics' shares of events, in the judge's order; empty
	// without the app's series (spec.appMetrics).
	Business []BusinessQuery
}

// BusinessQuery is one business metric's share of events.
type BusinessQuery struct {
	Name, Query string
}

// QueriesFor builds the chart queries of the revision s selects, each point over window;
// business are the judge's business metrics (spec.strategy.canary.judge.business).
func QueriesFor(s Selector, window time.Duration, business []v1alpha1.JudgeBusinessMetric) SeriesQueries {
	w := fmt.Sprintf("[%ds]", max(int64(math.Ceil(window.Seconds())), 1))
	rate := func(sel string) string { return "rate(" + sel + w + ")" }
	total := "sum(" + rate(s.Requests()) + ")"
	q := SeriesQueries{Rate: total}
	errs := sumOf(s.Errors(), rate)
	q.ErrorShare = fmt.Sprintf("(%s or vector(0)) / %s", errs, total)
	if len(s.Errors()) > 1 {
		q.ErrorShare = fmt.Sprintf("(%s) / %s", errs, total)
	}
	buckets, scale := s.Buckets()
	q.LatencyP95 = p95(rate(buckets), scale)
	if ft := s.FirstTokenBuckets(); ft != "" {
		q.FirstTokenP95 = p95(rate(ft), 1)
	}
	if s.App != nil {
		for _, b := range business {
			bad, all := s.Business(b.Metric, b.Events, b.Total)
			q.Business = append(q.Business, BusinessQuery{Name: b.Name,
				Query: fmt.Sprintf("(sum(%s) or vector(0)) / sum(%s)", rate(bad), rate(all))})
		}
	}
	return q
}

func p95(rates string, scale float64) string {
	q := fmt.Sprintf("histogram_quantile(0.95, sum by (le) (%s))", rates)
	if scale != 1 {
		q = fmt.Sprintf("%s * %g", q, scale)
	}
	return q
}

// Range is the time range of a chart: points at From, From+Step, ..., To.
type Range struct {
	From, To time.Time
	Step     time.Duration
}

// Times are the points' times.
func (r Range) Times() []time.Time {
	var out []time.Time
	for t := r.From; !t.After(r.To); t = t.Add(r.Step) {
		out = append(out, t)
	}
	return out
}

// RevisionSeries reads the revision's chart lines over r from the queries q. The points
// cover every time of r; a line whose query failed is left empty and the message says
// why (the first failure), an error only when the request rate itself cannot be read.
func (c *Client) RevisionSeries(ctx context.Context, q SeriesQueries, r Range) ([]control.SeriesPoint, string, error) {
	times := r.Times()
	pts := make([]control.SeriesPoint, len(times))
	for i, t := range times {
		pts[i].Time = t.UTC()
	}
	rates, err := c.matrix(ctx, q.Rate, r)
	if err != nil {
		return pts, "", err
	}
	step := r.Step.Seconds()
	for i, t := range times {
		if v, ok := rates[t.Unix()]; ok {
			pts[i].Rate = v
			pts[i].Requests = int64(math.Round(v * step))
		}
	}
	var msg string
	line := func(query string, set func(p *control.SeriesPoint, v float64)) {
		if query == "" {
			return
		}
		vs, err := c.matrix(ctx, query, r)
		if err != nil {
			if msg == "" {
				msg = err.Error()
			}
			return
		}
		for i, t := range times {
			if v, ok := vs[t.Unix()]; ok && pts[i].Rate > 0 {
				set(&pts[i], v)
			}
		}
	}
	line(q.ErrorShare, func(p *control.SeriesPoint, v float64) {
		p.ErrorShare = &v
		p.Errors = int64(math.Round(v * p.Rate * step))
	})
	line(q.LatencyP95, func(p *control.SeriesPoint, v float64) { p.LatencyP95 = &v })
	line(q.FirstTokenP95, func(p *control.SeriesPoint, v float64) { p.FirstTokenP95 = &v })
	for _, b := range q.Business {
		line(b.Query, func(p *control.SeriesPoint, v float64) {
			if p.Business == nil {
				p.Business = map[string]float64{}
			}
			p.Business[b.Name] = v
		})
	}
	return pts, msg, nil
}

// matrix runs a range query that gives at most one series; its finite values by Unix time.
func (c *Client) matrix(ctx context.Context, query string, r Range) (map[int64]float64, error) {
	ctx, cancel := context.WithTimeout(ctx, DefaultTimeout)
	defer cancel()
	res, _, _, err := c.api.QueryRange(ctx, query, promv1.Range{Start: r.From, End: r.To, Step: r.Step}, promv1.WithTimeout(DefaultTimeout))
	if err != nil {
		return nil, fmt.Errorf("query_range %s at %s: %w", query, c.address, err)
	}
	m, ok := res.(model.Matrix)
	if !ok {
		return nil, fmt.Errorf("query_range %s gave a %s, want a matrix", query, res.Type())
	}
	if len(m) > 1 {
		return nil, fmt.Errorf("query_range %s gave %d series, want one", query, len(m))
	}
	out := map[int64]float64{}
	for _, s := range m {
		for _, p := range s.Values {
			v := float64(p.Value)
			if !math.IsNaN(v) && !math.IsInf(v, 0) {
				out[p.Timestamp.Unix()] = v
			}
		}
	}
	return out, nil
}

// Reachable asks the Prometheus for a constant, within timeout: an error says why it
// cannot be reached (or does not answer as a Prometheus).
func (c *Client) Reachable(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if _, _, _, err := c.api.Query(ctx, "vector(1)", time.Now()); err != nil {
		return fmt.Errorf("prometheus %s: %w", c.address, err)
	}
	return nil
}

// Address is the Prometheus's address, as given.
func (c *Client) Address() string { return c.address }
