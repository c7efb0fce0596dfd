// Package scrape is the analysis provider that reads each ready instance's own Prometheus
// text endpoint (/metrics) in local mode and sums a metric per revision, so that a business
// metric such as failed triage answers compares canary with stable without a Prometheus
// server. The text is parsed with github.com/prometheus/common/expfmt.
//
// Counters (and the _count and _sum of histograms and summaries) are read as their increase
// since the analysis run started. A scrape endpoint has no history, so the provider
// remembers, in memory, the first value it saw of every series of every instance for each
// run (keyed by rollout and run start): the increase is the value now minus that first value,
// with counter resets (a value lower than the last one) added back as Prometheus' increase()
// does. An instance whose process_start_time_seconds is at or after the run start counts from
// zero. Consequences: what happened between the run start and the first measurement
// (initialDelay) is not counted for instances that were already running, so the first
// measurement of a run sees an increase of 0; and after a restart of ramp the run counts
// from its next measurement. Gauges and untyped metrics are read as they are now.
package scrape

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/analysis"
)

// DefaultTimeout bounds the scrape of one instance when the metric sets no timeout.
const DefaultTimeout = 5 * time.Second

// DefaultPath is where instances serve their metrics unless the metric says otherwise.
const DefaultPath = "/metrics"

// forgetAfter is how long the counters of a run are kept after its last measurement.
const forgetAfter = time.Hour

// maxBody is the largest metrics page read.
const maxBody = 16 << 20

// Source lists the instances to scrape.
type Source interface {
	// Instances returns the addresses (host:port) of the revision's ready instances.
	Instances(rollout string, revision int64) []string
}

// Provider measures scrape metrics. It implements analysis.Provider and is safe for
// concurrent use.
type Provider struct {
	src    Source
	client *http.Client
	clock  func() time.Time

	mu   sync.Mutex
	runs map[runKey]*runState
}

var _ analysis.Provider = (*Provider)(nil)

// New returns a provider scraping the instances src lists. A nil client means a new
// http.Client; a nil clock means time.Now (it only ages out the memory of old runs).
func New(src Source, client *http.Client, clock func() time.Time) *Provider {
	if client == nil {
		client = &http.Client{}
	}
	if clock == nil {
		clock = time.Now
	}
	return &Provider{src: src, client: client, clock: clock, runs: map[runKey]*runState{}}
}

type runKey struct {
	rollout string
	since   time.Time
}

type runState struct {
	used     time.Time
	counters map[string]*counter // instance address + series key
}

// counter follows one counter series of one instance through a run.
type counter struct {
	Counter
	total float64 // increase since the run's first look
}

// Counter follows one counter series of one instance from look to look. Its zero value has
// seen nothing yet.
type Counter struct {
	last float64
	seen bool
}

// Observe records the series' value v and returns its increase since the last look: v minus
// the last value, or v itself when the value went down (the counter restarted from zero, as
// Prometheus' increase() takes it). On the first look it returns v when fromZero (the series
// began after the period being counted began), else 0.
func (c *Counter) Observe(v float64, fromZero bool) float64 {
	var d float64
	switch {
	case !c.seen:
		if fromZero {
			d = v
		}
	case v < c.last:
		d = v
	default:
		d = v - c.last
	}
	c.last, c.seen = v, true
	return d
}

// Measure scrapes the revision's instances (and the baseline's, when asked) and sums the
// selected series; with divideBy the result is the ratio of the two sums. No ready
// instance, or a divideBy sum below minTotal, is Inconclusive; so is a metric that no
// instance exposes. A scrape that fails is an error.
func (p *Provider) Measure(ctx context.Context, m v1alpha1.Metric, t analysis.Target) (analysis.Value, error) {
	s := m.Provider.Scrape
	if s == nil {
		return analysis.Value{}, fmt.Errorf("metric %q has no scrape provider", m.Name)
	}
	if p.src == nil {
		return analysis.Value{}, fmt.Errorf("the scrape provider has no instances to read (local mode only)")
	}
	timeout := DefaultTimeout
	if s.Timeout != nil {
		var err error
		if timeout, err = analysis.Duration(s.Timeout); err != nil {
			return analysis.Value{}, fmt.Errorf("timeout: %w", err)
		}
	}
	v, err := p.measure(ctx, s, t, t.Revision, timeout)
	if err != nil || !s.Baseline || t.Baseline == 0 {
		return v, err
	}
	// The baseline is read even when v is inconclusive: its counters start at the first look.
	base, err := p.measure(ctx, s, t, t.Baseline, timeout)
	if v.Inconclusive {
		return v, nil
	}
	return analysis.WithBaseline(v, base, err, t.Baseline)
}

// selector picks series by name and labels.
type selector struct {
	name   string
	labels map[string]string
}

func (s selector) String() string { return Selector(s.name, s.labels) }

// Selector writes a series selector as Prometheus does: name{k="v",...} with the labels in
// order, or the name alone when there are none.
func Selector(name string, labels map[string]string) string {
	if len(labels) == 0 {
		return name
	}
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%q", k, labels[k])
	}
	return name + "{" + strings.Join(parts, ",") + "}"
}

// sum is what one selector added up to over the instances.
type sum struct {
	value float64
	found bool // some instance exposes the metric
}

func (p *Provider) measure(ctx context.Context, s *v1alpha1.ScrapeMetric, t analysis.Target, revision int64, timeout time.Duration) (analysis.Value, error) {
	addrs := p.src.Instances(t.Rollout, revision)
	if len(addrs) == 0 {
		return analysis.Value{Inconclusive: true, Text: fmt.Sprintf("no data: revision %d has no ready instance", revision)}, nil
	}
	num := selector{s.Metric, s.Labels}
	var den *selector
	if d := s.DivideBy; d != nil {
		den = &selector{d.Metric, d.Labels}
		if den.name == "" {
			den.name = s.Metric
		}
	}
	path := s.Path
	if path == "" {
		path = DefaultPath
	}

	var n, d sum
	for _, addr := range addrs {
		families, err := p.scrape(ctx, addr, path, timeout)
		if err != nil {
			return analysis.Value{}, err
		}
		started := StartTime(families)
		fresh := !started.IsZero() && !started.Before(t.Since)
		add := func(acc *sum, sel selector) error {
			v, found, err := p.read(families, sel, runKey{t.Rollout, t.Since}, addr, fresh)
			if err != nil {
				return err
			}
			acc.value += v
			acc.found = acc.found || found
			return nil
		}
		if err := add(&n, num); err != nil {
			return analysis.Value{}, err
		}
		if den != nil {
			if err := add(&d, *den); err != nil {
				return analysis.Value{}, err
			}
		}
	}
	where := fmt.Sprintf("%d instance", len(addrs))
	if len(addrs) > 1 {
		where += "s"
	}

	if den == nil {
		if !n.found {
			return analysis.Value{Inconclusive: true, Text: fmt.Sprintf("no data: no instance of revision %d exposes %s", revision, num.name)}, nil
		}
		return analysis.Value{Result: n.value, Text: fmt.Sprintf("%s (%s over %s)", number(n.value), num, where)}, nil
	}
	minTotal := float64(s.MinTotal)
	if minTotal == 0 {
		minTotal = 1
	}
	if !d.found || d.value < minTotal {
		return analysis.Value{Inconclusive: true, Text: fmt.Sprintf("no data: %s is %s on revision %d (min %s)", den, number(d.value), revision, number(minTotal))}, nil
	}
	r := n.value / d.value
	return analysis.Value{Result: r, Text: fmt.Sprintf("%s (%s/%s: %s / %s over %s)", number(r), number(n.value), number(d.value), num, den, where)}, nil
}

// scrape reads one instance's metrics.
func (p *Provider) scrape(ctx context.Context, addr, path string, timeout time.Duration) (map[string]*dto.MetricFamily, error) {
	return Fetch(ctx, p.client, addr, path, timeout)
}

// Fetch reads the metrics page http://addr+path (Prometheus text format) within timeout. An
// empty path means DefaultPath.
func Fetch(ctx context.Context, client *http.Client, addr, path string, timeout time.Duration) (map[string]*dto.MetricFamily, error) {
	if path == "" {
		path = DefaultPath
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	url := "http://" + addr + path
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", url, err)
	}
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		return nil, fmt.Errorf("scrape %s: status %d", url, resp.StatusCode)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return nil, fmt.Errorf("scrape %s: not the Prometheus text format: %w", url, err)
	}
	return families, nil
}

// StartTime is the instance's process_start_time_seconds; zero when it does not say.
func StartTime(families map[string]*dto.MetricFamily) time.Time {
	f := families["process_start_time_seconds"]
	if f == nil || len(f.GetMetric()) != 1 {
		return time.Time{}
	}
	m := f.GetMetric()[0]
	var v float64
	switch {
	case m.GetGauge() != nil:
		v = m.GetGauge().GetValue()
	case m.GetUntyped() != nil:
		v = m.GetUntyped().GetValue()
	default:
		return time.Time{}
	}
	if v <= 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		return time.Time{}
	}
	sec, frac := math.Modf(v)
	return time.Unix(int64(sec), int64(frac*1e9))
}

// read sums the series sel selects on one instance: counters as their increase in the run,
// the rest as they are. found says the instance exposes the metric at all.
func (p *Provider) read(families map[string]*dto.MetricFamily, sel selector, run runKey, addr string, fresh bool) (float64, bool, error) {
	series, found, err := Select(families, sel.name, sel.labels)
	if err != nil {
		return 0, found, fmt.Errorf("%s on %s: %w", sel.name, addr, err)
	}
	var total float64
	for _, s := range series {
		v := s.Value
		if s.Counter {
			v = p.increase(run, addr+" "+sel.name+" "+s.Key, v, fresh)
		}
		total += v
	}
	return total, found, nil
}

// Series is one series of one instance's metrics page.
type Series struct {
	// Key identifies the series within its metric: its labels, sorted.
	Key   string
	Value float64
	// Counter says the value only grows (but for restarts): a counter, or the _count or
	// _sum of a histogram or summary.
	Counter bool
}

// Select returns the series of metric name whose labels have the given values (a label a
// series lacks has the empty value, as in PromQL; no labels select every series). NAME_count
// and NAME_sum select the count and sum of a histogram or summary NAME. found says the page
// has the metric at all.
func Select(families map[string]*dto.MetricFamily, name string, labels map[string]string) (series []Series, found bool, err error) {
	part := ""
	f := families[name]
	if f == nil {
		for _, suffix := range []string{"_count", "_sum"} {
			if base, ok := strings.CutSuffix(name, suffix); ok && families[base] != nil {
				switch families[base].GetType() {
				case dto.MetricType_HISTOGRAM, dto.MetricType_SUMMARY, dto.MetricType_GAUGE_HISTOGRAM:
					f, part = families[base], suffix
				}
			}
		}
	}
	if f == nil {
		return nil, false, nil
	}
	for _, m := range f.GetMetric() {
		if !matches(m, labels) {
			continue
		}
		v, isCounter, err := sample(f.GetType(), m, part)
		if err != nil {
			return nil, true, err
		}
		series = append(series, Series{Key: seriesKey(m), Value: v, Counter: isCounter})
	}
	return series, true, nil
}

// sample is the value of one series, and whether it is a counter.
func sample(typ dto.MetricType, m *dto.Metric, part string) (float64, bool, error) {
	switch typ {
	case dto.MetricType_COUNTER:
		return m.GetCounter().GetValue(), true, nil
	case dto.MetricType_GAUGE:
		return m.GetGauge().GetValue(), false, nil
	case dto.MetricType_UNTYPED:
		return m.GetUntyped().GetValue(), false, nil
	case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
		h := m.GetHistogram()
		switch part {
		case "_count":
			return float64(h.GetSampleCount()), typ == dto.MetricType_HISTOGRAM, nil
		case "_sum":
			return h.GetSampleSum(), typ == dto.MetricType_HISTOGRAM, nil
		}
		return 0, false, fmt.Errorf("is a histogram; read NAME_count or NAME_sum")
	case dto.MetricType_SUMMARY:
		s := m.GetSummary()
		switch part {
		case "_count":
			return float64(s.GetSampleCount()), true, nil
		case "_sum":
			return s.GetSampleSum(), true, nil
		}
		return 0, false, fmt.Errorf("is a summary; read NAME_count or NAME_sum")
	}
	return 0, false, fmt.Errorf("has the unsupported type %s", typ)
}

// matches reports whether m has the wanted label values; a label m lacks has the empty
// value, as in PromQL.
func matches(m *dto.Metric, want map[string]string) bool {
	for k, v := range want {
		got := ""
		for _, l := range m.GetLabel() {
			if l.GetName() == k {
				got = l.GetValue()
				break
			}
		}
		if got != v {
			return false
		}
	}
	return true
}

// seriesKey identifies a series within its metric: its labels, sorted.
func seriesKey(m *dto.Metric) string {
	pairs := make([]string, 0, len(m.GetLabel()))
	for _, l := range m.GetLabel() {
		pairs = append(pairs, l.GetName()+"="+l.GetValue())
	}
	slices.Sort(pairs)
	return strings.Join(pairs, ",")
}

// increase records a counter's value and returns its increase since the run's first look
// (since zero when the instance started after the run did).
func (p *Provider) increase(run runKey, key string, v float64, fresh bool) float64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.clock()
	for k, r := range p.runs {
		if now.Sub(r.used) > forgetAfter {
			delete(p.runs, k)
		}
	}
	r := p.runs[run]
	if r == nil {
		r = &runState{counters: map[string]*counter{}}
		p.runs[run] = r
	}
	r.used = now
	c := r.counters[key]
	if c == nil {
		c = &counter{}
		r.counters[key] = c
	}
	c.total += c.Observe(v, fresh)
	return c.total
}

// number prints a value with up to 4 significant digits.
func number(f float64) string {
	return strings.TrimSuffix(fmt.Sprintf("%.4g", f), ".0")
}
