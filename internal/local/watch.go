package local

import (
	"context"
	"fmt"
	"time"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/analysis/judge"
	"ramp.dev/ramp/internal/analysis/judgerun"
	"ramp.dev/ramp/internal/proxy"
	"ramp.dev/ramp/internal/spec"
)

// recordLookback is how far before a promotion the previous revision's requests make its
// record, against which the watch window judges the new stable.
const recordLookback = 5 * time.Minute

// watchState is the watch run's tests: the new stable (run.Revision) alone against the
// record of the previous revision (run.BaselineRevision), which takes no traffic any more.
// Like the judge it lives in memory: after a restart of ramp the proxy's record is gone and
// the window judges exits, crash loops and memory only.
type watchState struct {
	*judgerun.Run
	next int64
	thr  proxy.Thresholds
	// biz scrapes the business metrics of both revisions: the previous revision's counters
	// since its instances started make its record; nil when there are none.
	biz     *businessScraper
	bizErrs []string
	// bizRecorded says which business metrics have their record.
	bizRecorded map[string]bool
}

// stepWatch feeds the watch run of r the seconds the new stable served since the last call
// and sets its phase and metrics; scrapes run off the loop.
func (j *judging) stepWatch(ctx context.Context, now time.Time, r *v1alpha1.Rollout, run *v1alpha1.AnalysisRunStatus) {
	p := j.proxies.of(r.Name)
	if p == nil {
		return
	}
	settings := spec.WatchJudge(&r.Spec.Strategy)
	if !settings.Enabled {
		run.Phase = v1alpha1.AnalysisRunning
		run.Message = "the judge is off (spec.strategy.canary.judge.enabled): the watch window judges exits, crash loops and memory only"
		return
	}
	if j.watches == nil {
		j.watches = map[string]*watchState{}
	}
	st := j.watches[r.Name]
	if st == nil || !st.Of(run) {
		if st != nil {
			st.biz.stop()
		}
		st = newWatchState(ctx, p, r.Name, run, settings)
		j.watches[r.Name] = st
	}
	judgerun.Start(run)
	if run.Phase == v1alpha1.AnalysisRunning && run.Message == "watching the canary against stable" {
		run.Message = "watching the new stable against the previous revision's record"
	}
	st.feed(p, settings, run, now)
	if st.biz != nil {
		for _, round := range st.biz.take() {
			st.bizErrs = round.errs
			for _, b := range settings.Business {
				sl := round.slices[b.Name]
				if !st.bizRecorded[b.Name] {
					// The first round reads the previous revision's counters since its
					// instances started; the new stable's count from that round on.
					if sl.StableTotal >= judge.RecordMinTotal && st.SetRecord(b.Name, judge.Slice{StableTotal: sl.StableTotal, StableEvents: sl.StableEvents}) {
						st.bizRecorded[b.Name] = true
					}
					continue
				}
				st.Add(b.Name, round.at.Unix(), judge.Slice{CanaryTotal: sl.CanaryTotal, CanaryEvents: sl.CanaryEvents})
			}
		}
		st.biz.start(now, j.instances, func() { j.wake(r.Name) })
	}
	st.Report(run, func(name string) (string, string) {
		if thr := st.threshold(name); thr > 0 {
			return fmt.Sprintf("%s over %s (the previous revision's p95 + %s)", name, thr.Round(100*time.Microsecond), settings.MinLatencyIncrease), ""
		}
		for _, b := range settings.Business {
			if b.Name == name && !st.bizRecorded[name] {
				note := " (no record of the previous revision read yet)"
				if len(st.bizErrs) > 0 {
					note = fmt.Sprintf(" (last scrape: %d failed: %s)", len(st.bizErrs), st.bizErrs[0])
				}
				return "", note
			}
		}
		return "", ""
	})
}

// newWatchState makes the previous revision's record from the proxy's measurements of the
// recordLookback before the promotion: its latency thresholds (its p95 plus the judge's
// minLatencyIncrease) and, per metric, its requests and events.
func newWatchState(ctx context.Context, p judgeSource, rollout string, run *v1alpha1.AnalysisRunStatus, settings spec.JudgeSettings) *watchState {
	st := &watchState{Run: judgerun.New(run, settings, judgeMetrics(settings)), next: run.StartedAt.Unix(), bizRecorded: map[string]bool{}}
	from := run.StartedAt.Add(-recordLookback)
	s := p.Stats(run.BaselineRevision, from)
	thrSet := s.Latency.Count() >= thresholdMinRequests
	if thrSet {
		inc := settings.MinLatencyIncrease
		st.thr = proxy.Thresholds{
			Latency:    proxy.RoundThreshold(s.Latency.Quantile(thresholdQuantile) + inc),
			TTFB:       proxy.RoundThreshold(s.TTFB.Quantile(thresholdQuantile) + inc),
			FirstToken: proxy.RoundThreshold(s.FirstToken.Quantile(thresholdQuantile) + inc),
		}
	}
	record := map[string]judge.Slice{}
	for _, sec := range p.Seconds(run.BaselineRevision, from.Unix(), run.StartedAt.Unix()-1, st.thr) {
		for _, name := range settings.Metrics {
			if sl, ok := slice(name, proxy.Second{}, sec, thrSet); ok {
				r := record[name]
				r.StableTotal += sl.StableTotal
				r.StableEvents += sl.StableEvents
				record[name] = r
			}
		}
	}
	for _, name := range settings.Metrics {
		if _, ok := slice(name, proxy.Second{}, proxy.Second{}, thrSet); ok {
			st.SetRecord(name, record[name])
		} else {
			// A latency metric with no threshold cannot be judged: an empty record says so.
			st.SetRecord(name, judge.Slice{})
		}
	}
	if len(settings.Business) > 0 {
		st.biz = newBusinessScraper(ctx, rollout, run.Revision, run.BaselineRevision, run.StartedAt.Time, settings.Business)
		// The previous revision's counters count from zero at its instances' start: its
		// whole life so far is its record.
		st.biz.counters[1] = newBusinessCounters(time.Time{})
	}
	return st
}

// feed adds the whole seconds the new stable served since the last call, and sets the
// pending slices of its requests in flight past the thresholds.
func (st *watchState) feed(p judgeSource, settings spec.JudgeSettings, run *v1alpha1.AnalysisRunStatus, now time.Time) {
	thrSet := st.thr != (proxy.Thresholds{})
	last := now.Unix() - 1
	if last >= st.next {
		for _, sec := range p.Seconds(run.Revision, st.next, last, st.thr) {
			for _, name := range settings.Metrics {
				if sl, ok := slice(name, sec, proxy.Second{}, thrSet); ok {
					st.Add(name, sec.Unix, judge.Slice{CanaryTotal: sl.CanaryTotal, CanaryEvents: sl.CanaryEvents})
				}
			}
		}
		st.next = last + 1
	}
	if !thrSet {
		return
	}
	latCut, ftCut := now.Add(-st.thr.Latency).Unix(), now.Add(-st.thr.FirstToken).Unix()
	var lat, ft []judge.Slice
	for _, a := range p.Arrivals(run.Revision, run.StartedAt.Unix(), max(latCut, ftCut)-1) {
		if a.Unix < latCut && a.Open > 0 {
			lat = append(lat, judge.Slice{CanaryTotal: a.Arrived, CanaryEvents: a.Open})
		}
		if a.Unix < ftCut && a.Waiting > 0 {
			ft = append(ft, judge.Slice{CanaryTotal: a.Arrived, CanaryEvents: a.Waiting})
		}
	}
	st.SetPending(v1alpha1.JudgeLatency, lat)
	st.SetPending(v1alpha1.JudgeFirstToken, ft)
}

// threshold is the threshold of the latency metric name; zero when it has none.
func (st *watchState) threshold(name string) time.Duration {
	return (&judgeState{thr: st.thr}).threshold(name)
}
