package analysis

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"ramp.dev/ramp/api/v1alpha1"
)

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// fakeProvider answers measurements from a script, one entry per call; the last entry
// repeats.
type fakeProvider struct {
	mu      sync.Mutex
	script  []outcome
	calls   int
	targets []Target
}

type outcome struct {
	v   Value
	err error
}

func (f *fakeProvider) Measure(_ context.Context, _ v1alpha1.Metric, t Target) (Value, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	o := f.script[min(f.calls, len(f.script)-1)]
	f.calls++
	f.targets = append(f.targets, t)
	return o.v, o.err
}

func val(f float64) outcome { return outcome{v: Value{Result: f}} }
func valBase(f, b float64) outcome {
	return outcome{v: Value{Result: f, Baseline: &b}}
}
func inconclusive(text string) outcome {
	return outcome{v: Value{Inconclusive: true, Text: text}}
}
func fail(msg string) outcome { return outcome{err: errors.New(msg)} }

func ptr[T any](v T) *T { return &v }

func secs(s string) *intstr.IntOrString { v := intstr.Parse(s); return &v }

func builtinMetric(name string) v1alpha1.Metric {
	return v1alpha1.Metric{
		Name:     name,
		Provider: v1alpha1.MetricProvider{Builtin: &v1alpha1.BuiltinMetric{Metric: "error-rate"}},
	}
}

func template(name string, args []v1alpha1.Argument, metrics ...v1alpha1.Metric) map[string]*v1alpha1.AnalysisTemplate {
	return map[string]*v1alpha1.AnalysisTemplate{name: {
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       v1alpha1.AnalysisTemplateSpec{Metrics: metrics, Args: args},
	}}
}

func newRun(args ...v1alpha1.AnalysisRunArgument) *v1alpha1.AnalysisRunStatus {
	return &v1alpha1.AnalysisRunStatus{
		Name:             "step-2-1",
		Kind:             v1alpha1.AnalysisKindStep,
		Revision:         2,
		BaselineRevision: 1,
		Spec: v1alpha1.RolloutAnalysis{
			Templates: []v1alpha1.AnalysisTemplateRef{{TemplateName: "t"}},
			Args:      args,
		},
		StartedAt: metav1.NewTime(t0),
		Phase:     v1alpha1.AnalysisPending,
	}
}

func quietRunner(providers map[string]Provider) *Runner {
	return &Runner{Providers: providers, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
}

// drive steps the run at each time it asks for until it completes or maxSteps is reached.
func drive(t *testing.T, r *Runner, run *v1alpha1.AnalysisRunStatus, templates map[string]*v1alpha1.AnalysisTemplate, maxSteps int) {
	t.Helper()
	now := run.StartedAt.Time
	for range maxSteps {
		next := r.Step(context.Background(), now, "chat-api", run, templates)
		if next.IsZero() {
			if !run.Phase.Completed() {
				t.Fatalf("Step returned zero time with run phase %s", run.Phase)
			}
			return
		}
		if run.Phase.Completed() {
			t.Fatalf("run is %s but Step returned next=%v", run.Phase, next)
		}
		if next.Before(now) {
			t.Fatalf("next %v is before now %v", next, now)
		}
		now = next
	}
}

func measurementTimes(res *v1alpha1.MetricResult) []time.Duration {
	var out []time.Duration
	for _, m := range res.Measurements {
		out = append(out, m.StartedAt.Sub(t0))
	}
	return out
}

func TestRunnerPhases(t *testing.T) {
	type want struct {
		phase   v1alpha1.AnalysisPhase
		message string // substring of run.Message
		calls   int
		// metric counters of the first metric
		count, successful, failed, inconclusive, errs int32
		times                                         []time.Duration // measurement times of the first metric
	}
	interval := func(m v1alpha1.Metric, iv string, count int32) v1alpha1.Metric {
		m.Interval = secs(iv)
		if count > 0 {
			m.Count = ptr(count)
		}
		return m
	}
	withConds := func(m v1alpha1.Metric, success, failure string) v1alpha1.Metric {
		m.SuccessCondition, m.FailureCondition = success, failure
		return m
	}
	s := time.Second

	tests := []struct {
		name    string
		metrics []v1alpha1.Metric
		args    []v1alpha1.Argument
		runArgs []v1alpha1.AnalysisRunArgument
		script  []outcome
		want    want
	}{
		{
			name:    "success after count",
			metrics: []v1alpha1.Metric{withConds(interval(builtinMetric("error-rate"), "10s", 3), "result < 0.01", "")},
			script:  []outcome{val(0.001)},
			want: want{phase: v1alpha1.AnalysisSuccessful, message: "1 of 1 metrics successful", calls: 3,
				count: 3, successful: 3, times: []time.Duration{0, 10 * s, 20 * s}},
		},
		{
			name:    "no interval measures once",
			metrics: []v1alpha1.Metric{withConds(builtinMetric("error-rate"), "result < 0.01", "")},
			script:  []outcome{val(0.001)},
			want:    want{phase: v1alpha1.AnalysisSuccessful, calls: 1, count: 1, successful: 1, times: []time.Duration{0}},
		},
		{
			name: "fails when failures exceed failureLimit",
			metrics: []v1alpha1.Metric{func() v1alpha1.Metric {
				m := withConds(interval(builtinMetric("error-rate"), "10s", 5), "result < 0.01", "")
				m.FailureLimit = 1
				return m
			}()},
			script: []outcome{{v: Value{Result: 0.31, Text: "0.31 (124/400 5xx)"}}, val(0.001), {v: Value{Result: 0.31, Text: "0.31 (124/400 5xx)"}}},
			want: want{phase: v1alpha1.AnalysisFailed,
				message: `metric "error-rate" failed: 2 of 3 measurements failed (limit 1); last: result=0.31 (124/400 5xx) with "result < 0.01"`,
				calls:   3, count: 3, successful: 1, failed: 2, times: []time.Duration{0, 10 * s, 20 * s}},
		},
		{
			name: "failures within failureLimit still succeed",
			metrics: []v1alpha1.Metric{func() v1alpha1.Metric {
				m := withConds(interval(builtinMetric("error-rate"), "10s", 3), "result < 0.01", "")
				m.FailureLimit = 1
				return m
			}()},
			script: []outcome{val(0.5), val(0.001)},
			want:   want{phase: v1alpha1.AnalysisSuccessful, calls: 3, count: 3, successful: 2, failed: 1},
		},
		{
			name:    "only failureCondition: false is success",
			metrics: []v1alpha1.Metric{withConds(interval(builtinMetric("error-rate"), "10s", 2), "", "result > 0.1")},
			script:  []outcome{val(0.05)},
			want:    want{phase: v1alpha1.AnalysisSuccessful, calls: 2, count: 2, successful: 2},
		},
		{
			name:    "only failureCondition: true is failure",
			metrics: []v1alpha1.Metric{withConds(interval(builtinMetric("error-rate"), "10s", 2), "", "result > 0.1")},
			script:  []outcome{val(0.2)},
			want: want{phase: v1alpha1.AnalysisFailed, message: `last: result=0.2 with failureCondition "result > 0.1"`,
				calls: 1, count: 1, failed: 1},
		},
		{
			name:    "provider inconclusive",
			metrics: []v1alpha1.Metric{withConds(interval(builtinMetric("error-rate"), "10s", 3), "result < 0.01", "")},
			script:  []outcome{val(0.001), inconclusive("only 3 requests (min 20)")},
			want: want{phase: v1alpha1.AnalysisInconclusive,
				message: `metric "error-rate" inconclusive: 1 of 2 measurements inconclusive (limit 0); last: inconclusive: only 3 requests (min 20)`,
				calls:   2, count: 2, successful: 1, inconclusive: 1},
		},
		{
			name: "inconclusive within limit",
			metrics: []v1alpha1.Metric{func() v1alpha1.Metric {
				m := withConds(interval(builtinMetric("error-rate"), "10s", 3), "result < 0.01", "")
				m.InconclusiveLimit = 2
				return m
			}()},
			script: []outcome{inconclusive("only 0 requests (min 1)"), inconclusive("only 0 requests (min 1)"), val(0)},
			want:   want{phase: v1alpha1.AnalysisSuccessful, calls: 3, count: 3, successful: 1, inconclusive: 2},
		},
		{
			name: "inconclusivePolicy Fail: no data fails the metric",
			metrics: []v1alpha1.Metric{func() v1alpha1.Metric {
				m := withConds(interval(builtinMetric("error-rate"), "10s", 3), "result < 0.01", "")
				m.InconclusivePolicy = v1alpha1.InconclusiveFail
				return m
			}()},
			script: []outcome{val(0.001), inconclusive("no data: the query returned no series")},
			want: want{phase: v1alpha1.AnalysisFailed,
				message: `metric "error-rate" failed: 1 of 2 measurements inconclusive (limit 0, inconclusivePolicy Fail); last: inconclusive: no data: the query returned no series`,
				calls:   2, count: 2, successful: 1, inconclusive: 1},
		},
		{
			name: "inconclusivePolicy Fail within inconclusiveLimit",
			metrics: []v1alpha1.Metric{func() v1alpha1.Metric {
				m := withConds(interval(builtinMetric("error-rate"), "10s", 2), "result < 0.01", "")
				m.InconclusivePolicy, m.InconclusiveLimit = v1alpha1.InconclusiveFail, 1
				return m
			}()},
			script: []outcome{inconclusive("no data"), val(0.001)},
			want:   want{phase: v1alpha1.AnalysisSuccessful, calls: 2, count: 2, successful: 1, inconclusive: 1},
		},
		{
			name: "inconclusivePolicy Ignore: no data neither pauses nor fails",
			metrics: []v1alpha1.Metric{func() v1alpha1.Metric {
				m := withConds(interval(builtinMetric("error-rate"), "10s", 3), "result < 0.01", "")
				m.InconclusivePolicy = v1alpha1.InconclusiveIgnore
				return m
			}()},
			script: []outcome{inconclusive("no data"), inconclusive("no data"), val(0.001)},
			want:   want{phase: v1alpha1.AnalysisSuccessful, message: "1 of 1 metrics successful", calls: 3, count: 3, successful: 1, inconclusive: 2},
		},
		{
			name: "inconclusivePolicy Ignore still fails on failures",
			metrics: []v1alpha1.Metric{func() v1alpha1.Metric {
				m := withConds(interval(builtinMetric("error-rate"), "10s", 3), "result < 0.01", "")
				m.InconclusivePolicy = v1alpha1.InconclusiveIgnore
				return m
			}()},
			script: []outcome{inconclusive("no data"), val(0.5)},
			want:   want{phase: v1alpha1.AnalysisFailed, message: "1 of 2 measurements failed (limit 0)", calls: 2, count: 2, failed: 1, inconclusive: 1},
		},
		{
			name: "inconclusivePolicy Pause is the default's behaviour",
			metrics: []v1alpha1.Metric{func() v1alpha1.Metric {
				m := withConds(builtinMetric("error-rate"), "result < 0.01", "")
				m.InconclusivePolicy = v1alpha1.InconclusivePause
				return m
			}()},
			script: []outcome{inconclusive("no data")},
			want:   want{phase: v1alpha1.AnalysisInconclusive, message: "1 of 1 measurements inconclusive (limit 0); last: inconclusive: no data", calls: 1, count: 1, inconclusive: 1},
		},
		{
			name:    "neither condition holds: inconclusive",
			metrics: []v1alpha1.Metric{withConds(builtinMetric("error-rate"), "result < 0.01", "result > 0.1")},
			script:  []outcome{val(0.05)},
			want:    want{phase: v1alpha1.AnalysisInconclusive, message: "with neither", calls: 1, count: 1, inconclusive: 1},
		},
		{
			name: "consecutive errors end as Error, retried every 10s",
			metrics: []v1alpha1.Metric{func() v1alpha1.Metric {
				m := withConds(interval(builtinMetric("error-rate"), "1m", 3), "result < 0.01", "")
				m.ConsecutiveErrorLimit = ptr(int32(2))
				return m
			}()},
			script: []outcome{fail("source down")},
			want: want{phase: v1alpha1.AnalysisError,
				message: `metric "error-rate" errored: 3 consecutive errors (limit 2); last: source down`,
				calls:   3, errs: 3, times: []time.Duration{0, 10 * s, 20 * s}},
		},
		{
			name:    "default consecutiveErrorLimit is 4",
			metrics: []v1alpha1.Metric{withConds(interval(builtinMetric("error-rate"), "5s", 3), "result < 0.01", "")},
			script:  []outcome{fail("down")},
			want: want{phase: v1alpha1.AnalysisError, calls: 5, errs: 5,
				times: []time.Duration{0, 5 * s, 10 * s, 15 * s, 20 * s}},
		},
		{
			name: "errors reset on a good measurement and do not count",
			metrics: []v1alpha1.Metric{func() v1alpha1.Metric {
				m := withConds(interval(builtinMetric("error-rate"), "1m", 2), "result < 0.01", "")
				m.ConsecutiveErrorLimit = ptr(int32(1))
				return m
			}()},
			script: []outcome{fail("down"), val(0), fail("down"), val(0)},
			want: want{phase: v1alpha1.AnalysisSuccessful, calls: 4, count: 2, successful: 2, errs: 2,
				// error at 0 → retry at 10s (ok) → next slot 1m10s? no: due = max(0+1m, 10s+1m) = 70s
				times: []time.Duration{0, 10 * s, 70 * s, 80 * s}},
		},
		{
			name: "dry-run failure does not decide",
			metrics: []v1alpha1.Metric{
				withConds(interval(builtinMetric("error-rate"), "10s", 2), "result < 0.01", ""),
				func() v1alpha1.Metric {
					m := withConds(interval(builtinMetric("latency"), "10s", 2), "result < 0.0001", "")
					m.DryRun = true
					return m
				}(),
			},
			script: []outcome{val(0.001)},
			want: want{phase: v1alpha1.AnalysisSuccessful, message: `1 of 1 metrics successful; dry-run metric "latency" failed`,
				calls: 3, count: 2, successful: 2},
		},
		{
			name: "only dry-run metrics: successful once complete",
			metrics: []v1alpha1.Metric{func() v1alpha1.Metric {
				m := withConds(interval(builtinMetric("latency"), "10s", 2), "result < 0.0001", "")
				m.DryRun = true
				return m
			}()},
			script: []outcome{val(0.5)},
			want:   want{phase: v1alpha1.AnalysisSuccessful, calls: 1, count: 1, failed: 1},
		},
		{
			name:    "unbounded metric fails when failures exceed the limit",
			metrics: []v1alpha1.Metric{withConds(interval(builtinMetric("error-rate"), "10s", 0), "result < 0.01", "")},
			script:  []outcome{val(0), val(0), val(0), val(0), val(0.5)},
			want:    want{phase: v1alpha1.AnalysisFailed, calls: 5, count: 5, successful: 4, failed: 1},
		},
		{
			name:    "baseline comparison passes",
			metrics: []v1alpha1.Metric{withConds(interval(builtinMetric("error-rate"), "10s", 2), "result <= baseline * 1.5 + 0.01", "")},
			script:  []outcome{valBase(0.02, 0.01)},
			want:    want{phase: v1alpha1.AnalysisSuccessful, calls: 2, count: 2, successful: 2},
		},
		{
			name:    "baseline comparison fails",
			metrics: []v1alpha1.Metric{withConds(interval(builtinMetric("error-rate"), "10s", 2), "result <= baseline * 1.5 + 0.01", "")},
			script:  []outcome{valBase(0.05, 0.01)},
			want: want{phase: v1alpha1.AnalysisFailed,
				message: `last: result=0.05 baseline=0.01 with "result <= baseline * 1.5 + 0.01"`, calls: 1, count: 1, failed: 1},
		},
		{
			name:    "no baseline value: conditions see 0",
			metrics: []v1alpha1.Metric{withConds(builtinMetric("error-rate"), "baseline == 0.0", "")},
			script:  []outcome{val(0.5)},
			want:    want{phase: v1alpha1.AnalysisSuccessful, calls: 1, count: 1, successful: 1},
		},
		{
			name:    "args in conditions, defaults merged with run args",
			metrics: []v1alpha1.Metric{withConds(builtinMetric("error-rate"), `result < float(args.threshold) && args.service == "chat"`, "")},
			args:    []v1alpha1.Argument{{Name: "threshold", Value: ptr("0.001")}, {Name: "service"}},
			runArgs: []v1alpha1.AnalysisRunArgument{{Name: "threshold", Value: "0.1"}, {Name: "service", Value: "chat"}},
			script:  []outcome{val(0.05)},
			want:    want{phase: v1alpha1.AnalysisSuccessful, calls: 1, count: 1, successful: 1},
		},
		{
			name:    "missing required arg",
			metrics: []v1alpha1.Metric{withConds(builtinMetric("error-rate"), "result < 0.01", "")},
			args:    []v1alpha1.Argument{{Name: "service"}},
			script:  []outcome{val(0)},
			want:    want{phase: v1alpha1.AnalysisError, message: `missing value for argument "service" of template "t"`},
		},
		{
			name:    "condition evaluation error is an Error measurement",
			metrics: []v1alpha1.Metric{withConds(builtinMetric("error-rate"), `result < float(args.threshold)`, "")},
			args:    []v1alpha1.Argument{{Name: "threshold", Value: ptr("not-a-number")}},
			script:  []outcome{val(0)},
			want:    want{phase: v1alpha1.AnalysisError, message: "last: result=0.0: successCondition: evaluate", calls: 5, errs: 5},
		},
		{
			name:    "condition that does not compile",
			metrics: []v1alpha1.Metric{withConds(builtinMetric("error-rate"), "result <", "")},
			script:  []outcome{val(0)},
			want:    want{phase: v1alpha1.AnalysisError, message: `metric "error-rate" errored: successCondition "result <": compile:`},
		},
		{
			name:    "condition that is not a bool",
			metrics: []v1alpha1.Metric{withConds(builtinMetric("error-rate"), "result + 1", "")},
			script:  []outcome{val(0)},
			want:    want{phase: v1alpha1.AnalysisError, message: `successCondition "result + 1": compile:`},
		},
		{
			name: "no provider set",
			metrics: []v1alpha1.Metric{func() v1alpha1.Metric {
				m := withConds(builtinMetric("error-rate"), "result < 0.01", "")
				m.Provider = v1alpha1.MetricProvider{}
				return m
			}()},
			script: []outcome{val(0)},
			want:   want{phase: v1alpha1.AnalysisError, message: `metric "error-rate" errored: no provider set`},
		},
		{
			name:    "bad interval",
			metrics: []v1alpha1.Metric{withConds(interval(builtinMetric("error-rate"), "ten", 2), "result < 0.01", "")},
			script:  []outcome{val(0)},
			want:    want{phase: v1alpha1.AnalysisError, message: `metric "error-rate" errored: interval: duration "ten" is not a Go duration`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fp := &fakeProvider{script: tt.script}
			r := quietRunner(map[string]Provider{"builtin": fp})
			run := newRun(tt.runArgs...)
			// These cases judge each first look; TestRunnerWaitsForData covers the wait.
			for i := range tt.metrics {
				if tt.metrics[i].WaitForData == nil {
					tt.metrics[i].WaitForData = secs("0")
				}
			}
			templates := template("t", tt.args, tt.metrics...)
			drive(t, r, run, templates, 100)
			if run.Phase != tt.want.phase {
				t.Fatalf("phase = %s (%q), want %s", run.Phase, run.Message, tt.want.phase)
			}
			if !strings.Contains(run.Message, tt.want.message) {
				t.Errorf("message = %q, want it to contain %q", run.Message, tt.want.message)
			}
			if fp.calls != tt.want.calls {
				t.Errorf("provider calls = %d, want %d", fp.calls, tt.want.calls)
			}
			if tt.want.calls == 0 {
				return
			}
			res := run.Metrics[0]
			got := [5]int32{res.Count, res.Successful, res.Failed, res.Inconclusive, res.Error}
			wantC := [5]int32{tt.want.count, tt.want.successful, tt.want.failed, tt.want.inconclusive, tt.want.errs}
			if got != wantC {
				t.Errorf("count/successful/failed/inconclusive/error = %v, want %v", got, wantC)
			}
			if tt.want.times != nil {
				if gotT := measurementTimes(&res); !slices.Equal(gotT, tt.want.times) {
					t.Errorf("measurement times = %v, want %v", gotT, tt.want.times)
				}
			}
		})
	}
}

func TestRunnerUnknownProvider(t *testing.T) {
	m := builtinMetric("error-rate")
	m.SuccessCondition = "result < 0.01"
	run := newRun()
	r := quietRunner(nil)
	next := r.Step(context.Background(), t0, "chat-api", run, template("t", nil, m))
	if !next.IsZero() {
		t.Errorf("next = %v, want zero", next)
	}
	if run.Phase != v1alpha1.AnalysisError || run.Message != `metric "error-rate" errored: provider "builtin" is not available` {
		t.Errorf("run = %s %q", run.Phase, run.Message)
	}
	if run.Metrics[0].Phase != v1alpha1.AnalysisError {
		t.Errorf("metric phase = %s", run.Metrics[0].Phase)
	}
}

func TestRunnerMissingTemplate(t *testing.T) {
	run := newRun()
	next := quietRunner(nil).Step(context.Background(), t0, "chat-api", run, nil)
	if !next.IsZero() || run.Phase != v1alpha1.AnalysisError || run.Message != `analysis template "t" not found` {
		t.Errorf("next=%v run = %s %q", next, run.Phase, run.Message)
	}
}

func TestRunnerTargetAndCompletedRun(t *testing.T) {
	m := builtinMetric("error-rate")
	fp := &fakeProvider{script: []outcome{val(0)}}
	r := quietRunner(map[string]Provider{"builtin": fp})
	run := newRun(v1alpha1.AnalysisRunArgument{Name: "a", Value: "b"})
	tpl := template("t", nil, m)
	r.Step(context.Background(), t0.Add(time.Second), "chat-api", run, tpl)
	if run.Phase != v1alpha1.AnalysisSuccessful {
		t.Fatalf("phase = %s (%q)", run.Phase, run.Message)
	}
	want := Target{Rollout: "chat-api", Revision: 2, Baseline: 1, Since: t0, Args: map[string]string{"a": "b"}}
	got := fp.targets[0]
	if got.Rollout != want.Rollout || got.Revision != want.Revision || got.Baseline != want.Baseline || !got.Since.Equal(want.Since) || got.Args["a"] != "b" || got.Role != "canary" {
		t.Errorf("target = %+v, want %+v", got, want)
	}
	// A completed run is left alone.
	if next := r.Step(context.Background(), t0.Add(time.Hour), "chat-api", run, tpl); !next.IsZero() || fp.calls != 1 {
		t.Errorf("completed run: next=%v calls=%d", next, fp.calls)
	}
}

// TestRunnerSchedule checks initialDelay and interval, a restart from the persisted status,
// and the catch-up after the runner was down.
func TestRunnerSchedule(t *testing.T) {
	m := builtinMetric("error-rate")
	m.InitialDelay = secs("30s")
	m.Interval = secs("10")
	m.Count = ptr(int32(4))
	m.SuccessCondition = "result < 0.01"
	tpl := template("t", nil, m)
	fp := &fakeProvider{script: []outcome{val(0)}}
	r := quietRunner(map[string]Provider{"builtin": fp})
	run := newRun()
	ctx := context.Background()

	steps := []struct {
		at    time.Duration
		next  time.Duration // zero: the run is complete
		calls int
	}{
		{at: 0, next: 30 * time.Second, calls: 0},
		{at: 29 * time.Second, next: 30 * time.Second, calls: 0},
		{at: 30 * time.Second, next: 40 * time.Second, calls: 1},
		{at: 35 * time.Second, next: 40 * time.Second, calls: 1},
		{at: 40 * time.Second, next: 50 * time.Second, calls: 2},
	}
	for _, s := range steps {
		next := r.Step(ctx, t0.Add(s.at), "chat-api", run, tpl)
		if next.Sub(t0) != s.next || fp.calls != s.calls {
			t.Fatalf("at %v: next = %v calls = %d, want %v and %d", s.at, next.Sub(t0), fp.calls, s.next, s.calls)
		}
	}
	if run.Phase != v1alpha1.AnalysisRunning || run.Metrics[0].Phase != v1alpha1.AnalysisRunning {
		t.Fatalf("phase = %s / %s, want Running", run.Phase, run.Metrics[0].Phase)
	}

	// Crash: the caller persisted the status; a new runner picks it up 3 minutes later.
	data, err := json.Marshal(run)
	if err != nil {
		t.Fatal(err)
	}
	var restored v1alpha1.AnalysisRunStatus
	if err := json.Unmarshal(data, &restored); err != nil {
		t.Fatal(err)
	}
	r2 := quietRunner(map[string]Provider{"builtin": fp})
	late := 220 * time.Second
	next := r2.Step(ctx, t0.Add(late), "chat-api", &restored, tpl)
	// Two measurements were overdue (at 50s and 60s): only one is taken, and the next one
	// waits an interval rather than measuring the same moment again.
	if fp.calls != 3 || next.Sub(t0) != late+10*time.Second {
		t.Fatalf("after restart: calls = %d next = %v, want 3 and %v", fp.calls, next.Sub(t0), late+10*time.Second)
	}
	next = r2.Step(ctx, next, "chat-api", &restored, tpl)
	if !next.IsZero() || restored.Phase != v1alpha1.AnalysisSuccessful || restored.Metrics[0].Count != 4 {
		t.Fatalf("final: next=%v phase=%s count=%d", next, restored.Phase, restored.Metrics[0].Count)
	}
}

// TestRunnerWaitsForData: a measurement the provider cannot judge for lack of data (too few
// requests at a 5% step) is taken again, every second, until waitForData past its due time,
// without counting; the first one with data counts as measurement 1. Past the bound the
// inconclusive one counts, and the run ends Inconclusive as before.
func TestRunnerWaitsForData(t *testing.T) {
	m := builtinMetric("error-rate")
	m.InitialDelay = secs("2s")
	m.Interval = secs("2s")
	m.Count = ptr(int32(2))
	m.SuccessCondition = "result < 0.01"
	few := inconclusive("only 3 requests (min 5)")

	t.Run("data comes within the bound", func(t *testing.T) {
		fp := &fakeProvider{script: []outcome{few, few, few, val(0)}}
		r := quietRunner(map[string]Provider{"builtin": fp})
		run := newRun()
		drive(t, r, run, template("t", nil, m), 100)
		res := run.Metrics[0]
		if run.Phase != v1alpha1.AnalysisSuccessful {
			t.Fatalf("phase = %s (%s), want Successful", run.Phase, run.Message)
		}
		if res.Count != 2 || res.Inconclusive != 0 || res.Successful != 2 || fp.calls != 5 {
			t.Fatalf("count/inconclusive/successful/calls = %d/%d/%d/%d, want 2/0/2/5", res.Count, res.Inconclusive, res.Successful, fp.calls)
		}
		// Retried every second from the due time (2s); the second measurement an interval
		// after the first that counted.
		want := []time.Duration{2 * time.Second, 3 * time.Second, 4 * time.Second, 5 * time.Second, 7 * time.Second}
		if got := measurementTimes(&res); !slices.Equal(got, want) {
			t.Fatalf("measurement times = %v, want %v", got, want)
		}
		if res.Measurements[0].Phase != v1alpha1.AnalysisPending || !strings.Contains(res.Measurements[0].Message, "waiting for data") {
			t.Fatalf("first look = %s %q, want Pending waiting for data", res.Measurements[0].Phase, res.Measurements[0].Message)
		}
	})

	t.Run("no data within the bound", func(t *testing.T) {
		m := m
		m.WaitForData = secs("5s")
		fp := &fakeProvider{script: []outcome{few}}
		r := quietRunner(map[string]Provider{"builtin": fp})
		run := newRun()
		ctx := context.Background()
		now := t0
		for range 100 {
			next := r.Step(ctx, now, "chat-api", run, template("t", nil, m))
			if next.IsZero() {
				break
			}
			now = next
		}
		if run.Phase != v1alpha1.AnalysisInconclusive {
			t.Fatalf("phase = %s (%s), want Inconclusive", run.Phase, run.Message)
		}
		// Due at 2s, waited until 7s: looks at 2..6 wait, the one at 7s counts.
		if now.Sub(t0) != 7*time.Second || fp.calls != 6 || run.Metrics[0].Inconclusive != 1 {
			t.Fatalf("ended at %v after %d calls with %d inconclusive, want 7s, 6, 1", now.Sub(t0), fp.calls, run.Metrics[0].Inconclusive)
		}
	})
}

func TestRunnerKeepsLastMeasurements(t *testing.T) {
	m := builtinMetric("error-rate")
	m.Interval = secs("1s")
	m.Count = ptr(int32(25))
	fp := &fakeProvider{script: []outcome{val(0)}}
	r := quietRunner(map[string]Provider{"builtin": fp})
	run := newRun()
	drive(t, r, run, template("t", nil, m), 100)
	res := run.Metrics[0]
	if res.Count != 25 || len(res.Measurements) != keepMeasurements {
		t.Fatalf("count=%d kept=%d", res.Count, len(res.Measurements))
	}
	if last := res.Measurements[keepMeasurements-1].StartedAt.Sub(t0); last != 24*time.Second {
		t.Errorf("newest measurement at %v, want 24s", last)
	}
}

func TestRunnerCancelledRecordsNothing(t *testing.T) {
	m := builtinMetric("error-rate")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	fp := &fakeProvider{script: []outcome{fail("context canceled")}}
	r := quietRunner(map[string]Provider{"builtin": fp})
	run := newRun()
	r.Step(ctx, t0, "chat-api", run, template("t", nil, m))
	if fp.calls != 0 || len(run.Metrics) != 1 || run.Metrics[0].Error != 0 {
		t.Errorf("calls=%d metrics=%+v", fp.calls, run.Metrics)
	}
}

func TestDuration(t *testing.T) {
	tests := []struct {
		in      *intstr.IntOrString
		want    time.Duration
		wantErr bool
	}{
		{nil, 0, false},
		{ptr(intstr.FromInt32(30)), 30 * time.Second, false},
		{ptr(intstr.FromString("30")), 30 * time.Second, false},
		{ptr(intstr.FromString("1m30s")), 90 * time.Second, false},
		{ptr(intstr.FromString("soon")), 0, true},
		{ptr(intstr.FromString("-5s")), 0, true},
	}
	for _, tt := range tests {
		got, err := Duration(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("Duration(%v) = %v, %v; want %v (err %v)", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}
