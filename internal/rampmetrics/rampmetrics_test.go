package rampmetrics

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/analysis/judge"
	"ramp.dev/ramp/internal/analysis/judgerun"
	"ramp.dev/ramp/internal/spec"
)

func ptr[T any](v T) *T { return &v }

// canaryAtStep2 is a canary at step 2 of 3 with 20% of the traffic observed on revision 2
// (25% set), a step analysis run and a judge run.
func canaryAtStep2() v1alpha1.Rollout {
	return v1alpha1.Rollout{
		ObjectMeta: metav1.ObjectMeta{Name: "chat-api", Namespace: "shop"},
		Spec: v1alpha1.RolloutSpec{Strategy: v1alpha1.Strategy{Canary: &v1alpha1.CanaryStrategy{
			Steps: []v1alpha1.CanaryStep{{SetWeight: ptr(int32(25))}, {Pause: &v1alpha1.RolloutPause{}}, {SetWeight: ptr(int32(50))}},
		}}},
		Status: v1alpha1.RolloutStatus{
			Phase: v1alpha1.PhasePaused, CurrentRevision: 2, StableRevision: 1, CanaryRevision: 2,
			CurrentStepIndex: ptr(int32(1)), Step: "2/3", CanaryWeight: 25, ObservedWeight: ptr(int32(20)),
			Revisions: []v1alpha1.RevisionStatus{
				{Revision: 1, Role: v1alpha1.RoleStable, Weight: 80, Desired: 4, Ready: 4, Available: 4},
				{Revision: 2, Role: v1alpha1.RoleCanary, Weight: 20, Desired: 1, Ready: 1, Available: 0},
			},
			Analysis: []v1alpha1.AnalysisRunStatus{{
				Name: "step-2-1", Kind: v1alpha1.AnalysisKindStep, Revision: 2, BaselineRevision: 1, Phase: v1alpha1.AnalysisRunning,
				Metrics: []v1alpha1.MetricResult{{Name: "error-rate", Phase: v1alpha1.AnalysisRunning, Count: 3, Successful: 2, Inconclusive: 1,
					Measurements: []v1alpha1.Measurement{{Value: "0.5"}, {Value: "0.012"}}}},
			}},
		},
	}
}

func source(rs ...v1alpha1.Rollout) Source {
	return func(context.Context) ([]v1alpha1.Rollout, error) { return rs, nil }
}

func TestCollectorRolloutSeries(t *testing.T) {
	c := NewCollector(source(canaryAtStep2()), nil)
	want := `
# HELP ramp_rollout_info Always 1: the rollout's strategy (rollingUpdate, canary, blueGreen) and its current revision (the one of the current template).
# TYPE ramp_rollout_info gauge
ramp_rollout_info{namespace="shop",revision="2",rollout="chat-api",strategy="canary"} 1
# HELP ramp_rollout_phase 1 for the rollout's current phase (Progressing, Paused, Healthy, Degraded), 0 for the others.
# TYPE ramp_rollout_phase gauge
ramp_rollout_phase{namespace="shop",phase="Degraded",rollout="chat-api"} 0
ramp_rollout_phase{namespace="shop",phase="Healthy",rollout="chat-api"} 0
ramp_rollout_phase{namespace="shop",phase="Paused",rollout="chat-api"} 1
ramp_rollout_phase{namespace="shop",phase="Progressing",rollout="chat-api"} 0
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), "ramp_rollout_info", "ramp_rollout_phase"); err != nil {
		t.Error(err)
	}
	for _, tc := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"ramp_rollout_step", nil, 2},
		{"ramp_rollout_steps", nil, 3},
		{"ramp_rollout_canary_weight", nil, 25},
		{"ramp_rollout_aborted", nil, 0},
		// The real weights of status.revisions, not the 25% set.
		{"ramp_rollout_weight", map[string]string{"revision": "2", "role": "canary"}, 20},
		{"ramp_rollout_weight", map[string]string{"revision": "1", "role": "stable"}, 80},
		{"ramp_rollout_replicas", map[string]string{"revision": "1", "state": "desired"}, 4},
		{"ramp_rollout_replicas", map[string]string{"revision": "2", "state": "ready"}, 1},
		{"ramp_rollout_replicas", map[string]string{"revision": "2", "state": "available"}, 0},
		{"ramp_analysis_run_info", map[string]string{"run": "step-2-1", "kind": "step", "revision": "2", "baseline_revision": "1"}, 1},
		{"ramp_analysis_run_phase", map[string]string{"run": "step-2-1", "phase": "Running"}, 1},
		{"ramp_analysis_run_phase", map[string]string{"run": "step-2-1", "phase": "Successful"}, 0},
		{"ramp_analysis_run_metric_measurements", map[string]string{"metric": "error-rate", "result": "successful"}, 2},
		{"ramp_analysis_run_metric_measurements", map[string]string{"metric": "error-rate", "result": "inconclusive"}, 1},
		{"ramp_analysis_run_metric_value", map[string]string{"metric": "error-rate"}, 0.012},
	} {
		got, err := value(c, tc.name, tc.labels)
		if err != nil {
			t.Errorf("%s%v: %v", tc.name, tc.labels, err)
		} else if got != tc.want {
			t.Errorf("%s%v = %v, want %v", tc.name, tc.labels, got, tc.want)
		}
	}
}

func TestCollectorRollingUpdateHasNoStep(t *testing.T) {
	r := v1alpha1.Rollout{ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec:   v1alpha1.RolloutSpec{Strategy: v1alpha1.Strategy{RollingUpdate: &v1alpha1.RollingUpdateStrategy{}}},
		Status: v1alpha1.RolloutStatus{Phase: v1alpha1.PhaseHealthy, Step: "-", CurrentRevision: 1}}
	c := NewCollector(source(r), nil)
	if n := testutil.CollectAndCount(c, "ramp_rollout_step", "ramp_rollout_steps"); n != 0 {
		t.Errorf("%d step series for a rolling update, want none", n)
	}
	if got, err := value(c, "ramp_rollout_info", map[string]string{"strategy": "rollingUpdate", "revision": "1", "namespace": ""}); err != nil || got != 1 {
		t.Errorf("ramp_rollout_info = %v, %v", got, err)
	}
}

// The judge's evidence is read back from the messages judgerun writes: the test builds them
// with judgerun itself, so that a change of their wording fails here.
func TestCollectorJudgeEvidence(t *testing.T) {
	run := v1alpha1.AnalysisRunStatus{Name: "judge-2", Kind: v1alpha1.AnalysisKindJudge, Revision: 2, BaselineRevision: 1,
		StartedAt: metav1.NewTime(time.Unix(1000, 0))}
	metrics := []judgerun.Metric{{Name: v1alpha1.JudgeErrorRate, Events: "errors"}, {Name: v1alpha1.JudgeLatency, Events: "requests slower than 812ms"}}
	jr := judgerun.New(&run, spec.JudgeSettings{Alpha: 0.01, MaxRatio: 1.5, MinErrors: 3}, metrics)
	judgerun.Start(&run)
	// error-rate: the canary fails 30% of its requests, stable 1%: worse. latency: equal,
	// undecided so far.
	errTest := judge.New(judge.Config{Alpha: 0.005, MaxRatio: 1.5, MinEvents: 3, BurstCap: judge.BurstCapFor(v1alpha1.JudgeErrorRate)})
	latTest := judge.New(judge.Config{Alpha: 0.005, MaxRatio: 1.5, MinEvents: 3, BurstCap: judge.BurstCapFor(v1alpha1.JudgeLatency)})
	for i := int64(0); i < 30; i++ {
		es := judge.Slice{CanaryTotal: 10, StableTotal: 100, CanaryEvents: 3, StableEvents: 1}
		ls := judge.Slice{CanaryTotal: 10, StableTotal: 100, CanaryEvents: i % 2, StableEvents: 5}
		jr.Add(v1alpha1.JudgeErrorRate, 1000+i, es)
		jr.Add(v1alpha1.JudgeLatency, 1000+i, ls)
		errTest.Add(es)
		latTest.Add(ls)
	}
	jr.Report(&run, nil)
	if run.Phase != v1alpha1.AnalysisFailed {
		t.Fatalf("judge run phase %s, want Failed: %s", run.Phase, run.Message)
	}
	er, lr := errTest.Result(), latTest.Result()
	if er.Verdict != judge.Worse || lr.Verdict != judge.Undecided {
		t.Fatalf("verdicts %v, %v: the test's data no longer makes error-rate worse and latency undecided", er.Verdict, lr.Verdict)
	}
	ro := canaryAtStep2()
	ro.Status.Analysis = []v1alpha1.AnalysisRunStatus{run}
	c := NewCollector(source(ro), nil)

	round := func(v float64) float64 { return math.Round(v*10) / 10 }
	for _, tc := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"ramp_analysis_run_phase", map[string]string{"run": "judge-2", "kind": "judge", "phase": "Failed"}, 1},
		{"ramp_judge_verdict", map[string]string{"metric": "error-rate", "verdict": "worse"}, 1},
		{"ramp_judge_verdict", map[string]string{"metric": "error-rate", "verdict": "undecided"}, 0},
		{"ramp_judge_verdict", map[string]string{"metric": "latency", "verdict": "undecided"}, 1},
		{"ramp_judge_verdict", map[string]string{"metric": "latency", "verdict": "worse"}, 0},
		{"ramp_judge_requests", map[string]string{"metric": "error-rate", "side": "canary", "revision": "2"}, 300},
		{"ramp_judge_requests", map[string]string{"metric": "error-rate", "side": "stable"}, 3000},
		{"ramp_judge_events", map[string]string{"metric": "error-rate", "side": "canary"}, 90},
		{"ramp_judge_events", map[string]string{"metric": "error-rate", "side": "stable"}, 30},
		{"ramp_judge_events", map[string]string{"metric": "latency", "side": "canary"}, 15},
		{"ramp_judge_ratio", map[string]string{"metric": "error-rate"}, er.Ratio()},
		{"ramp_judge_ratio", map[string]string{"metric": "latency"}, lr.Ratio()},
		{"ramp_judge_log_bayes_factor", map[string]string{"metric": "error-rate", "hypothesis": "worse"}, round(er.LogBFWorse)},
		{"ramp_judge_log_bayes_factor", map[string]string{"metric": "latency", "hypothesis": "worse"}, round(lr.LogBFWorse)},
		{"ramp_judge_log_bayes_factor", map[string]string{"metric": "latency", "hypothesis": "no_worse"}, round(lr.LogBFNoWorse)},
		{"ramp_judge_threshold", map[string]string{"metric": "latency"}, round(lr.Threshold)},
	} {
		got, err := value(c, tc.name, tc.labels)
		if err != nil {
			t.Errorf("%s%v: %v", tc.name, tc.labels, err)
		} else if math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("%s%v = %v, want %v", tc.name, tc.labels, got, tc.want)
		}
	}
	if t.Failed() {
		for _, m := range run.Metrics {
			t.Logf("%s: %s", m.Name, m.Message)
		}
	}
}

func TestParseJudgeMessageNoWorse(t *testing.T) {
	r := judge.Result{Verdict: judge.NoWorse, Sum: judge.Slice{CanaryTotal: 500, StableTotal: 5000, CanaryEvents: 0, StableEvents: 7},
		LogBFNoWorse: 5.4, Threshold: 4.6, Alpha: 0.01, MaxRatio: 1.5}
	e := parseJudgeMessage(r.Explain("latency over 120ms (stable's p95)", "requests slower than 120ms"), v1alpha1.AnalysisRunning)
	if e.verdict != "no_worse" || !e.hasCounts || e.canaryTotal != 500 || e.stableEvents != 7 || !e.hasNoWorse || e.logBFNoWorse != 5.4 || e.hasWorse || e.threshold != 4.6 {
		t.Errorf("parsed %+v", e)
	}
	if r := ratio(e); r != 0 {
		t.Errorf("ratio %v, want 0", r)
	}
}

func TestObserveReconcile(t *testing.T) {
	c := NewCollector(source(), nil)
	before := histCount(t, c, ModeLocal)
	ObserveReconcile(ModeLocal, 30*time.Millisecond)
	ObserveReconcile(ModeLocal, 2*time.Millisecond)
	if got := histCount(t, c, ModeLocal); got != before+2 {
		t.Errorf("ramp_reconcile_duration_seconds_count{mode=local} = %d, want %d", got, before+2)
	}
	// One registry takes the collector with the Go and process collectors beside it.
	reg := prometheus.NewRegistry()
	if err := reg.Register(c); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Gather(); err != nil {
		t.Fatal(err)
	}
}

func TestCollectorSourceError(t *testing.T) {
	c := NewCollector(func(context.Context) ([]v1alpha1.Rollout, error) { return nil, errors.New("store closed") }, nil)
	if n := testutil.CollectAndCount(c, "ramp_rollout_info"); n != 0 {
		t.Errorf("%d series when the source fails", n)
	}
}

func histCount(t *testing.T, c prometheus.Collector, mode string) uint64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "ramp_reconcile_duration_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "mode" && l.GetValue() == mode {
					return m.GetHistogram().GetSampleCount()
				}
			}
		}
	}
	return 0
}

// value returns the one series of name whose labels include labels.
func value(c prometheus.Collector, name string, labels map[string]string) (float64, error) {
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(c); err != nil {
		return 0, err
	}
	mfs, err := reg.Gather()
	if err != nil {
		return 0, err
	}
	var found []float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for k, v := range labels {
				if have[k] != v {
					continue next
				}
			}
			found = append(found, m.GetGauge().GetValue())
		}
	}
	if len(found) != 1 {
		return 0, fmt.Errorf("want one series, found %d", len(found))
	}
	return found[0], nil
}

// Feed registers one Collector per process; the Feeder started last is read until it stops.
func TestFeed(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	a := canaryAtStep2()
	b := canaryAtStep2()
	b.Name = "other"
	fa, err := Feed(reg, source(a), nil)
	if err != nil {
		t.Fatal(err)
	}
	fb, err := Feed(reg, source(b), nil)
	if err != nil {
		t.Fatalf("second Feed on the same registry: %v", err)
	}
	rollouts := func() string {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, mf := range mfs {
			if mf.GetName() == "ramp_rollout_info" {
				for _, m := range mf.GetMetric() {
					for _, l := range m.GetLabel() {
						if l.GetName() == "rollout" {
							names = append(names, l.GetValue())
						}
					}
				}
			}
		}
		return strings.Join(names, ",")
	}
	if got := rollouts(); got != "" {
		t.Errorf("before any Feeder runs: rollouts %q", got)
	}
	run := func(f *Feeder) (stop func()) {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { _ = f.Start(ctx); close(done) }()
		return func() { cancel(); <-done }
	}
	wait := func(want string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for rollouts() != want {
			if time.Now().After(deadline) {
				t.Fatalf("rollouts %q, want %q", rollouts(), want)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	stopA := run(fa)
	wait("chat-api")
	stopB := run(fb)
	wait("other")
	stopA() // not the one read: b stays
	wait("other")
	stopB()
	wait("")
	if fa.NeedLeaderElection() {
		t.Error("the Feeder waits for leader election: non-leaders would serve no rollout metrics")
	}
}
