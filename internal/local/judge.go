package local

import (
	"context"
	"fmt"
	"slices"
	"time"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/analysis/judge"
	"ramp.dev/ramp/internal/analysis/judgerun"
	"ramp.dev/ramp/internal/proxy"
	"ramp.dev/ramp/internal/spec"
)

const (
	// thresholdLookback is how far before the judge run began stable's requests fix the
	// latency, first-token and TTFB thresholds.
	thresholdLookback = time.Minute
	// thresholdQuantile is the quantile of stable's latency (first token, TTFB) that, plus
	// the judge's minLatencyIncrease, is taken as threshold.
	thresholdQuantile = 0.95
	// thresholdMinRequests is how many stable requests are needed to fix a threshold. When
	// stable served fewer in the minute before the run began, the threshold is fixed as soon
	// as it has, and only later seconds are judged on it.
	thresholdMinRequests = 50
)

// judging holds the state of every rollout's judge and watch runs. Only the control loop
// uses it; the scrapes of business metrics run off the loop.
type judging struct {
	proxies *proxies
	// instances lists the addresses of a revision's ready instances.
	instances func(rollout string, rev int64) []string
	// wake asks for a step of the rollout (a round of scrapes finished).
	wake func(rollout string)
	// judges and watches hold each rollout's judge and watch-window run, by rollout name.
	judges  map[string]*judgeState
	watches map[string]*watchState
	// business keeps the rounds of business-metric scrapes for the dashboard's charts.
	business businessBook
}

// judgeState is one judge run's tests, fed one whole second at a time from the proxy. It
// lives in memory: after a restart of ramp the judge starts again on new requests (the proxy's
// measurements start again too), which costs evidence but keeps the test valid.
type judgeState struct {
	*judgerun.Run
	// next is the next second (Unix) to feed.
	next int64
	// thr are the latency, first-token and TTFB thresholds (zero until fixed), and thrFrom
	// the first second judged on them.
	thr     proxy.Thresholds
	thrFrom int64
	// biz scrapes the business metrics; nil when there are none.
	biz *businessScraper
	// bizErrs are the failed scrapes of the last round, shown with the metrics.
	bizErrs []string
}

// metricEvents says what each judge metric counts, for explanations.
var metricEvents = map[string]string{
	v1alpha1.JudgeErrorRate:  "errors",
	v1alpha1.JudgeLatency:    "slow requests",
	v1alpha1.JudgeFirstToken: "slow first tokens",
	v1alpha1.JudgeTTFB:       "slow response headers",
}

// judgeSource is what the judge reads from the proxy.
type judgeSource interface {
	Stats(revision int64, since time.Time) proxy.RequestStats
	Seconds(revision, from, to int64, over proxy.Thresholds) []proxy.Second
	Arrivals(revision, from, to int64) []proxy.ArrivalSecond
}

var _ judgeSource = (*proxy.Proxy)(nil)

// judgeMetrics are the judge's metrics in local mode: the request metrics, then the business
// metrics, which must have been read before a step may end early on them.
func judgeMetrics(settings spec.JudgeSettings) []judgerun.Metric {
	var out []judgerun.Metric
	for _, name := range settings.Metrics {
		out = append(out, judgerun.Metric{Name: name, Events: metricEvents[name]})
	}
	for _, b := range settings.Business {
		out = append(out, judgerun.Metric{Name: b.Name, Events: businessEvents(b), MustSee: true})
	}
	return out
}

// stepJudge feeds the judge run the seconds completed since the last call (and the rounds of
// business-metric scrapes finished since then) and sets its phase, message and metrics:
// Failed when a metric shows the canary worse, and NoWorseFor when the canary is shown no
// worse since the running step analysis run began.
func (j *judging) stepJudge(ctx context.Context, now time.Time, r *v1alpha1.Rollout, run *v1alpha1.AnalysisRunStatus) {
	p := j.proxies.of(r.Name)
	if p == nil {
		return
	}
	settings := spec.Judge(r.Spec.Strategy.Canary)
	if j.judges == nil {
		j.judges = map[string]*judgeState{}
	}
	st := j.judges[r.Name]
	if st == nil || !st.Of(run) {
		if st != nil {
			st.biz.stop()
		}
		st = &judgeState{Run: judgerun.New(run, settings, judgeMetrics(settings)), next: run.StartedAt.Unix()}
		if len(settings.Business) > 0 {
			st.biz = newBusinessScraper(ctx, r.Name, run.Revision, run.BaselineRevision, run.StartedAt.Time, settings.Business)
		}
		j.judges[r.Name] = st
	}
	judgerun.Start(run)

	// The running step analysis run, if any: "no worse" is judged on the seconds after it began.
	stepFrom := st.TrackStep(&r.Status)
	st.feed(p, settings, run, now)

	// Business metrics: one slice per finished round of scrapes, then the next round.
	if st.biz != nil {
		for _, round := range st.biz.take() {
			st.bizErrs = round.errs
			for _, b := range settings.Business {
				from := stepFrom - 1 // a round with no start time counts for the whole canary only
				if !round.from.IsZero() {
					from = round.from.Unix()
				}
				st.Add(b.Name, from, round.slices[b.Name])
			}
			j.business.add(r.Name, round.at, st.biz.canary, st.biz.stable, round.slices)
		}
		st.biz.start(now, j.instances, func() { j.wake(r.Name) })
	}

	st.Report(run, func(name string) (string, string) {
		if thr := st.threshold(name); thr > 0 {
			return judgerun.Label(name, thr, settings.MinLatencyIncrease), ""
		}
		if st.biz != nil && len(st.bizErrs) > 0 && slices.ContainsFunc(settings.Business, func(b v1alpha1.JudgeBusinessMetric) bool { return b.Name == name }) {
			return "", fmt.Sprintf(" (last scrape: %d failed: %s)", len(st.bizErrs), st.bizErrs[0])
		}
		return "", ""
	})
}

// feed fixes the thresholds once stable has served enough, then feeds the judge run the whole
// seconds completed since the last call, and sets the pending slices of the requests in flight
// past the thresholds.
func (st *judgeState) feed(p judgeSource, settings spec.JudgeSettings, run *v1alpha1.AnalysisRunStatus, now time.Time) {
	// Thresholds: stable's p95 before the run began (or as soon as stable has served
	// enough), plus the floor minLatencyIncrease, fixed before any second judged on them.
	if st.thrFrom == 0 && slices.ContainsFunc(settings.Metrics, isThresholdMetric) {
		s := p.Stats(run.BaselineRevision, run.StartedAt.Add(-thresholdLookback))
		if s.Latency.Count() >= thresholdMinRequests {
			inc := settings.MinLatencyIncrease
			st.thr = proxy.Thresholds{
				Latency:    proxy.RoundThreshold(s.Latency.Quantile(thresholdQuantile) + inc),
				TTFB:       proxy.RoundThreshold(s.TTFB.Quantile(thresholdQuantile) + inc),
				FirstToken: proxy.RoundThreshold(s.FirstToken.Quantile(thresholdQuantile) + inc),
			}
			st.thrFrom = now.Unix() + 1
		}
	}

	last := now.Unix() - 1 // whole seconds only
	if last >= st.next {
		canary := p.Seconds(run.Revision, st.next, last, st.thr)
		stable := p.Seconds(run.BaselineRevision, st.next, last, st.thr)
		byUnix := map[int64]*[2]proxy.Second{}
		for _, s := range canary {
			byUnix[s.Unix] = &[2]proxy.Second{s}
		}
		for _, s := range stable {
			if pair := byUnix[s.Unix]; pair != nil {
				pair[1] = s
			}
		}
		for sec := st.next; sec <= last; sec++ {
			pair := byUnix[sec]
			if pair == nil {
				continue // no canary request: nothing to judge
			}
			cs, ss := pair[0], pair[1]
			for _, name := range settings.Metrics {
				sl, ok := slice(name, cs, ss, sec >= st.thrFrom && st.thrFrom != 0)
				if !ok {
					continue
				}
				st.Add(name, sec, sl)
			}
		}
		st.next = last + 1
	}

	if st.thrFrom != 0 {
		st.feedPending(p, run, now)
	}
}

// feedPending sets the judge's pending slices: the requests still in flight that arrived
// longer than the threshold ago will be slow whenever they end, so a hang is evidence now.
// Each second of arrivals is one slice, the canary's and stable's requests that arrived in it
// against those of them still in flight (for first-token: still without a body byte), so the
// canary's share of the traffic is the one of that second.
func (st *judgeState) feedPending(p judgeSource, run *v1alpha1.AnalysisRunStatus, now time.Time) {
	// A request that arrived in second S is older than thr once S+1 <= now-thr.
	latCut, ftCut := now.Add(-st.thr.Latency).Unix(), now.Add(-st.thr.FirstToken).Unix()
	from, to := run.StartedAt.Unix(), max(latCut, ftCut)-1
	stable := map[int64]proxy.ArrivalSecond{}
	for _, a := range p.Arrivals(run.BaselineRevision, from, to) {
		stable[a.Unix] = a
	}
	var lat, ft []judge.Slice
	for _, c := range p.Arrivals(run.Revision, from, to) {
		s := stable[c.Unix]
		if c.Unix < latCut && c.Open+s.Open > 0 {
			lat = append(lat, judge.Slice{CanaryTotal: c.Arrived, CanaryEvents: c.Open, StableTotal: s.Arrived, StableEvents: s.Open})
		}
		if c.Unix < ftCut && c.Waiting+s.Waiting > 0 {
			ft = append(ft, judge.Slice{CanaryTotal: c.Arrived, CanaryEvents: c.Waiting, StableTotal: s.Arrived, StableEvents: s.Waiting})
		}
	}
	st.SetPending(v1alpha1.JudgeLatency, lat)
	st.SetPending(v1alpha1.JudgeFirstToken, ft)
}

// isThresholdMetric reports whether the judge metric counts requests above a threshold.
func isThresholdMetric(name string) bool {
	return name == v1alpha1.JudgeLatency || name == v1alpha1.JudgeFirstToken || name == v1alpha1.JudgeTTFB
}

// threshold is the threshold of the judge metric name; zero when it has none (yet).
func (st *judgeState) threshold(name string) time.Duration {
	switch name {
	case v1alpha1.JudgeLatency:
		return st.thr.Latency
	case v1alpha1.JudgeFirstToken:
		return st.thr.FirstToken
	case v1alpha1.JudgeTTFB:
		return st.thr.TTFB
	}
	return 0
}

// slice is one metric's slice of one second, ok false when the metric cannot be judged in it
// (latency before its threshold is fixed).
func slice(metric string, c, s proxy.Second, thresholdSet bool) (judge.Slice, bool) {
	switch metric {
	case v1alpha1.JudgeErrorRate:
		return judge.Slice{CanaryTotal: c.Requests, CanaryEvents: c.Errors, StableTotal: s.Requests, StableEvents: s.Errors}, true
	case v1alpha1.JudgeLatency:
		return judge.Slice{CanaryTotal: c.Requests, CanaryEvents: c.SlowLatency, StableTotal: s.Requests, StableEvents: s.SlowLatency}, thresholdSet
	case v1alpha1.JudgeFirstToken:
		return judge.Slice{CanaryTotal: c.FirstTokenCount, CanaryEvents: c.SlowFirstToken, StableTotal: s.FirstTokenCount, StableEvents: s.SlowFirstToken}, thresholdSet
	case v1alpha1.JudgeTTFB:
		return judge.Slice{CanaryTotal: c.TTFBCount, CanaryEvents: c.SlowTTFB, StableTotal: s.TTFBCount, StableEvents: s.SlowTTFB}, thresholdSet
	}
	return judge.Slice{}, false
}

// forget drops the judge and watch state of r's runs that are gone or finished.
func (j *judging) forget(r *v1alpha1.Rollout) {
	forgetRun(j.judges, r)
	forgetRun(j.watches, r)
}

// forgetRun drops states[r.Name], stopping its business scraper, when its analysis run is
// gone from r's status or finished.
func forgetRun[S interface {
	Name() string
	scraper() *businessScraper
}](states map[string]S, r *v1alpha1.Rollout) {
	st, ok := states[r.Name]
	if !ok {
		return
	}
	for _, a := range r.Status.Analysis {
		if a.Name == st.Name() && !a.Phase.Completed() {
			return
		}
	}
	st.scraper().stop()
	delete(states, r.Name)
}

func (st *judgeState) scraper() *businessScraper { return st.biz }
func (st *watchState) scraper() *businessScraper { return st.biz }
