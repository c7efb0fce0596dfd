package builtin

import (
	"context"
	"errors"
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/intstr"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/analysis"
	"ramp.dev/ramp/internal/spec"
)

var (
	start = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	now   = start.Add(2 * time.Minute)
)

type call struct {
	rollout  string
	revision int64
	since    time.Time
}

// fakeSource serves fixed stats per revision and records the request queries.
type fakeSource struct {
	requests  map[int64]RequestStats
	instances map[int64]InstanceStats
	calls     []call
}

func (f *fakeSource) Requests(rollout string, revision int64, since time.Time) RequestStats {
	f.calls = append(f.calls, call{rollout, revision, since})
	return f.requests[revision]
}

func (f *fakeSource) Instances(rollout string, revision int64) InstanceStats {
	return f.instances[revision]
}

// linear is a quantile function: q of max.
func linear(max time.Duration) func(float64) time.Duration {
	return func(q float64) time.Duration { return time.Duration(q * float64(max)) }
}

func metric(name string, opts ...func(*v1alpha1.BuiltinMetric)) v1alpha1.Metric {
	b := &v1alpha1.BuiltinMetric{Metric: name}
	for _, o := range opts {
		o(b)
	}
	return v1alpha1.Metric{Name: name, Provider: v1alpha1.MetricProvider{Builtin: b}}
}

func window(s string) func(*v1alpha1.BuiltinMetric) {
	return func(b *v1alpha1.BuiltinMetric) { w := intstr.Parse(s); b.Window = &w }
}
func minRequests(n int32) func(*v1alpha1.BuiltinMetric) {
	return func(b *v1alpha1.BuiltinMetric) { b.MinRequests = n }
}
func withBaseline(b *v1alpha1.BuiltinMetric) { b.Baseline = true }

func fptr(f float64) *float64 { return &f }

func TestMeasure(t *testing.T) {
	src := func() *fakeSource {
		return &fakeSource{
			requests: map[int64]RequestStats{
				2: {Requests: 400, Errors: 124, Latency: linear(2 * time.Second), TTFB: linear(200 * time.Millisecond), FirstToken: linear(time.Second)},
				1: {Requests: 2580, Errors: 31, Latency: linear(time.Second), Duration: 60 * time.Second},
				3: {Requests: 3, Errors: 0},
				4: {Requests: 0},
			},
			instances: map[int64]InstanceStats{
				2: {Restarts: 2, ReadinessFailures: 5, CPUSeconds: 12, CPURate: 0.35, MemoryBytes: 64 << 20},
			},
		}
	}
	target := func(rev, base int64) analysis.Target {
		return analysis.Target{Rollout: "chat-api", Revision: rev, Baseline: base, Since: start}
	}
	tests := []struct {
		name      string
		m         v1alpha1.Metric
		target    analysis.Target
		want      analysis.Value
		wantErr   string
		wantSince []time.Time // since of each Requests call
	}{
		{
			name:      "error-rate since run start",
			m:         metric("error-rate"),
			target:    target(2, 1),
			want:      analysis.Value{Result: 0.31, Text: "0.31 (124/400 5xx)"},
			wantSince: []time.Time{start},
		},
		{
			name:      "error-rate over a window",
			m:         metric("error-rate", window("30s")),
			target:    target(2, 1),
			want:      analysis.Value{Result: 0.31, Text: "0.31 (124/400 5xx)"},
			wantSince: []time.Time{now.Add(-30 * time.Second)},
		},
		{
			name:      "window in seconds",
			m:         metric("error-rate", window("45")),
			target:    target(2, 1),
			want:      analysis.Value{Result: 0.31, Text: "0.31 (124/400 5xx)"},
			wantSince: []time.Time{now.Add(-45 * time.Second)},
		},
		{
			name:   "error-rate with baseline",
			m:      metric("error-rate", withBaseline),
			target: target(2, 1),
			want:   analysis.Value{Result: 0.31, Baseline: fptr(31.0 / 2580), Text: "0.31 (124/400 5xx)"},
		},
		{
			name:   "baseline asked but no baseline revision",
			m:      metric("error-rate", withBaseline),
			target: target(2, 0),
			want:   analysis.Value{Result: 0.31, Text: "0.31 (124/400 5xx)"},
		},
		{
			name:   "too few requests",
			m:      metric("error-rate", minRequests(20)),
			target: target(3, 0),
			want:   analysis.Value{Inconclusive: true, Text: "only 3 requests (min 20)"},
		},
		{
			name:   "no requests, default min 1",
			m:      metric("latency-p99"),
			target: target(4, 0),
			want:   analysis.Value{Inconclusive: true, Text: "only 0 requests (min 1)"},
		},
		{
			name:   "baseline with too few requests",
			m:      metric("error-rate", withBaseline, minRequests(10)),
			target: target(2, 3),
			want:   analysis.Value{Inconclusive: true, Text: "baseline revision 3: only 3 requests (min 10)"},
		},
		{
			name:   "request-count is conclusive at zero",
			m:      metric("request-count"),
			target: target(4, 0),
			want:   analysis.Value{Result: 0, Text: "0 requests"},
		},
		{
			name:   "request-count with explicit minRequests",
			m:      metric("request-count", minRequests(5)),
			target: target(3, 0),
			want:   analysis.Value{Inconclusive: true, Text: "only 3 requests (min 5)"},
		},
		{
			name:   "request-rate over the run",
			m:      metric("request-rate"),
			target: target(2, 0),
			want:   analysis.Value{Result: 400.0 / 120, Text: "3.333 req/s (400 in 2m0s)"},
		},
		{
			name:   "request-rate over the source's duration",
			m:      metric("request-rate"),
			target: target(1, 0),
			want:   analysis.Value{Result: 43, Text: "43 req/s (2580 in 1m0s)"},
		},
		{
			name:   "latency-p95 in seconds",
			m:      metric("latency-p95"),
			target: target(2, 0),
			want:   analysis.Value{Result: 1.9, Text: "1.9s (p95 of 400 requests)"},
		},
		{
			name:   "latency-p50 with baseline",
			m:      metric("latency-p50", withBaseline),
			target: target(2, 1),
			want:   analysis.Value{Result: 1, Baseline: fptr(0.5), Text: "1s (p50 of 400 requests)"},
		},
		{
			name:   "ttfb-p99 in seconds",
			m:      metric("ttfb-p99"),
			target: target(2, 0),
			want:   analysis.Value{Result: 0.198, Text: "0.198s (p99 of 400 requests)"},
		},
		{
			name:   "first-token-p95 is the body's first byte, not the headers",
			m:      metric("first-token-p95"),
			target: target(2, 0),
			want:   analysis.Value{Result: 0.95, Text: "0.95s (p95 of 400 requests)"},
		},
		{
			name:    "first token not recorded",
			m:       metric("first-token-p50"),
			target:  target(1, 0),
			wantErr: "first-token is not recorded for revision 1",
		},
		{
			name:    "ttfb not recorded",
			m:       metric("ttfb-p50"),
			target:  target(1, 0),
			wantErr: "ttfb is not recorded for revision 1",
		},
		{
			name:   "restarts",
			m:      metric("restarts"),
			target: target(2, 0),
			want:   analysis.Value{Result: 2, Text: "2 restarts"},
		},
		{
			name:   "readiness-failures",
			m:      metric("readiness-failures"),
			target: target(2, 0),
			want:   analysis.Value{Result: 5, Text: "5 readiness failures"},
		},
		{
			name:   "cpu in cores",
			m:      metric("cpu"),
			target: target(2, 0),
			want:   analysis.Value{Result: 0.35, Text: "0.35 cores"},
		},
		{
			name:   "memory in bytes",
			m:      metric("memory"),
			target: target(2, 0),
			want:   analysis.Value{Result: 64 << 20, Text: "67108864 bytes (64.0 MiB)"},
		},
		{
			name:    "unknown metric",
			m:       metric("happiness"),
			target:  target(2, 0),
			wantErr: `unknown builtin metric "happiness"`,
		},
		{
			name:    "bad window",
			m:       metric("error-rate", window("a while")),
			target:  target(2, 0),
			wantErr: "window: duration \"a while\" is not a Go duration",
		},
		{
			name:    "not a builtin metric",
			m:       v1alpha1.Metric{Name: "x"},
			target:  target(2, 0),
			wantErr: `metric "x" has no builtin provider`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := src()
			p := New(s, func() time.Time { return now })
			got, err := p.Measure(context.Background(), tt.m, tt.target)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Measure: %v", err)
			}
			if !sameValue(got, tt.want) {
				t.Errorf("value = %s, want %s", show(got), show(tt.want))
			}
			if tt.wantSince != nil {
				var since []time.Time
				for _, c := range s.calls {
					if c.rollout != "chat-api" {
						t.Errorf("queried rollout %q", c.rollout)
					}
					since = append(since, c.since)
				}
				if !reflect.DeepEqual(since, tt.wantSince) {
					t.Errorf("since = %v, want %v", since, tt.wantSince)
				}
			}
		})
	}
}

func sameValue(a, b analysis.Value) bool {
	if a.Inconclusive != b.Inconclusive || a.Text != b.Text || !near(a.Result, b.Result) {
		return false
	}
	if (a.Baseline == nil) != (b.Baseline == nil) {
		return false
	}
	return a.Baseline == nil || near(*a.Baseline, *b.Baseline)
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

func show(v analysis.Value) string {
	s := "{" + strings.Join([]string{
		"result=" + num(v.Result), "inconclusive=" + map[bool]string{true: "true", false: "false"}[v.Inconclusive], "text=" + v.Text,
	}, " ")
	if v.Baseline != nil {
		s += " baseline=" + num(*v.Baseline)
	}
	return s + "}"
}

func TestUnknownMetricIsSentinel(t *testing.T) {
	_, err := New(&fakeSource{}, nil).Measure(context.Background(), metric("nope"), analysis.Target{Revision: 1})
	if !errors.Is(err, ErrUnknownMetric) {
		t.Errorf("err = %v, want ErrUnknownMetric", err)
	}
}

// The provider measures exactly the names spec validation accepts: the two lists live in
// different packages (spec cannot import this one), so this test keeps them equal.
func TestMetricsListsAll(t *testing.T) {
	want := spec.BuiltinMetricNames()
	slices.Sort(want)
	if got := Metrics(); !reflect.DeepEqual(got, want) {
		t.Errorf("Metrics() = %v, spec accepts %v", got, want)
	}
}

// TestWithRunner runs a baseline comparison end to end through the analysis runner.
func TestWithRunner(t *testing.T) {
	src := &fakeSource{requests: map[int64]RequestStats{
		2: {Requests: 1000, Errors: 20}, // 0.02
		1: {Requests: 1000, Errors: 10}, // 0.01
	}}
	clock := start
	r := &analysis.Runner{Providers: map[string]analysis.Provider{"builtin": New(src, func() time.Time { return clock })}}
	m := metric("error-rate", withBaseline, window("30s"))
	m.SuccessCondition = "result <= baseline * 1.5 + 0.01"
	m.Interval = &intstr.IntOrString{Type: intstr.String, StrVal: "30s"}
	m.Count = new(int32)
	*m.Count = 2
	templates := map[string]*v1alpha1.AnalysisTemplate{"error-rate": {Spec: v1alpha1.AnalysisTemplateSpec{Metrics: []v1alpha1.Metric{m}}}}
	run := &v1alpha1.AnalysisRunStatus{
		Name: "background-2", Revision: 2, BaselineRevision: 1,
		Spec: v1alpha1.RolloutAnalysis{Templates: []v1alpha1.AnalysisTemplateRef{{TemplateName: "error-rate"}}},
	}
	run.StartedAt.Time = start
	for i := 0; i < 5 && !run.Phase.Completed(); i++ {
		next := r.Step(context.Background(), clock, "chat-api", run, templates)
		if !next.IsZero() {
			clock = next
		}
	}
	if run.Phase != v1alpha1.AnalysisSuccessful {
		t.Fatalf("phase = %s (%q)", run.Phase, run.Message)
	}
	// Degrade the canary: 0.05 > 0.01*1.5+0.01.
	src.requests[2] = RequestStats{Requests: 1000, Errors: 50}
	run.Phase, run.Metrics = "", nil
	r.Step(context.Background(), start, "chat-api", run, templates)
	want := `metric "error-rate" failed: 1 of 1 measurements failed (limit 0); last: result=0.05 (50/1000 5xx) baseline=0.01 with "result <= baseline * 1.5 + 0.01"`
	if run.Phase != v1alpha1.AnalysisFailed || run.Message != want {
		t.Errorf("run = %s %q\nwant message %q", run.Phase, run.Message, want)
	}
}
