package judge

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// poisson draws a Poisson(mean) count: by inversion for small means, by a rounded normal for
// large ones (close enough for these streams).
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

// binomial draws Binomial(n, p) as Poisson when n·p is small, else a rounded normal.
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

// second is one simulated second: rps requests split by the canary's weight (each request
// routed at random), events at each side's rate.
func second(r *rand.Rand, rps int64, weight, canaryRate, stableRate float64) Slice {
	n := poisson(r, float64(rps))
	c := binomial(r, n, weight)
	s := n - c
	return Slice{CanaryTotal: c, StableTotal: s, CanaryEvents: binomial(r, c, canaryRate), StableEvents: binomial(r, s, stableRate)}
}

func TestDetectsTenPercentAgainstAPointOnePercentFast(t *testing.T) {
	// 1,000 rps, 5% canary, canary fails 10% against stable's 0.1%.
	const runs = 50
	var secs []int
	for seed := range runs {
		r := rand.New(rand.NewPCG(uint64(seed), 1))
		j := New(Config{})
		for sec := 1; sec <= 60; sec++ {
			j.Add(second(r, 1000, 0.05, 0.10, 0.001))
			if res := j.Result(); res.Verdict == Worse {
				secs = append(secs, sec)
				break
			}
			if j.Result().Verdict == NoWorse {
				t.Fatalf("seed %d: a 100x worse canary passed: %s", seed, j.Result().Explain("error-rate", "errors"))
			}
		}
	}
	if len(secs) != runs {
		t.Fatalf("detected in %d of %d runs", len(secs), runs)
	}
	late := 0
	for _, s := range secs {
		if s > 3 {
			late++
		}
	}
	if late > runs/20 {
		t.Fatalf("%d of %d runs needed more than 3 s: %v", late, runs, secs)
	}
}

// aa runs an A/A stream (both revisions equally good) for secs seconds whose weight and error
// rate change every minute, and reports whether the judge ever said worse (wantWorse) or no
// worse.
func aa(seed uint64, cfg Config, secs int, burst bool) (worse, noWorse bool) {
	r := rand.New(rand.NewPCG(seed, 2))
	j := New(cfg)
	weights := []float64{0.05, 0.5, 0.1, 0.9, 0.25, 0.02}
	rate := 0.002
	for sec := range secs {
		if sec%60 == 0 {
			rate = 0.0005 + r.Float64()*0.01 // the base rate drifts; it is the same on both sides
		}
		w := weights[(sec/60)%len(weights)]
		rt := rate
		if burst && r.Float64() < 0.01 {
			rt = 0.3 // a shared outage: 30% of everyone's requests fail this second
		}
		j.Add(second(r, 1000, w, rt, rt))
		switch j.Result().Verdict {
		case Worse:
			worse = true
		case NoWorse:
			noWorse = true
		}
		if worse {
			return
		}
	}
	return
}

func TestAAWithChangingWeightsStaysWithinAlpha(t *testing.T) {
	// At the boundary of the null (tolerated ratio 1, no burst cap) the test is exact: the
	// false-alarm rate over an unbounded look must stay below α.
	const runs, alpha = 300, 0.05
	cfg := Config{Alpha: alpha, MaxRatio: 1, BurstCap: -1, MinEvents: 1}
	alarms := 0
	for seed := range runs {
		if w, _ := aa(uint64(seed), cfg, 300, false); w {
			alarms++
		}
	}
	t.Logf("A/A, weights changing every minute: %d false alarms in %d runs (α = %g)", alarms, runs, alpha)
	if float64(alarms) > alpha*runs {
		t.Fatalf("%d false alarms in %d runs, more than α·runs = %g", alarms, runs, alpha*runs)
	}
}

func TestBurstsDoNotFailAHealthyCanary(t *testing.T) {
	const runs = 100
	alarms := 0
	for seed := range runs {
		if w, _ := aa(uint64(seed)+10_000, Config{}, 300, true); w {
			alarms++
		}
	}
	if alarms > 0 {
		t.Fatalf("%d of %d healthy canaries with shared error bursts failed", alarms, runs)
	}
}

func TestABurstOnTheCanaryAloneCountsLittle(t *testing.T) {
	// One second in which 200 canary requests fail together (a reset connection pool) is
	// weighed as BurstCap events, not 200. With a cap of 2 it cannot fail the canary alone.
	j := New(Config{BurstCap: 2})
	j.Add(Slice{CanaryTotal: 250, StableTotal: 4750, CanaryEvents: 200, StableEvents: 5})
	if res := j.Result(); res.Verdict == Worse {
		t.Fatalf("one burst second failed the canary: %s", res.Explain("error-rate", "errors"))
	}
	uncapped := New(Config{BurstCap: -1})
	uncapped.Add(Slice{CanaryTotal: 250, StableTotal: 4750, CanaryEvents: 200, StableEvents: 5})
	if res := uncapped.Result(); res.Verdict != Worse {
		t.Fatalf("without the cap the same second should fail the canary: %s", res.Explain("error-rate", "errors"))
	}
}

func TestHealthyCanaryIsShownNoWorseEarly(t *testing.T) {
	// Latency-like events (5% of requests above stable's p95) at 1,000 rps, 25% canary.
	const runs = 20
	for seed := range runs {
		r := rand.New(rand.NewPCG(uint64(seed), 3))
		j := New(Config{})
		sec := 0
		for ; sec < 120 && j.Result().Verdict == Undecided; sec++ {
			j.Add(second(r, 1000, 0.25, 0.05, 0.05))
		}
		if res := j.Result(); res.Verdict != NoWorse {
			t.Fatalf("seed %d: after %d s: %s", seed, sec, res.Explain("latency", "slow requests"))
		}
	}
}

func TestAWorseCanaryIsRarelyPassed(t *testing.T) {
	// A canary twice as bad as stable, just past the tolerated 1.5: "no worse" must stay
	// below α.
	const runs, alpha = 200, 0.05
	passed := 0
	for seed := range runs {
		r := rand.New(rand.NewPCG(uint64(seed), 4))
		j := New(Config{Alpha: alpha, MaxRatio: 1.5})
		for range 300 {
			j.Add(second(r, 1000, 0.2, 0.0015*1.5, 0.0015))
			if v := j.Result().Verdict; v == NoWorse {
				passed++
				break
			} else if v == Worse {
				break
			}
		}
	}
	if float64(passed) > alpha*runs {
		t.Fatalf("a canary at the tolerated ratio was passed in %d of %d runs (α = %g)", passed, runs, alpha)
	}
}

func TestCombineAndExplain(t *testing.T) {
	worse := New(Config{})
	worse.Add(Slice{CanaryTotal: 50, StableTotal: 950, CanaryEvents: 10, StableEvents: 1})
	worse.Add(Slice{CanaryTotal: 50, StableTotal: 950, CanaryEvents: 10, StableEvents: 1})
	fine := New(Config{})
	for range 200 {
		fine.Add(Slice{CanaryTotal: 250, StableTotal: 750, CanaryEvents: 12, StableEvents: 38})
	}
	quiet := New(Config{})
	quiet.Add(Slice{CanaryTotal: 250, StableTotal: 750})
	undecided := New(Config{})
	undecided.Add(Slice{CanaryTotal: 250, StableTotal: 750, CanaryEvents: 1, StableEvents: 2})

	tests := []struct {
		name    string
		in      []Named
		want    Verdict
		explain []string
	}{
		{"any worse fails", []Named{{"latency", "slow requests", fine.Result()}, {"error-rate", "errors", worse.Result()}}, Worse,
			[]string{"error-rate: canary worse than stable", "canary 20 errors in 100 (20%)", "stable 2 errors in 1900", "≥ 4.6 = log(1/α)", "α=0.01", "tolerated ratio 1.5"}},
		{"no worse with a quiet metric", []Named{{"error-rate", "errors", quiet.Result()}, {"latency", "slow requests", fine.Result()}}, NoWorse,
			[]string{"error-rate: no canary errors in 250 requests", "latency: canary no worse than stable"}},
		{"quiet alone is not enough", []Named{{"error-rate", "errors", quiet.Result()}}, Undecided, []string{"undecided"}},
		{"one undecided holds", []Named{{"error-rate", "errors", undecided.Result()}, {"latency", "slow requests", fine.Result()}}, Undecided,
			[]string{"error-rate: undecided"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, why := Combine(tt.in)
			if v != tt.want {
				t.Fatalf("verdict %s, want %s: %s", v, tt.want, why)
			}
			for _, s := range tt.explain {
				if !strings.Contains(why, s) {
					t.Errorf("explanation lacks %q:\n%s", s, why)
				}
			}
		})
	}
}

func TestALateFaultIsCaughtAsFastAsAnEarlyOne(t *testing.T) {
	// Ten minutes of a healthy canary build evidence against large ratios; the restarts of
	// the "worse" test keep it from slowing a fault that begins then.
	const runs = 20
	for seed := range runs {
		r := rand.New(rand.NewPCG(uint64(seed), 5))
		j := New(Config{BurstCap: BurstCapFor("error-rate")})
		for range 600 {
			j.Add(second(r, 1000, 0.05, 0.001, 0.001))
		}
		if v := j.Result().Verdict; v == Worse {
			t.Fatalf("seed %d: healthy canary failed", seed)
		}
		sec := 0
		for sec = 1; sec <= 60 && j.Result().Verdict != Worse; sec++ {
			j.Add(second(r, 1000, 0.05, 0.10, 0.001))
		}
		if sec > 6 {
			t.Fatalf("seed %d: a fault after 10 healthy minutes took %d s: %s", seed, sec-1, j.Result().Explain("error-rate", "errors"))
		}
	}
}
