package judge

import (
	"math/rand/v2"
	"strings"
	"testing"
)

// runAgainstRecord feeds secs seconds of a revision serving rate requests a second with event
// probability p to a test against a record of recTotal requests at rate p0, and returns the
// second it was judged worse (-1 if never) and the final result.
func runAgainstRecord(r *rand.Rand, p0 float64, recTotal int64, p float64, rate int64, secs int) (int, Result) {
	rec := Slice{StableTotal: recTotal, StableEvents: binomial(r, recTotal, p0)}
	t := NewAgainstRecord(Config{Alpha: 0.01}, rec)
	for s := range secs {
		n := poisson(r, float64(rate))
		t.Add(Slice{CanaryTotal: n, CanaryEvents: binomial(r, n, p)})
		if t.Result().Verdict == Worse {
			return s, t.Result()
		}
	}
	return -1, t.Result()
}

// A revision as good as its predecessor's record is almost never failed, however long it is
// watched and however often it is looked at; one much worse is failed within seconds.
func TestAgainstRecordIsValidAndQuick(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 11))
	for _, c := range []struct {
		name string
		p0   float64
	}{{"errors 0.2%", 0.002}, {"slow 5%", 0.05}, {"none", 0}} {
		failed := 0
		const runs = 200
		for range runs {
			if at, _ := runAgainstRecord(r, c.p0, 6000, c.p0, 40, 300); at >= 0 {
				failed++
			}
		}
		if failed > runs/50 { // α = 1%; allow 2% for sampling
			t.Errorf("%s: a revision as good as its record was failed in %d of %d runs", c.name, failed, runs)
		}
	}
	for _, c := range []struct {
		name      string
		p0, p     float64
		withinSec int
	}{{"errors 0.2% -> 10%", 0.002, 0.10, 5}, {"slow 5% -> 40%", 0.05, 0.40, 5}, {"none -> 5%", 0, 0.05, 10}} {
		at, res := runAgainstRecord(r, c.p0, 6000, c.p, 40, 300)
		if at < 0 || at > c.withinSec {
			t.Errorf("%s: judged worse at second %d, want within %d: %s", c.name, at, c.withinSec, res.Explain("m", "events"))
		}
		if !strings.Contains(res.Explain("error-rate", "errors"), "new stable worse than the previous revision's record") {
			t.Errorf("%s: explanation %q", c.name, res.Explain("error-rate", "errors"))
		}
	}
}

// A record too short judges nothing and says so.
func TestAgainstShortRecordJudgesNothing(t *testing.T) {
	tst := NewAgainstRecord(Config{}, Slice{StableTotal: RecordMinTotal - 1})
	for range 100 {
		tst.Add(Slice{CanaryTotal: 50, CanaryEvents: 50})
	}
	res := tst.Result()
	if res.Verdict == Worse {
		t.Fatalf("judged worse on a record of %d requests", RecordMinTotal-1)
	}
	if got := res.Explain("error-rate", "errors"); !strings.Contains(got, "not judged") {
		t.Errorf("explanation %q does not say it was not judged", got)
	}
}
