package scrape

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/analysis"
	"ramp.dev/ramp/test/testkit"
)

// newPage is an instance serving a metrics page that the test changes.
func newPage(t *testing.T) *testkit.MetricsPage {
	return testkit.NewMetricsPage(t, "", "/metrics", "/custom")
}

// instances is a Source with fixed instances per revision.
type instances map[int64][]string

func (s instances) Instances(_ string, rev int64) []string { return s[rev] }

func triage(success, failed int, extra ...string) string {
	return fmt.Sprintf(`# HELP chat_triage_total Chat answers by triage outcome.
# TYPE chat_triage_total counter
chat_triage_total{outcome="success"} %d
chat_triage_total{outcome="failed"} %d
`, success, failed) + strings.Join(extra, "")
}

const gauges = `# TYPE queue_depth gauge
queue_depth{queue="a"} 3
queue_depth{queue="b"} 4
# no TYPE: untyped
build_info 1
# TYPE latency_seconds histogram
latency_seconds_bucket{le="0.5"} 8
latency_seconds_bucket{le="+Inf"} 10
latency_seconds_sum 4.5
latency_seconds_count 10
`

func TestMeasure(t *testing.T) {
	c1, c2, stable := newPage(t), newPage(t), newPage(t)
	src := instances{2: {c1.Addr(), c2.Addr()}, 1: {stable.Addr()}}
	p := New(src, nil, nil)
	since := time.Now()
	target := analysis.Target{Rollout: "chat-api", Revision: 2, Baseline: 1, Since: since}
	metric := func(s v1alpha1.ScrapeMetric) v1alpha1.Metric {
		return v1alpha1.Metric{Name: "m", Provider: v1alpha1.MetricProvider{Scrape: &s}}
	}
	failedShare := metric(v1alpha1.ScrapeMetric{
		Metric: "chat_triage_total", Labels: map[string]string{"outcome": "failed"},
		DivideBy: &v1alpha1.ScrapeSelector{}, Baseline: true, MinTotal: 5,
	})

	// Steps in order: each sets the pages, then measures. Counters count from the first
	// measurement of the run.
	steps := []struct {
		name             string
		c1, c2, stable   string
		m                v1alpha1.Metric
		target           *analysis.Target
		want, baseline   float64
		wantInconclusive bool
		wantText         string
		wantErr          string
	}{
		{name: "first look: no increase yet, so no data", c1: triage(100, 10), c2: triage(50, 5), stable: triage(1000, 1),
			m: failedShare, wantInconclusive: true, wantText: "no data: chat_triage_total is 0 on revision 2 (min 5)"},
		{name: "ratio of increases against the baseline's", c1: triage(110, 20), c2: triage(60, 5), stable: triage(1090, 11),
			m: failedShare, want: 10.0 / 30, baseline: 0.1, wantText: `0.3333 (10/30: chat_triage_total{outcome="failed"} / chat_triage_total over 2 instances)`},
		{name: "a counter reset is added back", c1: triage(5, 5), c2: triage(60, 5), stable: triage(1180, 21),
			m: failedShare, want: 15.0 / 40, baseline: 0.1},
		{name: "sum without divideBy", c1: triage(5, 5), c2: triage(60, 7), stable: triage(1180, 21),
			m: metric(v1alpha1.ScrapeMetric{Metric: "chat_triage_total", Labels: map[string]string{"outcome": "failed"}}), want: 17,
			wantText: `17 (chat_triage_total{outcome="failed"} over 2 instances)`},
		{name: "gauges are read as they are", c1: gauges, c2: gauges,
			m: metric(v1alpha1.ScrapeMetric{Metric: "queue_depth", Labels: map[string]string{"queue": "b"}}), want: 8},
		{name: "untyped", c1: gauges, c2: gauges, m: metric(v1alpha1.ScrapeMetric{Metric: "build_info"}), want: 2},
		{name: "histogram sum over count, first look", c1: gauges, c2: gauges,
			m:                metric(v1alpha1.ScrapeMetric{Metric: "latency_seconds_sum", DivideBy: &v1alpha1.ScrapeSelector{Metric: "latency_seconds_count"}}),
			wantInconclusive: true},
		{name: "histogram sum over count: mean latency", c1: strings.ReplaceAll(strings.ReplaceAll(gauges, "_sum 4.5", "_sum 6.5"), "_count 10", "_count 14"), c2: gauges,
			m:    metric(v1alpha1.ScrapeMetric{Metric: "latency_seconds_sum", DivideBy: &v1alpha1.ScrapeSelector{Metric: "latency_seconds_count"}}),
			want: 0.5},
		{name: "a histogram needs _count or _sum", c1: gauges, c2: gauges, m: metric(v1alpha1.ScrapeMetric{Metric: "latency_seconds"}),
			wantErr: "latency_seconds on " + c1.Addr() + ": is a histogram; read NAME_count or NAME_sum"},
		{name: "a metric nobody exposes is no data", c1: gauges, c2: gauges, m: metric(v1alpha1.ScrapeMetric{Metric: "nope_total"}),
			wantInconclusive: true, wantText: "no data: no instance of revision 2 exposes nope_total"},
		{name: "a label value nobody has sums to 0", c1: gauges, c2: gauges, m: metric(v1alpha1.ScrapeMetric{Metric: "queue_depth", Labels: map[string]string{"queue": "z"}}), want: 0},
		{name: "no ready instance", c1: gauges, c2: gauges, m: metric(v1alpha1.ScrapeMetric{Metric: "queue_depth"}),
			target: &analysis.Target{Rollout: "chat-api", Revision: 7, Since: since}, wantInconclusive: true, wantText: "no data: revision 7 has no ready instance"},
		{name: "not the text format", c1: "{\"json\": true}\n", c2: gauges, m: metric(v1alpha1.ScrapeMetric{Metric: "queue_depth"}),
			wantErr: "scrape http://" + c1.Addr() + "/metrics: not the Prometheus text format"},
		{name: "custom path", c1: gauges, c2: gauges, m: metric(v1alpha1.ScrapeMetric{Metric: "queue_depth", Path: "/custom"}), want: 14},
		{name: "wrong path", c1: gauges, c2: gauges, m: metric(v1alpha1.ScrapeMetric{Metric: "queue_depth", Path: "/other"}),
			wantErr: "scrape http://" + c1.Addr() + "/other: status 404"},
	}
	for _, st := range steps {
		c1.Set(st.c1)
		c2.Set(st.c2)
		stable.Set(st.stable)
		tg := target
		if st.target != nil {
			tg = *st.target
		}
		v, err := p.Measure(context.Background(), st.m, tg)
		if st.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), st.wantErr) {
				t.Errorf("%s: error %v, want one containing %q", st.name, err, st.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", st.name, err)
			continue
		}
		if v.Inconclusive != st.wantInconclusive || (!v.Inconclusive && !near(v.Result, st.want)) || (st.wantText != "" && v.Text != st.wantText) {
			t.Errorf("%s: got %+v, want result %v inconclusive %t text %q", st.name, v, st.want, st.wantInconclusive, st.wantText)
		}
		if st.baseline != 0 && (v.Baseline == nil || !near(*v.Baseline, st.baseline)) {
			t.Errorf("%s: baseline %v, want %v", st.name, v.Baseline, st.baseline)
		}
	}
}

// An instance that started after the run counts its counters from zero.
func TestFreshInstanceCountsFromZero(t *testing.T) {
	in := newPage(t)
	since := time.Now().Add(-time.Minute)
	started := fmt.Sprintf("# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds %.3f\n", float64(since.Add(time.Second).UnixMilli())/1000)
	in.Set(triage(9, 1, started))
	m := v1alpha1.Metric{Name: "m", Provider: v1alpha1.MetricProvider{Scrape: &v1alpha1.ScrapeMetric{
		Metric: "chat_triage_total", Labels: map[string]string{"outcome": "failed"}, DivideBy: &v1alpha1.ScrapeSelector{},
	}}}
	p := New(instances{1: {in.Addr()}}, nil, nil)
	v, err := p.Measure(context.Background(), m, analysis.Target{Rollout: "r", Revision: 1, Since: since})
	if err != nil || v.Inconclusive || !near(v.Result, 0.1) {
		t.Fatalf("got %+v, %v; want 0.1 from the start", v, err)
	}
	// The same instance seen by a run that started after it: counts from the first look.
	v, err = p.Measure(context.Background(), m, analysis.Target{Rollout: "r", Revision: 1, Since: time.Now()})
	if err != nil || !v.Inconclusive {
		t.Fatalf("got %+v, %v; want no data on the first look", v, err)
	}
}

func near(a, b float64) bool { d := a - b; return d < 1e-9 && d > -1e-9 }

func TestCounterObserve(t *testing.T) {
	tests := []struct {
		name     string
		fromZero bool
		values   []float64
		want     []float64
	}{
		{"first look is the baseline", false, []float64{10, 12, 12, 20}, []float64{0, 2, 0, 8}},
		{"a series that began in the period counts from zero", true, []float64{3, 5}, []float64{3, 2}},
		{"a reset counts the new value", false, []float64{10, 15, 4, 6}, []float64{0, 5, 4, 2}},
		{"a reset to zero", false, []float64{7, 0, 1}, []float64{0, 0, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c Counter
			for i, v := range tt.values {
				if got := c.Observe(v, tt.fromZero); got != tt.want[i] {
					t.Fatalf("look %d at %g: increase %g, want %g", i, v, got, tt.want[i])
				}
			}
		})
	}
}
