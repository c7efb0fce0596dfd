// Command detect measures how fast ramp's sequential judge catches a bad canary, and how
// rarely it rolls back a good one, against fixed-window rules as Flagger and Argo Rollouts
// run them. The scenarios run in virtual time on seeded simulated traffic (all policies see
// the same traffic); -e2e also runs bad models (scenario A's 5xx and the chat team's five:
// failed triage, a late first token, a hang, a crash, a leak) through the real ramp binary,
// its proxy and the sample chat-api with examples/chat-api/rollout.yaml as it ships. See
// bench/README.md for the figures.
//
//	go run ./bench/detect                                  # simulations A-D (several minutes)
//	go run ./bench/detect -sims "" -e2e -e2e-rps 40        # the bad models end to end only
//	go run ./bench/detect -sims b -e2e -e2e-scenarios hang # B, and the hang end to end
package main

import (
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"ramp.dev/ramp/internal/proxy"
)

func main() {
	trials := flag.Int("trials", 100, "trials of scenarios A, C, D and the subtle regression")
	streams := flag.Int("streams", 1000, "A/A streams of scenario B")
	e2e := flag.Bool("e2e", false, "also run bad models end to end through ramp and chat-api (-e2e-scenarios)")
	e2eTrials := flag.Int("e2e-trials", 3, "end-to-end trials")
	e2eRPS := flag.Int("e2e-rps", 40, "end-to-end load (chats per second)")
	e2eScenarios := flag.String("e2e-scenarios", strings.Join(e2eNames(), ","), "end-to-end scenarios, comma-separated")
	e2eKeep := flag.Bool("e2e-keep", false, "keep the end-to-end trials' state and ramp's logs (printed directory)")
	sims := flag.String("sims", "a,b,subtle,c,d", `simulations to run, comma-separated ("" for none)`)
	flag.Parse()
	scns, err := parseE2E(*e2eScenarios)
	if err != nil {
		fmt.Fprintln(os.Stderr, "detect:", err)
		os.Exit(2)
	}
	want := map[string]bool{}
	for _, s := range strings.Split(*sims, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		switch s {
		case "a", "b", "subtle", "c", "d":
			want[s] = true
		default:
			fmt.Fprintf(os.Stderr, "detect: -sims: unknown simulation %q (want a, b, subtle, c or d)\n", s)
			os.Exit(2)
		}
	}

	tw := tabwriter.NewWriter(os.Stdout, 2, 4, 2, ' ', 0)
	if len(want) > 0 {
		fmt.Fprintln(tw, "scenario\tpolicy\ttrials\tcaught\tdetect p50\tdetect p95\tfailed p50\tfailed p95\tfalse rollbacks")
	}
	row := func(scn, pol string, outs []outcome, fault bool) {
		var det, fail []float64
		rb := 0
		for _, o := range outs {
			if o.rolledBack {
				rb++
				det = append(det, o.detect)
				fail = append(fail, o.failed)
			}
		}
		if !fault {
			fmt.Fprintf(tw, "%s\t%s\t%d\t-\t-\t-\t-\t-\t%d (%.2f%%)\n", scn, pol, len(outs), rb, 100*float64(rb)/float64(len(outs)))
			return
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%s\t%s\t%s\t-\n", scn, pol, len(outs), rb,
			secs(quantile(det, 0.5)), secs(quantile(det, 0.95)), num(quantile(fail, 0.5)), num(quantile(fail, 0.95)))
	}

	start := time.Now()
	// A: 1,000 rps, 5% canary, canary 5xx 0.1% → 10% at t = 60 s.
	if want["a"] {
		w := func(t int, _ *rand.Rand) (float64, [nMetrics]float64, [nMetrics]float64) {
			cp, sp := healthy(), healthy()
			if t >= 60 {
				cp[mErrors] = 0.10
			}
			return 0.05, cp, sp
		}
		outs := runTrials(*trials, 3600, 1000, 60, w, mErrors, func(r *rand.Rand) []policy {
			return []policy{newRampJudge([]int{mErrors, mSlow, mSlowFirstToken}, 0.01, nil, nil), flagger(r, mErrors), argo(r, mErrors)}
		})
		for i, name := range []string{"ramp judge (α 0.01)", "Flagger-style (1m, ≥99%, threshold 5)", "Argo docs (5m, ≥95%, failureLimit 3)"} {
			row("A: 5xx 0.1%→10%, 5% of 1,000 rps", name, outs[i], true)
		}
	}
	// B: A/A healthy canaries with bursts, 30 minutes each, weights 5% → 25% → 50%.
	if want["b"] {
		var by, byPending [nMetrics]int
		outs := runTrials(*streams, 1800, 1000, -1, aaWorld(), mErrors, func(r *rand.Rand) []policy {
			return []policy{newRampJudge([]int{mErrors, mSlow, mSlowFirstToken}, 0.01, &by, &byPending), flagger(r, mErrors), argo(r, mErrors)}
		})
		defer fmt.Printf("B: ramp's false rollbacks by metric: error-rate %d, latency %d (%d of them on requests in flight), first-token %d (%d in flight)\n",
			by[mErrors], by[mSlow], byPending[mSlow], by[mSlowFirstToken], byPending[mSlowFirstToken])
		for i, name := range []string{"ramp judge (α 0.01)", "Flagger-style", "Argo docs"} {
			row("B: A/A with bursts, 30 min", name, outs[i], false)
		}
	}
	// B, subtle: a new version whose 5xx rate is 0.5% against stable's 0.1% from its first
	// request, 5% canary.
	if want["subtle"] {
		w := func(t int, _ *rand.Rand) (float64, [nMetrics]float64, [nMetrics]float64) {
			cp, sp := healthy(), healthy()
			cp[mErrors] = 0.005
			return 0.05, cp, sp
		}
		outs := runTrials(*trials, 1800, 1000, 0, w, mErrors, func(r *rand.Rand) []policy {
			return []policy{newRampJudge([]int{mErrors, mSlow, mSlowFirstToken}, 0.01, nil, nil), flagger(r, mErrors), argo(r, mErrors)}
		})
		for i, name := range []string{"ramp judge (α 0.01)", "Flagger-style", "Argo docs"} {
			row("B: subtle 5xx 0.1%→0.5%, 30 min", name, outs[i], true)
		}
	}
	// C: latency p95 +30% at t = 60 s. Latency is log-normal (median 200 ms, σ 0.5); the
	// judge's threshold is stable's p95 rounded up to the proxy's histogram bucket.
	if want["c"] {
		const sigma = 0.5
		median := 200 * time.Millisecond
		p95 := time.Duration(float64(median) * math.Exp(1.6449*sigma))
		thr := proxy.RoundThreshold(p95)
		above := func(scale float64) float64 {
			z := (math.Log(float64(thr) / (scale * float64(median)))) / sigma
			return 0.5 * math.Erfc(z/math.Sqrt2)
		}
		w := func(t int, _ *rand.Rand) (float64, [nMetrics]float64, [nMetrics]float64) {
			cp, sp := healthy(), healthy()
			sp[mSlow], cp[mSlow] = above(1), above(1)
			if t >= 60 {
				cp[mSlow] = above(1.3)
			}
			return 0.05, cp, sp
		}
		outs := runTrials(*trials, 1800, 1000, 60, w, mSlow, func(r *rand.Rand) []policy {
			return []policy{newRampJudge([]int{mErrors, mSlow, mSlowFirstToken}, 0.01, nil, nil)}
		})
		row(fmt.Sprintf("C: latency p95 +30%% (threshold %s: stable %.1f%%, canary %.1f%% above)", thr.Round(time.Millisecond), 100*above(1), 100*above(1.3)),
			"ramp judge (α 0.01)", outs[0], true)
	}
	// D: triage success 98% → 90% (HTTP 200 throughout), counted per revision (scrape).
	if want["d"] {
		w := func(t int, _ *rand.Rand) (float64, [nMetrics]float64, [nMetrics]float64) {
			cp, sp := healthy(), healthy()
			cp[mTriage], sp[mTriage] = 0.02, 0.02
			if t >= 60 {
				cp[mTriage] = 0.10
			}
			return 0.05, cp, sp
		}
		outs := runTrials(*trials, 1800, 1000, 60, w, mTriage, func(r *rand.Rand) []policy {
			return []policy{newRampJudge([]int{mErrors, mSlow, mSlowFirstToken, mTriage}, 0.01, nil, nil)}
		})
		row("D: triage success 98%→90% at HTTP 200", "ramp judge (α 0.01, 4 metrics)", outs[0], true)
	}
	tw.Flush()
	if len(want) > 0 {
		fmt.Printf("\nsimulations took %s (virtual time; failed = canary requests failed between the fault and weight 0)\n", time.Since(start).Round(time.Millisecond))
	}

	if *e2e {
		if err := runE2E(scns, *e2eTrials, *e2eRPS, *e2eKeep); err != nil {
			fmt.Fprintln(os.Stderr, "e2e:", err)
			os.Exit(1)
		}
	}
}

// healthy is every metric at its healthy level: 0.1% errors, 4% above the latency and first-token
// thresholds, 2% failed triage answers.
func healthy() [nMetrics]float64 {
	return [nMetrics]float64{mErrors: 0.001, mSlow: 0.04, mSlowFirstToken: 0.04, mTriage: 0.02}
}

// aaWorld is a healthy canary (both sides alike) whose weight goes 5% → 25% → 50% every 10
// minutes, whose base error rate drifts minute by minute, with shared outages (2-10 s,
// 5-50% of everyone's requests fail), shared slow spells (30-80% of requests above the
// latency threshold) and connection resets that fail 1-5 requests of one instance at once.
func aaWorld() world {
	type state struct {
		rate                 float64
		outage, slow         int
		outageP, slowP       float64
		canaryOdd, stableOdd float64
	}
	var st *state
	return func(t int, r *rand.Rand) (float64, [nMetrics]float64, [nMetrics]float64) {
		if t == 0 || st == nil {
			st = &state{rate: 0.001}
		}
		weight := []float64{0.05, 0.25, 0.5}[min(t/600, 2)]
		if t%60 == 0 {
			st.rate = 0.001 * math.Exp(0.5*r.NormFloat64())
		}
		if st.outage == 0 && r.Float64() < 1.0/300 {
			st.outage, st.outageP = 2+r.IntN(9), 0.05+0.45*r.Float64()
		}
		if st.slow == 0 && r.Float64() < 1.0/300 {
			st.slow, st.slowP = 2+r.IntN(9), 0.3+0.5*r.Float64()
		}
		cp, sp := healthy(), healthy()
		cp[mErrors], sp[mErrors] = st.rate, st.rate
		if st.outage > 0 {
			st.outage--
			cp[mErrors], sp[mErrors] = st.outageP, st.outageP
		}
		if st.slow > 0 {
			st.slow--
			cp[mSlow], sp[mSlow] = st.slowP, st.slowP
			cp[mSlowFirstToken], sp[mSlowFirstToken] = st.slowP, st.slowP
		}
		// A connection reset: k requests of one instance fail together; an instance is the
		// canary's with probability equal to its weight (instances follow the weight).
		if r.Float64() < 1.0/60 {
			k := float64(1 + r.IntN(5))
			if r.Float64() < weight {
				cp[mErrors] += k / (1000 * weight)
			} else {
				sp[mErrors] += k / (1000 * (1 - weight))
			}
		}
		return weight, cp, sp
	}
}

// runTrials runs n seeded trials and returns each policy's outcomes.
func runTrials(n, secs int, rps float64, faultAt int, w world, failMetric int, mk func(*rand.Rand) []policy) [][]outcome {
	var out [][]outcome
	for i := range n {
		r := rand.New(rand.NewPCG(uint64(i), 99))
		ps := mk(r)
		if out == nil {
			out = make([][]outcome, len(ps))
		}
		for j, o := range trial(uint64(i), secs, rps, faultAt, w, failMetric, ps) {
			out[j] = append(out[j], o)
		}
	}
	return out
}

func quantile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return s[min(max(i, 0), len(s)-1)]
}

func secs(v float64) string {
	if math.IsNaN(v) {
		return "-"
	}
	if v >= 120 {
		return fmt.Sprintf("%.1f min", v/60)
	}
	return fmt.Sprintf("%.1f s", v)
}

func num(v float64) string {
	if math.IsNaN(v) {
		return "-"
	}
	return fmt.Sprintf("%.0f", v)
}
