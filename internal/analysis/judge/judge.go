// Package judge is ramp's sequential canary-versus-stable judge: an anytime-valid test of
// whether the canary produces a larger share of some bad event (a 5xx, a request slower than a
// threshold fixed from stable, a failed business answer) than its share of the traffic. It is
// pure: it takes per-second counts and returns verdicts, with no I/O and no clock.
//
// # The test
//
// The judge conditions on the events. In time slice i (one second) the canary served n_c
// requests with e_c events and stable served n_s requests with e_s events. With q_i = n_c /
// (n_c + n_s), the canary's realised share of the requests in that second, and ρ the ratio of
// the canary's event rate to stable's, each event of slice i comes from the canary with
// probability
//
//	p_i(ρ) = q_i ρ / (q_i ρ + 1 − q_i)
//
// (Lindon & Malek, NeurIPS 2022, "Anytime-Valid Inference for Multinomial Count Data"; the
// per-slice q_i is what keeps the test exact when the weights change during it). For every
// ρ₁ the product over slices of the likelihood ratio L(ρ₁)/L(ρ₀) is a non-negative
// martingale when ρ = ρ₀ and a supermartingale for every ρ on the far side of ρ₀ (the ratio
// is monotone in ρ), and so is any mixture of such products over ρ₁. By Ville's inequality
// the mixture crosses 1/α with probability at most α, however often it is looked at.
//
// Two mixtures run side by side:
//   - Worse: ρ₀ = MaxRatio, ρ₁ on a geometric grid from 1.2·MaxRatio to 50, uniform prior
//     over the grid; the test also starts again every RestartEvery slices, and the statistic
//     mixes the starts (weight 0.9 on the first, 0.1/(k(k+1)) on the k-th), so that a fault
//     that begins late is not slowed by the evidence gathered while the canary was healthy. Crossing 1/α (with at least MinEvents canary events) means the canary's
//     event rate is more than MaxRatio times stable's: the judge fails the canary. A healthy
//     canary (ρ ≤ MaxRatio) is failed with probability at most α.
//   - No worse: ρ₀ = MaxRatio, ρ₁ on a geometric grid from MaxRatio/1.2 down to 1/100, uniform
//     prior. Crossing 1/α means the canary's rate is below MaxRatio times stable's: the
//     canary may go on early. A canary that is in truth worse than MaxRatio is passed with
//     probability at most α.
//
// # Bursts
//
// Errors come in bursts (a dependency times out, a client retries a bad request), which the
// independent-events model does not describe. Three guards, all of which keep the test valid:
//   - Each second is judged by its own split. A burst that hits both revisions in proportion
//     to their traffic says nothing about ρ and moves the statistic little, however large.
//   - A second's evidence for "worse" counts as at most BurstCap events: when a slice holds
//     E > BurstCap events its log likelihood ratio is scaled by BurstCap/E. A likelihood ratio
//     raised to a power c ≤ 1 has mean ≤ 1 (Jensen), so the product stays a supermartingale
//     under the null; a burst of correlated canary errors in one second cannot decide alone.
//   - The null is ρ ≤ MaxRatio (tolerated ratio, default 1.5), not ρ = 1, and a failure needs
//     at least MinEvents canary events.
package judge

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// BurstCapFor is the burst cap ramp uses for a metric: errors are rare, so a few canary
// errors in one second (a connection reset fails the requests in flight on one instance)
// must not decide alone; slow requests (5% of stable's by construction) and failed business
// answers are common, and their seconds are capped only far above their usual count.
func BurstCapFor(metric string) float64 {
	if metric == "error-rate" {
		return 4
	}
	return 100
}

// Defaults of Config's zero fields.
const (
	DefaultAlpha     = 0.01
	DefaultMaxRatio  = 1.5
	DefaultMinEvents = 3
	DefaultBurstCap  = 20
)

// Config tunes a Test.
type Config struct {
	// Alpha bounds the probability of a wrong verdict of each kind: failing a canary that is
	// no worse than MaxRatio, or passing one that is worse. Zero means DefaultAlpha (0.01).
	Alpha float64
	// MaxRatio is the tolerated ratio of the canary's event rate to stable's (ρ₀). The canary
	// fails when shown above it and passes early when shown below it. Zero means
	// DefaultMaxRatio (1.5).
	MaxRatio float64
	// MinEvents is the number of canary events needed before the canary can fail. Zero means
	// DefaultMinEvents (3).
	MinEvents int64
	// BurstCap is the most events one slice's evidence for "worse" counts as. Zero means
	// DefaultBurstCap (20); negative means no cap.
	BurstCap float64
}

func (c Config) withDefaults() Config {
	if c.Alpha == 0 {
		c.Alpha = DefaultAlpha
	}
	if c.MaxRatio == 0 {
		c.MaxRatio = DefaultMaxRatio
	}
	if c.MinEvents == 0 {
		c.MinEvents = DefaultMinEvents
	}
	if c.BurstCap == 0 {
		c.BurstCap = DefaultBurstCap
	}
	return c
}

// Slice is one time slice (ramp uses one second) of both revisions' counts.
type Slice struct {
	// CanaryTotal and StableTotal count the requests (or answers) each revision served.
	CanaryTotal, StableTotal int64
	// CanaryEvents and StableEvents count the bad ones among them: errors, slow requests,
	// failed answers.
	CanaryEvents, StableEvents int64
}

// Verdict is what a Test concluded so far.
type Verdict int

const (
	// Undecided: not enough evidence either way yet.
	Undecided Verdict = iota
	// Worse: the canary's event rate is shown above MaxRatio times stable's.
	Worse
	// NoWorse: the canary's event rate is shown below MaxRatio times stable's.
	NoWorse
)

func (v Verdict) String() string {
	switch v {
	case Worse:
		return "worse"
	case NoWorse:
		return "no worse"
	}
	return "undecided"
}

const (
	gridSize = 24
	// RestartEvery is how many slices apart the "worse" test starts again. A test that has
	// watched a healthy canary for a while holds evidence against large ratios, which a
	// fault that starts later must first overcome; a test started after the fault carries
	// none. The statistic is the prior-weighted mixture of all starts, still a test
	// supermartingale since the weights add up to at most 1.
	RestartEvery = 30
	restartShare = 0.1
)

// Test is one metric's sequential test. Feed it slices in time order with Add; Result tells
// the verdict at any time. Its zero value is not usable: call New.
type Test struct {
	cfg       Config
	worseRho  [gridSize]float64
	betterRho [gridSize]float64
	// worse holds the "worse" test started at each restart; betterLogM each grid point's
	// log martingale of the "no worse" test.
	worse      []*restart
	betterLogM [gridSize]float64
	sum        Slice
	slices     int64
	// recordP is, for a test against a record (NewAgainstRecord), the record's event rate
	// at its upper bound; zero for a two-sided test.
	recordP float64
}

// restart is one start of the "worse" test.
type restart struct {
	logW float64 // log of its prior weight
	logM [gridSize]float64
}

// restartWeight is the prior weight of the k-th start of the "worse" test: most on the first
// (a canary bad from its first request), the rest spread as 1/(k(k+1)) over later ones.
func restartWeight(k int) float64 {
	if k == 0 {
		return 1 - restartShare
	}
	return restartShare / float64(k*(k+1))
}

// New returns a test with no data.
func New(cfg Config) *Test {
	t := &Test{cfg: cfg.withDefaults()}
	r0 := t.cfg.MaxRatio
	// Worse: 1.2·ρ₀ … max(50, 12·ρ₀); no worse: ρ₀/1.2 … 1/100.
	lo, hi := 1.2*r0, math.Max(50, 12*r0)
	for k := range gridSize {
		t.worseRho[k] = lo * math.Pow(hi/lo, float64(k)/(gridSize-1))
	}
	lo, hi = r0/1.2, math.Min(0.01, r0/12)
	t.worse = []*restart{{logW: math.Log(restartWeight(0))}}
	for k := range gridSize {
		t.betterRho[k] = lo * math.Pow(hi/lo, float64(k)/(gridSize-1))
	}
	return t
}

// RecordMinTotal is the fewest requests (or answers) a record must hold for a test against
// it to judge at all.
const RecordMinTotal = 50

// NewAgainstRecord returns a test of one revision alone against a fixed record of another:
// after a promotion the previous revision takes no traffic, so there is no second revision
// to compare second by second, only what it did before. Slices fed to it carry the new
// revision's counts as the canary's (the stable side is ignored). Each request is an event
// with probability p; the null is p ≤ MaxRatio·p₀ with p₀ the record's rate, taken at its
// upper confidence bound (rate + 2 standard errors + 1/total), so a short or noisy record
// makes the test lenient, never strict. For every alternative p₁ = ρ₁·p₀ above the null the
// Bernoulli likelihood ratio against the null's edge is a supermartingale under the null,
// and so is their mixture (the same grids and restarts as New): Ville's inequality bounds
// the chance of failing a revision no worse than MaxRatio times the record by α, however
// often it is looked at. A record with fewer than RecordMinTotal requests judges nothing.
func NewAgainstRecord(cfg Config, record Slice) *Test {
	t := New(cfg)
	t.sum.StableTotal, t.sum.StableEvents = record.StableTotal, record.StableEvents
	if n := float64(record.StableTotal); n >= RecordMinTotal {
		p := float64(record.StableEvents) / n
		t.recordP = math.Min(p+2*math.Sqrt(p*(1-p)/n)+1/n, 1)
	} else {
		t.recordP = -1
	}
	return t
}

// Against says whether t is a test against a record (NewAgainstRecord).
func (t *Test) Against() bool { return t.recordP != 0 }

// With returns the result t would give with the slices ss added, leaving t as it is: a look
// at evidence that is not final yet, such as requests still in flight that are already slower
// than the threshold (they will be slow events when they finish, whenever that is).
func (t *Test) With(ss ...Slice) Result {
	c := *t
	c.worse = make([]*restart, len(t.worse))
	for i, r := range t.worse {
		rc := *r
		c.worse[i] = &rc
	}
	for _, s := range ss {
		c.Add(s)
	}
	return c.Result()
}

// share is the probability that an event comes from the canary when the canary's share of
// traffic is q and its rate is rho times stable's.
func share(q, rho float64) float64 { return q * rho / (q*rho + 1 - q) }

// Add feeds one slice. Slices in which either revision served nothing, or with no events,
// carry no information and only add to the totals.
func (t *Test) Add(s Slice) {
	if t.recordP != 0 {
		t.addAgainstRecord(s)
		return
	}
	t.sum.CanaryTotal += s.CanaryTotal
	t.sum.StableTotal += s.StableTotal
	t.sum.CanaryEvents += s.CanaryEvents
	t.sum.StableEvents += s.StableEvents
	if t.slices > 0 && t.slices%RestartEvery == 0 {
		t.worse = append(t.worse, &restart{logW: math.Log(restartWeight(len(t.worse)))})
	}
	t.slices++
	e := float64(s.CanaryEvents + s.StableEvents)
	if s.CanaryTotal <= 0 || s.StableTotal <= 0 || e == 0 {
		return
	}
	q := float64(s.CanaryTotal) / float64(s.CanaryTotal+s.StableTotal)
	ec, es := float64(s.CanaryEvents), float64(s.StableEvents)
	p0 := share(q, t.cfg.MaxRatio)
	temper := 1.0
	if t.cfg.BurstCap > 0 && e > t.cfg.BurstCap {
		temper = t.cfg.BurstCap / e
	}
	for k := range gridSize {
		p := share(q, t.worseRho[k])
		l := temper * (ec*math.Log(p/p0) + es*math.Log((1-p)/(1-p0)))
		for _, r := range t.worse {
			r.logM[k] += l
		}
		p = share(q, t.betterRho[k])
		t.betterLogM[k] += ec*math.Log(p/p0) + es*math.Log((1-p)/(1-p0))
	}
}

// addAgainstRecord feeds one slice of the new revision's counts to a test against a record.
func (t *Test) addAgainstRecord(s Slice) {
	t.sum.CanaryTotal += s.CanaryTotal
	t.sum.CanaryEvents += s.CanaryEvents
	if t.slices > 0 && t.slices%RestartEvery == 0 {
		t.worse = append(t.worse, &restart{logW: math.Log(restartWeight(len(t.worse)))})
	}
	t.slices++
	if t.recordP < 0 || s.CanaryTotal <= 0 {
		return
	}
	const top = 0.999
	null := math.Min(t.cfg.MaxRatio*t.recordP, top)
	if null >= top {
		return // a record this bad cannot be shown worse
	}
	n, e := float64(s.CanaryTotal), float64(s.CanaryEvents)
	temper := 1.0
	if t.cfg.BurstCap > 0 && e > t.cfg.BurstCap {
		temper = t.cfg.BurstCap / e
	}
	ll := func(rho float64) float64 {
		p := math.Min(rho*t.recordP, top)
		return e*math.Log(p/null) + (n-e)*math.Log((1-p)/(1-null))
	}
	for k := range gridSize {
		l := temper * ll(t.worseRho[k])
		for _, r := range t.worse {
			r.logM[k] += l
		}
		t.betterLogM[k] += ll(t.betterRho[k])
	}
}

// logWorse is the log of the "worse" statistic: the weighted mixture over starts of each
// start's mixture over the grid.
func (t *Test) logWorse() float64 {
	// Starts far below the best add nothing to the sum that matters: skip their exps.
	best := math.Inf(-1)
	for _, r := range t.worse {
		best = math.Max(best, r.logW+maxOf(&r.logM))
	}
	var s float64
	for _, r := range t.worse {
		if r.logW+maxOf(&r.logM) < best-40 {
			continue
		}
		s += math.Exp(r.logW + logMix(&r.logM) - best)
	}
	return best + math.Log(s)
}

func maxOf(a *[gridSize]float64) float64 {
	m := math.Inf(-1)
	for _, v := range a {
		m = math.Max(m, v)
	}
	return m
}

// logMix is the log of the uniform mixture of exp(logM).
func logMix(logM *[gridSize]float64) float64 {
	m := maxOf(logM)
	var s float64
	for _, v := range logM {
		s += math.Exp(v - m)
	}
	return m + math.Log(s/gridSize)
}

// Result is a Test's state and verdict.
type Result struct {
	Verdict Verdict
	// Sum holds the counts of all slices added.
	Sum Slice
	// Slices is the number of slices added.
	Slices int64
	// LogBFWorse and LogBFNoWorse are the logs of the two mixtures (Bayes factors).
	LogBFWorse, LogBFNoWorse float64
	// Threshold is log(1/α), the level either statistic must reach.
	Threshold float64
	Alpha     float64
	MaxRatio  float64
	MinEvents int64
	// Against is set for a test against a record (NewAgainstRecord): Sum's stable side is
	// the record.
	Against bool
}

// Result returns the verdict so far. Worse wins over NoWorse (which cannot both hold but for
// an α-rare accident).
func (t *Test) Result() Result {
	r := Result{
		Sum: t.sum, Slices: t.slices,
		LogBFWorse: t.logWorse(), LogBFNoWorse: logMix(&t.betterLogM),
		Threshold: math.Log(1 / t.cfg.Alpha), Alpha: t.cfg.Alpha, MaxRatio: t.cfg.MaxRatio, MinEvents: t.cfg.MinEvents,
		Against: t.recordP != 0,
	}
	switch {
	case r.LogBFWorse >= r.Threshold && t.sum.CanaryEvents >= t.cfg.MinEvents:
		r.Verdict = Worse
	case r.LogBFNoWorse >= r.Threshold:
		r.Verdict = NoWorse
	}
	return r
}

// Ratio is the observed ratio of the canary's event rate to stable's over all slices; +Inf
// when stable had no events and the canary had some, NaN when neither had any.
func (r Result) Ratio() float64 {
	s := r.Sum
	if s.CanaryTotal == 0 || s.StableTotal == 0 {
		return math.NaN()
	}
	return (float64(s.CanaryEvents) / float64(s.CanaryTotal)) / (float64(s.StableEvents) / float64(s.StableTotal))
}

// Explain says, for humans, what the test saw and concluded, naming the metric and what its
// events are ("errors", "requests slower than 812ms").
func (r Result) Explain(metric, events string) string {
	s := r.Sum
	side := func(e, n int64) string {
		return fmt.Sprintf("%d %s in %d (%s)", e, events, n, pct(e, n))
	}
	counts := fmt.Sprintf("canary %s, stable %s", side(s.CanaryEvents, s.CanaryTotal), side(s.StableEvents, s.StableTotal))
	worse, noWorse := "canary worse than stable", "canary no worse than stable"
	if r.Against {
		counts = fmt.Sprintf("new stable %s, previous revision's record %s", side(s.CanaryEvents, s.CanaryTotal), side(s.StableEvents, s.StableTotal))
		worse, noWorse = "new stable worse than the previous revision's record", "new stable no worse than the previous revision's record"
		if s.StableTotal < RecordMinTotal {
			return fmt.Sprintf("%s: not judged: the previous revision's record holds %d requests (fewer than %d): %s", metric, s.StableTotal, RecordMinTotal, counts)
		}
	}
	tol := strconv.FormatFloat(r.MaxRatio, 'g', 4, 64)
	switch r.Verdict {
	case Worse:
		return fmt.Sprintf("%s: %s: %s; log Bayes factor %.1f ≥ %.1f = log(1/α), α=%.3g, tolerated ratio %s",
			metric, worse, counts, r.LogBFWorse, r.Threshold, r.Alpha, tol)
	case NoWorse:
		return fmt.Sprintf("%s: %s: %s; log Bayes factor %.1f ≥ %.1f = log(1/α) for a ratio below %s, α=%.3g",
			metric, noWorse, counts, r.LogBFNoWorse, r.Threshold, tol, r.Alpha)
	}
	return fmt.Sprintf("%s: undecided: %s; log Bayes factor worse %.1f, no worse %.1f, threshold %.1f = log(1/α), α=%.3g, tolerated ratio %s",
		metric, counts, r.LogBFWorse, r.LogBFNoWorse, r.Threshold, r.Alpha, tol)
}

func pct(e, n int64) string {
	if n == 0 {
		return "-"
	}
	return strconv.FormatFloat(100*float64(e)/float64(n), 'g', 3, 64) + "%"
}

// Named is one metric's result in a panel of metrics judged together.
type Named struct {
	// Metric is the metric's name ("error-rate", "latency").
	Metric string
	// Events says what its events are, for Explain ("errors").
	Events string
	Result Result
}

// Combine turns the results of several metrics into one verdict and its explanation:
//   - Worse as soon as any metric is worse (the first one, in order, explains);
//   - NoWorse when every metric is either no worse or has seen no canary event at all, and at
//     least one is no worse (a metric with no canary events cannot show the canary worse;
//     one that shows it no worse is needed so that a step never ends on no data);
//   - Undecided otherwise.
//
// Give each metric α divided by the number of metrics (Bonferroni) to bound the chance of
// any wrong verdict by α.
func Combine(results []Named) (Verdict, string) {
	for _, n := range results {
		if n.Result.Verdict == Worse {
			return Worse, n.Result.Explain(n.Metric, n.Events)
		}
	}
	var why []string
	decided := false
	for _, n := range results {
		switch {
		case n.Result.Verdict == NoWorse:
			decided = true
			why = append(why, n.Result.Explain(n.Metric, n.Events))
		case n.Result.Sum.CanaryEvents == 0:
			why = append(why, fmt.Sprintf("%s: no canary %s in %d requests", n.Metric, n.Events, n.Result.Sum.CanaryTotal))
		default:
			return Undecided, undecided(results)
		}
	}
	if !decided {
		return Undecided, undecided(results)
	}
	return NoWorse, join(why)
}

func undecided(results []Named) string {
	why := make([]string, 0, len(results))
	for _, n := range results {
		why = append(why, n.Result.Explain(n.Metric, n.Events))
	}
	return join(why)
}

func join(s []string) string { return strings.Join(s, "; ") }
