// Package judgerun keeps one sequential judge run (spec.strategy.canary.judge) and writes its
// verdict into the run's status. Local mode feeds it from ramp's proxy, Kubernetes mode from
// the traffic router's Prometheus counters; both share the bookkeeping here: one test per
// metric over the whole canary, a second set since the running step analysis run began (for
// ending it early), and the phase, message and metrics of the judge's AnalysisRunStatus.
package judgerun

import (
	"fmt"
	"time"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/analysis/judge"
	"ramp.dev/ramp/internal/spec"
)

// Metric is one metric the judge compares.
type Metric struct {
	// Name names the metric in the status ("error-rate", "latency", a business metric's name).
	Name string
	// Events says what its events are, for explanations ("errors", "slow requests").
	Events string
	// BurstCap is the test's burst cap. Zero means judge.BurstCapFor(Name).
	BurstCap float64
	// MustSee makes a step end early only once this metric's step test has seen canary
	// answers (business metrics that could not be read must not end a step). False means a
	// metric without canary events counts as no worse.
	MustSee bool
}

// Run is one judge run's tests. Its zero value is not usable: call New.
type Run struct {
	name    string
	started time.Time
	metrics []Metric
	cfg     judge.Config
	// all are the tests over the whole canary; step the tests since stepFrom (Unix seconds),
	// when the step analysis run stepRun began.
	all, step map[string]*judge.Test
	stepRun   string
	stepFrom  int64
	// pending are the metrics' slices of evidence not final yet (SetPending).
	pending map[string][]judge.Slice
}

// New returns the tests of the judge run run, over metrics, with settings' alpha (split over
// the metrics, Bonferroni), maxRatio and minErrors.
func New(run *v1alpha1.AnalysisRunStatus, settings spec.JudgeSettings, metrics []Metric) *Run {
	r := &Run{name: run.Name, started: run.StartedAt.Time, metrics: metrics, cfg: judge.Config{
		Alpha:     settings.Alpha / float64(max(len(metrics), 1)),
		MaxRatio:  settings.MaxRatio,
		MinEvents: int64(settings.MinErrors),
	}}
	r.all = r.newTests()
	return r
}

func (r *Run) newTests() map[string]*judge.Test {
	m := make(map[string]*judge.Test, len(r.metrics))
	for _, mt := range r.metrics {
		c := r.cfg
		c.BurstCap = mt.BurstCap
		if c.BurstCap == 0 {
			c.BurstCap = judge.BurstCapFor(mt.Name)
		}
		m[mt.Name] = judge.New(c)
	}
	return m
}

// Of reports whether r holds the tests of run (same name and start): a run started again
// (retry) gets new tests.
func (r *Run) Of(run *v1alpha1.AnalysisRunStatus) bool {
	return r != nil && r.name == run.Name && r.started.Equal(run.StartedAt.Time)
}

// Name is the judge run's name.
func (r *Run) Name() string { return r.name }

// Start marks a new run Running.
func Start(run *v1alpha1.AnalysisRunStatus) {
	if run.Phase == "" || run.Phase == v1alpha1.AnalysisPending {
		run.Phase = v1alpha1.AnalysisRunning
		run.Message = "watching the canary against stable"
	}
}

// TrackStep follows the rollout's running step analysis run (from its status): "no worse"
// for ending it early is judged on the slices after it began. It returns the first Unix
// second that counts for it, zero when no step analysis runs.
func (r *Run) TrackStep(st *v1alpha1.RolloutStatus) int64 {
	var stepRun *v1alpha1.AnalysisRunStatus
	for i := range st.Analysis {
		if a := &st.Analysis[i]; a.Kind == v1alpha1.AnalysisKindStep && !a.Phase.Completed() {
			stepRun = a
			break
		}
	}
	switch {
	case stepRun == nil:
		r.stepRun, r.step, r.stepFrom = "", nil, 0
	case r.stepRun != stepRun.Name:
		r.stepRun, r.step, r.stepFrom = stepRun.Name, r.newTests(), stepRun.StartedAt.Unix()+1
	}
	return r.stepFrom
}

// Add feeds metric's slice that began at the Unix second from: to the whole-canary test, and
// to the step's when it began after the step analysis run.
func (r *Run) Add(metric string, from int64, s judge.Slice) {
	t := r.all[metric]
	if t == nil {
		return
	}
	t.Add(s)
	if r.step != nil && from >= r.stepFrom {
		r.step[metric].Add(s)
	}
}

// SetRecord makes metric's test one against a fixed record of the previous revision
// (judge.NewAgainstRecord), for the watch window after a promotion: the slices added after it
// carry the new stable's counts only. It reports whether it did: a test that has slices
// already keeps them.
func (r *Run) SetRecord(metric string, record judge.Slice) bool {
	t := r.all[metric]
	if t == nil || t.Result().Slices > 0 {
		return false
	}
	c := r.cfg
	c.BurstCap = judge.BurstCapFor(metric)
	for _, m := range r.metrics {
		if m.Name == metric && m.BurstCap != 0 {
			c.BurstCap = m.BurstCap
		}
	}
	r.all[metric] = judge.NewAgainstRecord(c, record)
	return true
}

// SetPending sets metric's pending slices, replacing the last ones: evidence that is not
// final yet, such as the requests in flight already slower than the threshold. Report weighs
// them with the final slices for a verdict of worse only: a hang fails the canary before its
// requests end, and pending slices never end a step early.
func (r *Run) SetPending(metric string, ss []judge.Slice) {
	if r.pending == nil {
		r.pending = map[string][]judge.Slice{}
	}
	r.pending[metric] = ss
}

// Describe gives a metric's label in verdicts ("latency over 120ms (stable's p95)") and a
// note appended to its status message; empty means its name and no note.
type Describe func(metric string) (label, note string)

// Report writes the verdict so far into run: each metric's result, Failed when a metric shows
// the canary worse, and NoWorseFor naming the running step analysis run once the canary is
// shown no worse since it began. describe may be nil.
func (r *Run) Report(run *v1alpha1.AnalysisRunStatus, describe Describe) {
	named := func(tests map[string]*judge.Test) ([]judge.Named, []string) {
		out := make([]judge.Named, 0, len(r.metrics))
		notes := make([]string, 0, len(r.metrics))
		for _, m := range r.metrics {
			label, note := m.Name, ""
			if describe != nil {
				if l, n := describe(m.Name); l != "" {
					label, note = l, n
				} else {
					note = n
				}
			}
			res := tests[m.Name].Result()
			if p := r.pending[m.Name]; res.Verdict != judge.Worse && len(p) > 0 {
				if with := tests[m.Name].With(p...); with.Verdict == judge.Worse {
					res = with
					var n int64
					for _, s := range p {
						n += s.CanaryEvents
					}
					label += fmt.Sprintf(", counting %d canary requests still in flight", n)
				}
			}
			out = append(out, judge.Named{Metric: label, Events: m.Events, Result: res})
			notes = append(notes, note)
		}
		return out, notes
	}
	all, notes := named(r.all)
	verdict, why := judge.Combine(all)
	run.Metrics = run.Metrics[:0]
	for i, n := range all {
		phase := v1alpha1.AnalysisRunning
		if n.Result.Verdict == judge.Worse {
			phase = v1alpha1.AnalysisFailed
		}
		run.Metrics = append(run.Metrics, v1alpha1.MetricResult{
			Name: r.metrics[i].Name, Phase: phase, Count: int32(n.Result.Slices), Message: n.Result.Explain(n.Metric, n.Events) + notes[i],
		})
	}
	run.NoWorseFor = ""
	if verdict == judge.Worse {
		run.Phase = v1alpha1.AnalysisFailed
		run.Message = why
		return
	}
	run.Message = "watching: " + why
	if r.step == nil {
		return
	}
	for _, m := range r.metrics {
		if m.MustSee && r.step[m.Name].Result().Sum.CanaryTotal == 0 {
			return
		}
	}
	step, _ := named(r.step)
	if v, why := judge.Combine(step); v == judge.NoWorse {
		run.NoWorseFor = r.stepRun
		run.Message = fmt.Sprintf("canary no worse than stable since %s began (%s): %s", r.stepRun, time.Unix(r.stepFrom, 0).UTC().Format(time.RFC3339), why)
	}
}

// Label is the usual label of a threshold metric: "latency over 220ms (stable's p95 +
// 100ms)"; floor is the judge's minLatencyIncrease.
func Label(metric string, threshold, floor time.Duration) string {
	if floor <= 0 {
		return fmt.Sprintf("%s over %s (stable's p95)", metric, threshold.Round(100*time.Microsecond))
	}
	return fmt.Sprintf("%s over %s (stable's p95 + %s)", metric, threshold.Round(100*time.Microsecond), floor)
}
