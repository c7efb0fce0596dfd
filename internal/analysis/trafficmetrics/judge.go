package trafficmetrics

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"time"

	"github.com/prometheus/common/model"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/analysis/judge"
	"ramp.dev/ramp/internal/analysis/judgerun"
	"ramp.dev/ramp/internal/analysis/scrape"
	"ramp.dev/ramp/internal/spec"
)

// JudgeMetrics are the judge metrics that Prometheus series can feed: error-rate from the
// request and 5xx counters, latency and first-token as the requests slower than a threshold
// from histogram buckets. (ttfb has no usual series.)
func JudgeMetrics() []string {
	return []string{v1alpha1.JudgeErrorRate, v1alpha1.JudgeLatency, v1alpha1.JudgeFirstToken}
}

// Threshold settings, as local mode's: stable's p95 over the minute before the judge run
// began (or since then, once stable has served enough), plus the judge's
// minLatencyIncrease, rounded up to a bucket bound of the histogram so that the slow
// requests are counted exactly.
const (
	ThresholdLookback    = time.Minute
	thresholdQuantile    = 0.95
	thresholdMinRequests = 50
)

// hist numbers the histograms the judge reads.
const (
	histLatency = iota
	histFirstToken
	nHist
)

var histMetric = [nHist]string{v1alpha1.JudgeLatency, v1alpha1.JudgeFirstToken}

// Threshold is a histogram's bucket above which a request is slow.
type Threshold struct {
	// LE is the bucket's le label, as Prometheus holds it; empty until fixed.
	LE string
	// Bound is the bucket's bound.
	Bound time.Duration
	// Never says why the metric cannot be judged (stable's p95 plus the floor is above the
	// largest bucket); empty when it can.
	Never string
}

// Judge feeds one judge run from Prometheus series: at each Step it reads the canary's and
// stable's cumulative counters (requests and 5xx, the histogram buckets at the thresholds,
// the business metrics) and adds their increases since the previous Step as one slice, so
// the canary's realised share of the traffic in that slice is what the test weighs. It lives
// in memory; after a restart the judge starts again on new increments, which costs evidence
// but keeps the test valid.
type Judge struct {
	run      *judgerun.Run
	settings spec.JudgeSettings
	// judged says which histograms are judged; thr are their thresholds.
	judged [nHist]bool
	thr    [nHist]Threshold
	// fixFrom is when the requests that fix the thresholds start.
	fixFrom time.Time
	// prev are the last readings (canary, stable); primed once there is one.
	prev   [2]Counts
	prevAt time.Time
	primed bool
	// resets counts the Steps skipped because a counter went down (pods restarted).
	resets int
	// lastErr is why the last reading failed; nil when it did not.
	lastErr error
}

// NewJudge returns the judge of run, with settings (the caller has left out of
// settings.Metrics what its series cannot feed).
func NewJudge(run *v1alpha1.AnalysisRunStatus, settings spec.JudgeSettings) *Judge {
	j := &Judge{settings: settings, fixFrom: run.StartedAt.Add(-ThresholdLookback)}
	var ms []judgerun.Metric
	for _, name := range settings.Metrics {
		switch name {
		case v1alpha1.JudgeErrorRate:
			ms = append(ms, judgerun.Metric{Name: name, Events: "errors"})
		case v1alpha1.JudgeLatency:
			j.judged[histLatency] = true
			ms = append(ms, judgerun.Metric{Name: name, Events: "slow requests"})
		case v1alpha1.JudgeFirstToken:
			j.judged[histFirstToken] = true
			ms = append(ms, judgerun.Metric{Name: name, Events: "slow first tokens"})
		}
	}
	for _, b := range settings.Business {
		ms = append(ms, judgerun.Metric{Name: b.Name, Events: scrape.Selector(b.Metric, b.Events), MustSee: true})
	}
	j.run = judgerun.New(run, settings, ms)
	return j
}

// Of reports whether j is the judge of run (same name and start).
func (j *Judge) Of(run *v1alpha1.AnalysisRunStatus) bool { return j != nil && j.run.Of(run) }

// Plan is what a Read reads: the judge's thresholds and business metrics as they are now.
type Plan struct {
	judged   [nHist]bool
	thr      [nHist]Threshold
	fixFrom  time.Time
	floor    time.Duration
	business []v1alpha1.JudgeBusinessMetric
}

// Plan returns what the next Read reads for j.
func (j *Judge) Plan() Plan {
	return Plan{judged: j.judged, thr: j.thr, fixFrom: j.fixFrom, floor: j.settings.MinLatencyIncrease, business: j.settings.Business}
}

// Step reads the counters at now through c, feeds the increase since the last Step, and
// writes the verdict into run (st is the rollout's status, for the running step analysis
// run). An error (Prometheus not reachable) leaves run's verdict as it was and says why in
// its message; the next Step reads again. It is Read then Apply; a caller that must not wait
// for Prometheus runs Read elsewhere and Applies its reading later.
func (j *Judge) Step(ctx context.Context, c *Client, now time.Time, canary, stable Selector, st *v1alpha1.RolloutStatus, run *v1alpha1.AnalysisRunStatus) error {
	r := Read(ctx, c, now, canary, stable, j.Plan())
	j.Apply(&r, st, run)
	return r.Err
}

// Counts are a revision's cumulative counters at one time.
type Counts struct {
	Requests, Errors float64
	// Hist are the judged histograms' counts at their thresholds.
	Hist [nHist]HistCounts
	// Business are the business metrics' counts, by name.
	Business map[string]BusinessCounts
}

// HistCounts are a histogram's observations, and those at or below the bucket LE.
type HistCounts struct {
	LE          string
	Total, Fast float64
}

// BusinessCounts are a business metric's answers and bad answers.
type BusinessCounts struct{ Total, Events float64 }

// Reading is one read of the canary's and stable's cumulative counters.
type Reading struct {
	At             time.Time
	Canary, Stable Counts
	// Thresholds are the thresholds the reading fixed or used.
	Thresholds [nHist]Threshold
	// Err says why the counters could not be read; nil means they were.
	Err error
}

// Read fixes the thresholds plan lacks once stable has served enough, then reads the
// canary's and stable's counters at now through c. It touches no judge, so it may run on
// any goroutine.
func Read(ctx context.Context, c *Client, now time.Time, canary, stable Selector, plan Plan) Reading {
	r := Reading{At: now, Thresholds: plan.thr}
	for h := range nHist {
		if !plan.judged[h] || r.Thresholds[h].LE != "" || r.Thresholds[h].Never != "" {
			continue
		}
		sel, scale := histSelector(stable, h)
		if sel == "" {
			continue
		}
		var err error
		if r.Thresholds[h], err = c.fixThreshold(ctx, now, sel, scale, plan.fixFrom, plan.floor); err != nil {
			r.Err = err
			return r
		}
	}
	r.Canary, r.Err = c.judgeCounts(ctx, now, canary, r.Thresholds, plan)
	if r.Err == nil {
		r.Stable, r.Err = c.judgeCounts(ctx, now, stable, r.Thresholds, plan)
	}
	return r
}

// histSelector is s's histogram h and the factor of its unit to seconds; empty when s has
// none.
func histSelector(s Selector, h int) (string, float64) {
	if h == histFirstToken {
		return s.FirstTokenBuckets(), 1
	}
	return s.Buckets()
}

// judgeCounts reads s's counters for a judge: requests and errors, the histograms at their
// thresholds, the business metrics.
func (c *Client) judgeCounts(ctx context.Context, now time.Time, s Selector, thr [nHist]Threshold, plan Plan) (Counts, error) {
	out, err := c.Counts(ctx, now, s)
	if err != nil {
		return out, err
	}
	for h := range nHist {
		sel, _ := histSelector(s, h)
		if !plan.judged[h] || thr[h].LE == "" || sel == "" {
			continue
		}
		hc := HistCounts{LE: thr[h].LE}
		if hc.Total, _, err = c.scalar(ctx, "sum("+withMatcher(sel, `le="+Inf"`)+")", now); err != nil {
			return out, err
		}
		if hc.Fast, _, err = c.scalar(ctx, "sum("+withMatcher(sel, "le="+quote(thr[h].LE))+")", now); err != nil {
			return out, err
		}
		out.Hist[h] = hc
	}
	if len(plan.business) > 0 && s.App != nil {
		out.Business = map[string]BusinessCounts{}
		for _, b := range plan.business {
			bad, all := s.Business(b.Metric, b.Events, b.Total)
			var bc BusinessCounts
			if bc.Events, _, err = c.scalar(ctx, "sum("+bad+")", now); err != nil {
				return out, err
			}
			if bc.Total, _, err = c.scalar(ctx, "sum("+all+")", now); err != nil {
				return out, err
			}
			out.Business[b.Name] = bc
		}
	}
	return out, nil
}

// withMatcher adds a label matcher to a selector that ends in "}".
func withMatcher(sel, m string) string { return sel[:len(sel)-1] + ", " + m + "}" }

// fixThreshold reads stable's histogram sel since from and, once it holds
// thresholdMinRequests, returns the bucket at or above its p95 plus floor. Before that it
// returns a zero Threshold.
func (c *Client) fixThreshold(ctx context.Context, now time.Time, sel string, scale float64, from time.Time, floor time.Duration) (Threshold, error) {
	secs := max(int64(math.Ceil(now.Sub(from).Seconds())), 1)
	q := fmt.Sprintf("sum by (le) (increase(%s[%ds]))", sel, secs)
	v, err := c.vector(ctx, q, now)
	if err != nil {
		return Threshold{}, err
	}
	bs := make([]bucket, 0, len(v))
	for _, s := range v {
		le := string(s.Metric["le"])
		b, err := strconv.ParseFloat(le, 64)
		if err != nil {
			continue
		}
		bs = append(bs, bucket{le: le, bound: b, count: float64(s.Value)})
	}
	return thresholdOf(bs, scale, floor), nil
}

type bucket struct {
	le    string
	bound float64
	count float64
}

// thresholdOf picks the threshold from stable's cumulative buckets (any order): none while
// they hold fewer than thresholdMinRequests observations; else the smallest bucket bound
// at or above their p95 (interpolated in its bucket, as histogram_quantile does) plus floor.
func thresholdOf(bs []bucket, scale float64, floor time.Duration) Threshold {
	// Durations are not negative: a bound below 0 (or not a number) is no bucket of them.
	bs = slices.DeleteFunc(slices.Clone(bs), func(b bucket) bool { return !(b.bound >= 0) })
	sort.Slice(bs, func(i, j int) bool { return bs[i].bound < bs[j].bound })
	if len(bs) == 0 || !math.IsInf(bs[len(bs)-1].bound, 1) {
		return Threshold{}
	}
	total := bs[len(bs)-1].count
	if total < thresholdMinRequests {
		return Threshold{}
	}
	rank := thresholdQuantile * total
	var p95 float64
	for i, b := range bs {
		if b.count < rank {
			continue
		}
		if math.IsInf(b.bound, 1) {
			if i == 0 {
				return Threshold{Never: "the histogram has no finite bucket"}
			}
			p95 = bs[i-1].bound
			break
		}
		lo, below := 0.0, 0.0
		if i > 0 {
			lo, below = bs[i-1].bound, bs[i-1].count
		}
		p95 = lo + (b.bound-lo)*(rank-below)/(b.count-below)
		break
	}
	want := p95*scale + floor.Seconds()
	for _, b := range bs {
		if !math.IsInf(b.bound, 1) && b.bound*scale >= want-1e-9 {
			return Threshold{LE: b.le, Bound: time.Duration(math.Round(b.bound * scale * float64(time.Second)))}
		}
	}
	largest := bs[max(len(bs)-2, 0)]
	return Threshold{Never: fmt.Sprintf("stable's p95 plus the floor (%s) is above the histogram's largest bucket (%s)",
		time.Duration(want*float64(time.Second)).Round(time.Millisecond), time.Duration(largest.bound*scale*float64(time.Second)).Round(time.Millisecond))}
}

// vector runs an instant query at now that gives a vector.
func (c *Client) vector(ctx context.Context, query string, now time.Time) (model.Vector, error) {
	ctx, cancel := context.WithTimeout(ctx, DefaultTimeout)
	defer cancel()
	res, _, _, err := c.api.Query(ctx, query, now)
	if err != nil {
		return nil, fmt.Errorf("query %s at %s: %w", query, c.address, err)
	}
	v, ok := res.(model.Vector)
	if !ok {
		return nil, fmt.Errorf("query %s gave a %s, want a vector", query, res.Type())
	}
	return v, nil
}

// Apply feeds reading r (nil: no new one since the last Apply) into the judge and writes
// the verdict into run, as Step does.
func (j *Judge) Apply(r *Reading, st *v1alpha1.RolloutStatus, run *v1alpha1.AnalysisRunStatus) {
	judgerun.Start(run)
	j.run.TrackStep(st)
	if r != nil {
		j.lastErr = r.Err
		for h := range nHist {
			if j.thr[h].LE == "" && j.thr[h].Never == "" {
				j.thr[h] = r.Thresholds[h]
			}
		}
		if r.Err == nil {
			j.feed(r.At, r.Canary, r.Stable)
		}
	}
	j.run.Report(run, j.describe)
}

// describe labels the threshold metrics and notes why a metric is not judged (yet).
func (j *Judge) describe(name string) (string, string) {
	note := ""
	if j.lastErr != nil {
		note = fmt.Sprintf(" (last read failed: %s)", j.lastErr.Error())
	}
	h := slices.Index(histMetric[:], name)
	if h < 0 || !j.judged[h] {
		return "", note
	}
	switch t := j.thr[h]; {
	case t.LE != "":
		return judgerun.Label(name, t.Bound, j.settings.MinLatencyIncrease), note
	case t.Never != "":
		return "", " (not judged: " + t.Never + ")" + note
	}
	return "", fmt.Sprintf(" (not judged yet: the threshold is fixed once stable has served %d requests since %s)", thresholdMinRequests, j.fixFrom.UTC().Format(time.RFC3339)) + note
}

// feed adds the increase since the previous reading.
func (j *Judge) feed(now time.Time, canary, stable Counts) {
	prev, from := j.prev, j.prevAt
	j.prev, j.prevAt = [2]Counts{canary, stable}, now
	if !j.primed {
		j.primed = true
		return
	}
	d := func(a, b float64) int64 { return int64(math.Round(a - b)) }
	add := map[string]judge.Slice{v1alpha1.JudgeErrorRate: {
		CanaryTotal: d(canary.Requests, prev[0].Requests), CanaryEvents: d(canary.Errors, prev[0].Errors),
		StableTotal: d(stable.Requests, prev[1].Requests), StableEvents: d(stable.Errors, prev[1].Errors),
	}}
	for h := range nHist {
		c, s, pc, ps := canary.Hist[h], stable.Hist[h], prev[0].Hist[h], prev[1].Hist[h]
		if !j.judged[h] || c.LE == "" || c.LE != s.LE || c.LE != pc.LE || c.LE != ps.LE {
			continue // no threshold yet, or fixed between the readings
		}
		add[histMetric[h]] = judge.Slice{
			CanaryTotal: d(c.Total, pc.Total), CanaryEvents: d(c.Total-c.Fast, pc.Total-pc.Fast),
			StableTotal: d(s.Total, ps.Total), StableEvents: d(s.Total-s.Fast, ps.Total-ps.Fast),
		}
	}
	for _, b := range j.settings.Business {
		c, okc := canary.Business[b.Name]
		s, oks := stable.Business[b.Name]
		pc, okpc := prev[0].Business[b.Name]
		ps, okps := prev[1].Business[b.Name]
		if !okc || !oks || !okpc || !okps {
			continue
		}
		add[b.Name] = judge.Slice{
			CanaryTotal: d(c.Total, pc.Total), CanaryEvents: d(c.Events, pc.Events),
			StableTotal: d(s.Total, ps.Total), StableEvents: d(s.Events, ps.Events),
		}
	}
	for _, s := range add {
		if s.CanaryTotal < 0 || s.CanaryEvents < 0 || s.StableTotal < 0 || s.StableEvents < 0 {
			j.resets++ // a counter was reset: the next reading starts again from the new values
			return
		}
	}
	for name, s := range add {
		if s.CanaryTotal == 0 {
			continue // no canary request: nothing to judge
		}
		// The slice began at the previous reading: it counts for a step analysis run only
		// when that began before it.
		j.run.Add(name, from.Unix(), s)
	}
}
