package local

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/analysis/judge"
	"ramp.dev/ramp/internal/proxy"
	"ramp.dev/ramp/internal/spec"
)

const (
	// thresholdLookback is how far before the judge run began stable's requests fix the
	// latency and TTFB thresholds.
	thresholdLookback = time.Minute
	// thresholdQuantile is the quantile of stable's latency (and TTFB) taken as threshold.
	thresholdQuantile = 0.95
	// thresholdMinRequests is how many stable requests are needed to fix a threshold. When
	// stable served fewer in the minute before the run began, the threshold is fixed as soon
	// as it has, and only later seconds are judged on it.
	thresholdMinRequests = 50
)

// judgeState is one judge run's tests, fed one whole second at a time from the proxy. It
// lives in memory: after a restart of ramp the judge starts again on new requests (the proxy's
// measurements start again too), which costs evidence but keeps the test valid.
type judgeState struct {
	run     string
	started time.Time
	// next is the next second (Unix) to feed.
	next int64
	// latency and TTFB thresholds (zero until fixed) and the first second judged on them.
	latThr, ttfbThr time.Duration
	thrFrom         int64
	// all are the tests over the whole canary; step are the tests since the running step
	// analysis run began (stepFrom), for ending it early.
	all, step map[string]*judge.Test
	stepRun   string
	stepFrom  int64
	// biz scrapes the business metrics; nil when there are none.
	biz *businessScraper
	// bizErrs are the failed scrapes of the last round, shown with the metrics.
	bizErrs []string
}

// metricEvents says what each judge metric counts, for explanations.
var metricEvents = map[string]string{
	v1alpha1.JudgeErrorRate: "errors",
	v1alpha1.JudgeLatency:   "slow requests",
	v1alpha1.JudgeTTFB:      "slow first bytes",
}

// stepJudge feeds the judge run the seconds completed since the last call (and the rounds of
// business-metric scrapes finished since then) and sets its phase, message and metrics:
// Failed when a metric shows the canary worse, and NoWorseFor when the canary is shown no
// worse since the running step analysis run began. c.mu is held; scrapes run off the loop.
func (c *Controller) stepJudge(ctx context.Context, now time.Time, r *v1alpha1.Rollout, run *v1alpha1.AnalysisRunStatus) {
	p := c.proxyOf(r.Name)
	if p == nil {
		return
	}
	settings := spec.Judge(r.Spec.Strategy.Canary)
	cfg := judge.Config{
		Alpha:     settings.Alpha / float64(max(len(settings.Metrics)+len(settings.Business), 1)), // Bonferroni over the metrics
		MaxRatio:  settings.MaxRatio,
		MinEvents: int64(settings.MinErrors),
	}
	newTests := func() map[string]*judge.Test {
		m := map[string]*judge.Test{}
		for _, name := range settings.Metrics {
			c := cfg
			c.BurstCap = judge.BurstCapFor(name)
			m[name] = judge.New(c)
		}
		for _, b := range settings.Business {
			c := cfg
			c.BurstCap = judge.BurstCapFor(b.Name)
			m[b.Name] = judge.New(c)
		}
		return m
	}
	if c.judges == nil {
		c.judges = map[string]*judgeState{}
	}
	st := c.judges[r.Name]
	if st == nil || st.run != run.Name || !st.started.Equal(run.StartedAt.Time) {
		if st != nil && st.biz != nil {
			st.biz.stop()
		}
		st = &judgeState{run: run.Name, started: run.StartedAt.Time, next: run.StartedAt.Unix(), all: newTests()}
		if len(settings.Business) > 0 {
			st.biz = newBusinessScraper(ctx, r.Name, run.Revision, run.BaselineRevision, run.StartedAt.Time, settings.Business)
		}
		c.judges[r.Name] = st
	}
	if run.Phase == "" || run.Phase == v1alpha1.AnalysisPending {
		run.Phase = v1alpha1.AnalysisRunning
		run.Message = "watching the canary against stable"
	}

	// Latency and TTFB thresholds: stable's p95 before the run began (or as soon as stable
	// has served enough), fixed before any second judged on them.
	if st.thrFrom == 0 && (slices.Contains(settings.Metrics, v1alpha1.JudgeLatency) || slices.Contains(settings.Metrics, v1alpha1.JudgeTTFB)) {
		s := p.Stats(run.BaselineRevision, run.StartedAt.Add(-thresholdLookback))
		if s.Latency.Count() >= thresholdMinRequests {
			st.latThr = proxy.RoundThreshold(s.Latency.Quantile(thresholdQuantile))
			st.ttfbThr = proxy.RoundThreshold(s.TTFB.Quantile(thresholdQuantile))
			st.thrFrom = now.Unix() + 1
		}
	}

	// The running step analysis run, if any: "no worse" is judged on the seconds after it began.
	var stepRun *v1alpha1.AnalysisRunStatus
	for i := range r.Status.Analysis {
		if a := &r.Status.Analysis[i]; a.Kind == v1alpha1.AnalysisKindStep && !a.Phase.Completed() {
			stepRun = a
			break
		}
	}
	if stepRun == nil {
		st.stepRun, st.step = "", nil
	} else if st.stepRun != stepRun.Name {
		st.stepRun, st.step, st.stepFrom = stepRun.Name, newTests(), stepRun.StartedAt.Unix()+1
	}

	last := now.Unix() - 1 // whole seconds only
	if last >= st.next {
		canary := p.Seconds(run.Revision, st.next, last, st.latThr, st.ttfbThr)
		stable := p.Seconds(run.BaselineRevision, st.next, last, st.latThr, st.ttfbThr)
		byUnix := map[int64]*[2]proxy.Second{}
		for _, s := range canary {
			byUnix[s.Unix] = &[2]proxy.Second{s}
		}
		for _, s := range stable {
			if p := byUnix[s.Unix]; p != nil {
				p[1] = s
			}
		}
		for sec := st.next; sec <= last; sec++ {
			p := byUnix[sec]
			if p == nil {
				continue // no canary request: nothing to judge
			}
			cs, ss := p[0], p[1]
			for name, t := range st.all {
				sl, ok := slice(name, cs, ss, sec >= st.thrFrom && st.thrFrom != 0)
				if !ok {
					continue
				}
				t.Add(sl)
				if st.step != nil && sec >= st.stepFrom {
					st.step[name].Add(sl)
				}
			}
		}
		st.next = last + 1
	}

	// Business metrics: one slice per finished round of scrapes, then the next round.
	if st.biz != nil {
		for _, round := range st.biz.take() {
			st.bizErrs = round.errs
			for _, b := range settings.Business {
				sl := round.slices[b.Name]
				st.all[b.Name].Add(sl)
				if st.step != nil && !round.from.IsZero() && round.from.Unix() >= st.stepFrom {
					st.step[b.Name].Add(sl)
				}
			}
		}
		st.biz.start(now, addresses{c}.Instances, c.kickLoop)
	}

	named := func(tests map[string]*judge.Test) []judge.Named {
		out := make([]judge.Named, 0, len(settings.Metrics))
		for _, name := range settings.Metrics {
			label := name
			if thr := st.latThr; name != v1alpha1.JudgeErrorRate && thr > 0 {
				if name == v1alpha1.JudgeTTFB {
					thr = st.ttfbThr
				}
				label = fmt.Sprintf("%s over %s (stable's p95)", name, thr.Round(100*time.Microsecond))
			}
			out = append(out, judge.Named{Metric: label, Events: metricEvents[name], Result: tests[name].Result()})
		}
		for _, b := range settings.Business {
			out = append(out, judge.Named{Metric: b.Name, Events: businessEvents(b), Result: tests[b.Name].Result()})
		}
		return out
	}
	all := named(st.all)
	verdict, why := judge.Combine(all)
	run.Metrics = run.Metrics[:0]
	for _, n := range all {
		phase := v1alpha1.AnalysisRunning
		if n.Result.Verdict == judge.Worse {
			phase = v1alpha1.AnalysisFailed
		}
		msg := n.Result.Explain(n.Metric, n.Events)
		if st.biz != nil && len(st.bizErrs) > 0 && slices.ContainsFunc(settings.Business, func(b v1alpha1.JudgeBusinessMetric) bool { return b.Name == n.Metric }) {
			msg += fmt.Sprintf(" (last scrape: %d failed: %s)", len(st.bizErrs), st.bizErrs[0])
		}
		run.Metrics = append(run.Metrics, v1alpha1.MetricResult{
			Name: strings.Fields(n.Metric)[0], Phase: phase, Count: int32(n.Result.Slices), Message: msg,
		})
	}
	if verdict == judge.Worse {
		run.Phase = v1alpha1.AnalysisFailed
		run.Message = why
		run.NoWorseFor = ""
		return
	}
	run.Message = "watching: " + why
	run.NoWorseFor = ""
	if st.step != nil && businessSeen(st.step, settings.Business) {
		if v, why := judge.Combine(named(st.step)); v == judge.NoWorse {
			run.NoWorseFor = st.stepRun
			run.Message = fmt.Sprintf("canary no worse than stable since %s began (%s): %s", st.stepRun, time.Unix(st.stepFrom, 0).UTC().Format(time.RFC3339), why)
		}
	}
}

// businessSeen reports whether every business metric's test has seen canary answers: a step
// never ends early on business metrics that could not be read.
func businessSeen(tests map[string]*judge.Test, business []v1alpha1.JudgeBusinessMetric) bool {
	for _, b := range business {
		if tests[b.Name].Result().Sum.CanaryTotal == 0 {
			return false
		}
	}
	return true
}

// slice is one metric's slice of one second, ok false when the metric cannot be judged in it
// (latency before its threshold is fixed).
func slice(metric string, c, s proxy.Second, thresholdSet bool) (judge.Slice, bool) {
	switch metric {
	case v1alpha1.JudgeErrorRate:
		return judge.Slice{CanaryTotal: c.Requests, CanaryEvents: c.Errors, StableTotal: s.Requests, StableEvents: s.Errors}, true
	case v1alpha1.JudgeLatency:
		return judge.Slice{CanaryTotal: c.Requests, CanaryEvents: c.SlowLatency, StableTotal: s.Requests, StableEvents: s.SlowLatency}, thresholdSet
	case v1alpha1.JudgeTTFB:
		return judge.Slice{CanaryTotal: c.TTFBCount, CanaryEvents: c.SlowTTFB, StableTotal: s.TTFBCount, StableEvents: s.SlowTTFB}, thresholdSet
	}
	return judge.Slice{}, false
}

// forgetJudges drops the judge state of r's runs that are gone. c.mu is held.
func (c *Controller) forgetJudges(r *v1alpha1.Rollout) {
	st := c.judges[r.Name]
	if st == nil {
		return
	}
	for _, a := range r.Status.Analysis {
		if a.Name == st.run && !a.Phase.Completed() {
			return
		}
	}
	if st.biz != nil {
		st.biz.stop()
	}
	delete(c.judges, r.Name)
}
