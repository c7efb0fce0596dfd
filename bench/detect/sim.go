package main

import (
	"math"
	"math/rand/v2"
	"slices"

	"ramp.dev/ramp/internal/analysis/judge"
)

// reaction is the time from a completed second to the new weights: ramp's control loop
// decides at least every 200 ms, and the proxy applies a table at once.
const reaction = 0.2

func poisson(r *rand.Rand, mean float64) int64 {
	if mean <= 0 {
		return 0
	}
	if mean > 50 {
		return max(0, int64(math.Round(mean+math.Sqrt(mean)*r.NormFloat64())))
	}
	l, k, p := math.Exp(-mean), int64(0), 1.0
	for {
		p *= r.Float64()
		if p <= l {
			return k
		}
		k++
	}
}

func binomial(r *rand.Rand, n int64, p float64) int64 {
	if n <= 0 || p <= 0 {
		return 0
	}
	if p >= 1 {
		return n
	}
	m := float64(n) * p
	if m < 30 {
		return min(n, poisson(r, m))
	}
	return min(n, max(0, int64(math.Round(m+math.Sqrt(m*(1-p))*r.NormFloat64()))))
}

// sec is one simulated second of both revisions: requests and, per metric, bad events.
type sec struct {
	canaryN, stableN int64
	canary, stable   [nMetrics]int64
	// pending are, per threshold metric, the slices of requests still in flight past the
	// threshold at the end of the second, one slice per second of arrivals (as local mode's
	// feedPending builds them); nil for the other metrics.
	pending [nMetrics][]judge.Slice
}

// The judge's default metrics (error-rate, latency, first-token: spec.DefaultJudgeMetrics)
// and the business metric of scenario D.
const (
	mErrors = iota
	mSlow
	mSlowFirstToken
	mTriage
	nMetrics
)

var metricNames = [nMetrics]string{"error-rate", "latency", "first-token", "triage"}

// In-flight evidence. A request above a threshold (latency or first token) stays in flight
// past it for an exponential time of mean tailMean (a slow answer ends, or its first token
// comes, on average 1 s after the threshold). The thresholds are stable's p95 plus the
// judge's 100 ms floor, for answers whose p95 is about 550 ms (total) and 250 ms (first
// token).
const tailMean = 1.0

var pendingThreshold = [nMetrics]float64{mSlow: 0.65, mSlowFirstToken: 0.35}

// inFlight follows the slow requests of a trial until they end, to build the pending slices
// each second. It draws from its own generator so that the traffic is the same with or
// without it.
type inFlight struct {
	r        *rand.Rand
	arrivals [][2]int64 // per second: canary, stable arrivals
	open     [nMetrics][]slowReq
}

type slowReq struct {
	sec    int
	canary bool
	end    float64
}

// add records second t's arrivals and slow requests and fills s.pending as seen at t+1.
func (f *inFlight) add(t int, s *sec) {
	f.arrivals = append(f.arrivals, [2]int64{s.canaryN, s.stableN})
	now := float64(t + 1)
	for _, m := range []int{mSlow, mSlowFirstToken} {
		thr := pendingThreshold[m]
		for side, k := range [2]int64{s.canary[m], s.stable[m]} {
			for range k {
				end := float64(t) + f.r.Float64() + thr + f.r.ExpFloat64()*tailMean
				f.open[m] = append(f.open[m], slowReq{sec: t, canary: side == 0, end: end})
			}
		}
		kept := f.open[m][:0]
		for _, q := range f.open[m] {
			if q.end > now {
				kept = append(kept, q)
			}
		}
		f.open[m] = kept
		// A request that arrived in second S is older than thr once S+1 <= now-thr.
		cut := int(math.Floor(now - thr))
		by := map[int]*judge.Slice{}
		var secs []int
		for _, q := range f.open[m] {
			if q.sec >= cut {
				continue
			}
			sl := by[q.sec]
			if sl == nil {
				a := f.arrivals[q.sec]
				sl = &judge.Slice{CanaryTotal: a[0], StableTotal: a[1]}
				by[q.sec] = sl
				secs = append(secs, q.sec)
			}
			if q.canary {
				sl.CanaryEvents++
			} else {
				sl.StableEvents++
			}
		}
		slices.Sort(secs)
		s.pending[m] = nil
		for _, S := range secs {
			if sl := by[S]; sl.CanaryTotal > 0 {
				s.pending[m] = append(s.pending[m], *sl)
			}
		}
	}
}

// world says, for second t, the canary's weight and each side's probability of each event.
type world func(t int, r *rand.Rand) (weight float64, canaryP, stableP [nMetrics]float64)

// draw simulates second t at rps requests per second, each routed to the canary at random
// with the given weight.
func draw(r *rand.Rand, rps float64, weight float64, cp, sp [nMetrics]float64) sec {
	n := poisson(r, rps)
	c := binomial(r, n, weight)
	s := sec{canaryN: c, stableN: n - c}
	for m := range nMetrics {
		s.canary[m] = binomial(r, c, cp[m])
		s.stable[m] = binomial(r, n-c, sp[m])
	}
	return s
}

// policy watches the seconds and says when it would roll back.
type policy interface {
	name() string
	// observe takes second t (0-based, covering [t, t+1)) and reports whether the policy
	// rolls back, and at what time (seconds since the start).
	observe(t int, s sec) (rollback bool, at float64)
}

// ramp's judge, as local mode runs it: one test per metric, α split over the metrics, a
// decision after each whole second; a metric not worse on its final slices is looked at with
// its pending ones (requests in flight past the threshold) added, as judgerun's Report does.
type rampJudge struct {
	metrics []int
	tests   []*judge.Test
	// by counts rollbacks by metric, for the report; byPending those of them due to the
	// requests in flight.
	by, byPending *[nMetrics]int
}

func newRampJudge(metrics []int, alpha float64, by, byPending *[nMetrics]int) *rampJudge {
	j := &rampJudge{metrics: metrics, by: by, byPending: byPending}
	for _, m := range metrics {
		j.tests = append(j.tests, judge.New(judge.Config{Alpha: alpha / float64(len(metrics)), BurstCap: judge.BurstCapFor(metricNames[m])}))
	}
	return j
}

func (*rampJudge) name() string { return "ramp judge" }

func (j *rampJudge) observe(t int, s sec) (bool, float64) {
	for i, m := range j.metrics {
		j.tests[i].Add(judge.Slice{CanaryTotal: s.canaryN, StableTotal: s.stableN, CanaryEvents: s.canary[m], StableEvents: s.stable[m]})
		worse, pending := j.tests[i].Result().Verdict == judge.Worse, false
		if !worse && len(s.pending[m]) > 0 {
			worse = j.tests[i].With(s.pending[m]...).Verdict == judge.Worse
			pending = worse
		}
		if worse {
			if j.by != nil {
				j.by[m]++
			}
			if pending && j.byPending != nil {
				j.byPending[m]++
			}
			return true, float64(t+1) + reaction
		}
	}
	return false, 0
}

// windowRule is a fixed-window rule as Flagger and Argo Rollouts run them: every interval
// it measures the canary's success rate over the last window; a failed check adds one, and
// it rolls back at failLimit failures (consecutive, as Flagger resets on success; Argo's
// failureLimit counts all failures and rolls back when they exceed the limit).
type windowRule struct {
	label            string
	interval, window int
	phase            int
	minSuccess       float64
	failLimit        int
	consecutive      bool
	failed           int
	hist             []sec
	metric           int
}

func (w *windowRule) name() string { return w.label }

func (w *windowRule) observe(t int, s sec) (bool, float64) {
	w.hist = append(w.hist, s)
	end := t + 1
	if (end-w.phase)%w.interval != 0 || end-w.phase <= 0 {
		return false, 0
	}
	var n, bad int64
	for i := max(0, end-w.window); i < end; i++ {
		n += w.hist[i].canaryN
		bad += w.hist[i].canary[w.metric]
	}
	if n == 0 {
		return false, 0
	}
	if 1-float64(bad)/float64(n) < w.minSuccess {
		w.failed++
	} else if w.consecutive {
		w.failed = 0
	}
	if w.failed >= w.failLimit {
		return true, float64(end)
	}
	return false, 0
}

func flagger(r *rand.Rand, metric int) policy {
	return &windowRule{label: "Flagger-style (1m window, ≥99%, threshold 5)", interval: 60, window: 60, phase: r.IntN(60),
		minSuccess: 0.99, failLimit: 5, consecutive: true, metric: metric}
}

func argo(r *rand.Rand, metric int) policy {
	// Argo's docs example: interval 5m, successCondition result >= 0.95, failureLimit 3 (the
	// run fails at the 4th failed measurement).
	return &windowRule{label: "Argo docs example (5m interval, failureLimit 3)", interval: 300, window: 300, phase: r.IntN(300),
		minSuccess: 0.95, failLimit: 4, metric: metric}
}

// outcome of one trial for one policy.
type outcome struct {
	rolledBack bool
	// detect is the time from the fault to weight 0 (seconds); failed counts the canary's
	// failed requests (of the watched metric) between the fault and weight 0.
	detect float64
	failed float64
}

// trial runs one stream of secs seconds through the policies, with the fault at faultAt
// (negative: none). All policies see the same seeded traffic; each one's rollback stops the
// canary's failures for it alone.
func trial(seed uint64, secs int, rps float64, faultAt int, w world, failMetric int, policies []policy) []outcome {
	r := rand.New(rand.NewPCG(seed, 7))
	out := make([]outcome, len(policies))
	done := make([]bool, len(policies))
	fly := &inFlight{r: rand.New(rand.NewPCG(seed, 11))}
	for t := range secs {
		weight, cp, sp := w(t, r)
		s := draw(r, rps, weight, cp, sp)
		fly.add(t, &s)
		for i, p := range policies {
			if done[i] {
				continue
			}
			if faultAt >= 0 && t >= faultAt {
				out[i].failed += float64(s.canary[failMetric])
			}
			if rb, at := p.observe(t, s); rb {
				done[i] = true
				out[i].rolledBack = true
				if faultAt >= 0 {
					out[i].detect = at - float64(faultAt)
					// The part of the last second after weight 0 did not happen.
					if frac := at - math.Floor(at); frac > 0 {
						out[i].failed += frac * float64(s.canary[failMetric])
					}
				}
			}
		}
		all := true
		for _, d := range done {
			all = all && d
		}
		if all {
			break
		}
	}
	return out
}
