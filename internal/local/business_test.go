package local

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/analysis/judge"
	"ramp.dev/ramp/test/testkit"
)

var triageMetric = v1alpha1.JudgeBusinessMetric{Name: "triage", Metric: "chat_triage_total", Events: map[string]string{"outcome": "failed"}}

// triagePage is a chat-api metrics page; start is process_start_time_seconds (0: none).
func triagePage(start int64, success, failed int) string {
	var b strings.Builder
	if start > 0 {
		fmt.Fprintf(&b, "# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds %d\n", start)
	}
	b.WriteString("# TYPE chat_triage_total counter\n")
	if success >= 0 {
		fmt.Fprintf(&b, "chat_triage_total{outcome=\"success\"} %d\n", success)
	}
	if failed >= 0 {
		fmt.Fprintf(&b, "chat_triage_total{outcome=\"failed\"} %d\n", failed)
	}
	return b.String()
}

func parsePage(t *testing.T, text string) map[string]*dto.MetricFamily {
	t.Helper()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	f, err := parser.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("parse %q: %v", text, err)
	}
	return f
}

func TestBusinessCountersIncreases(t *testing.T) {
	since := time.Unix(1000, 0)
	const failed = "FAILED" // the scrape of this instance failed
	type round struct {
		pages  map[string]string // by address; absent = not listed
		events int64
		total  int64
	}
	tests := []struct {
		name   string
		rounds []round
	}{
		{"an instance running before the run counts from its first scrape", []round{
			{map[string]string{"a": triagePage(900, 100, 5)}, 0, 0},
			{map[string]string{"a": triagePage(900, 110, 7)}, 2, 12},
			{map[string]string{"a": triagePage(900, 110, 7)}, 0, 0},
		}},
		{"an instance started during the run counts from zero", []round{
			{map[string]string{"a": triagePage(1001, 10, 3)}, 3, 13},
		}},
		{"a series that appears later counts from zero", []round{
			{map[string]string{"a": triagePage(900, 100, -1)}, 0, 0},
			{map[string]string{"a": triagePage(900, 104, 4)}, 4, 8},
		}},
		{"a counter reset counts the new value", []round{
			{map[string]string{"a": triagePage(0, 100, 20)}, 0, 0},
			{map[string]string{"a": triagePage(0, 3, 1)}, 1, 4},
			{map[string]string{"a": triagePage(0, 5, 2)}, 1, 3},
		}},
		{"a restart at the same address counts from zero", []round{
			{map[string]string{"a": triagePage(900, 100, 20)}, 0, 0},
			{map[string]string{"a": triagePage(1005, 150, 30)}, 30, 180},
		}},
		{"instances appear and disappear", []round{
			{map[string]string{"a": triagePage(900, 100, 0)}, 0, 0},
			{map[string]string{"a": triagePage(900, 110, 0), "b": triagePage(950, 50, 50)}, 0, 10}, // b was running: baseline
			{map[string]string{"b": triagePage(950, 60, 55)}, 5, 15},                               // a is gone
			{map[string]string{"a": triagePage(900, 120, 1), "b": triagePage(950, 60, 55)}, 0, 0},  // a is back: baseline again
			{map[string]string{"a": triagePage(900, 121, 2), "b": triagePage(950, 61, 55)}, 1, 3},
		}},
		{"a failed scrape counts the increase at the next one", []round{
			{map[string]string{"a": triagePage(900, 100, 0), "b": triagePage(900, 0, 0)}, 0, 0},
			{map[string]string{"a": failed, "b": triagePage(900, 1, 0)}, 0, 1},
			{map[string]string{"a": triagePage(900, 110, 4), "b": triagePage(900, 2, 0)}, 4, 15},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBusinessCounters(since)
			for i, r := range tt.rounds {
				pages := map[string]map[string]map[string]*dto.MetricFamily{}
				for addr, text := range r.pages {
					if text == failed {
						pages[addr] = nil
						continue
					}
					pages[addr] = map[string]map[string]*dto.MetricFamily{"/metrics": parsePage(t, text)}
				}
				got, errs := b.observe([]v1alpha1.JudgeBusinessMetric{triageMetric}, pages)
				if len(errs) > 0 {
					t.Fatalf("round %d: errors %v", i, errs)
				}
				if c := got["triage"]; c.events != r.events || c.total != r.total {
					t.Fatalf("round %d: %d events in %d, want %d in %d", i, c.events, c.total, r.events, r.total)
				}
			}
		})
	}
}

func TestBusinessCountersRefuseAGauge(t *testing.T) {
	b := newBusinessCounters(time.Unix(1000, 0))
	page := parsePage(t, "# TYPE chat_triage_total gauge\nchat_triage_total{outcome=\"failed\"} 3\n")
	_, errs := b.observe([]v1alpha1.JudgeBusinessMetric{triageMetric}, map[string]map[string]map[string]*dto.MetricFamily{"a": {"/metrics": page}})
	if len(errs) == 0 || !strings.Contains(errs[0], "is not a counter") {
		t.Fatalf("errors %v, want chat_triage_total is not a counter", errs)
	}
}

func TestBusinessScraperRoundsOverHTTP(t *testing.T) {
	// Given a canary and a stable instance that ramp started before the judge run
	canary := testkit.NewMetricsPage(t, triagePage(900, 10, 0), "/metrics")
	stable := testkit.NewMetricsPage(t, triagePage(900, 100, 1), "/metrics")
	down := httptest.NewServer(http.NotFoundHandler())
	down.Close() // a stable instance that does not answer
	instances := func(_ string, rev int64) []string {
		if rev == 2 {
			return []string{canary.Addr()}
		}
		return []string{stable.Addr(), strings.TrimPrefix(down.URL, "http://")}
	}
	b := newBusinessScraper(context.Background(), "chat-api", 2, 1, time.Unix(1000, 0), []v1alpha1.JudgeBusinessMetric{triageMetric})
	defer b.stop()
	kicked := make(chan struct{}, 1)
	kick := func() { kicked <- struct{}{} }
	next := func(now time.Time) businessRound {
		t.Helper()
		b.start(now, instances, kick)
		select {
		case <-kicked:
		case <-time.After(10 * time.Second):
			t.Fatal("no round finished")
		}
		rounds := b.take()
		if len(rounds) != 1 {
			t.Fatalf("%d rounds, want 1", len(rounds))
		}
		return rounds[0]
	}
	t0 := time.Now()
	// When they are scraped once (the baseline), then after the canary failed 5 of 10 answers
	// and stable 1 of 20
	r := next(t0)
	if (r.slices["triage"] != judge.Slice{}) || !r.from.IsZero() {
		t.Fatalf("first round %+v, want nothing counted", r)
	}
	if len(r.errs) != 1 || !strings.Contains(r.errs[0], "scrape http://") {
		t.Fatalf("errors %v, want the closed instance's", r.errs)
	}
	// A second start within businessScrapeEvery does nothing.
	b.start(t0.Add(businessScrapeEvery/2), instances, kick)
	canary.Set(triagePage(900, 15, 5))
	stable.Set(triagePage(900, 119, 2))
	r = next(t0.Add(businessScrapeEvery))
	// Then the round holds both sides' increases
	want := judge.Slice{CanaryTotal: 10, CanaryEvents: 5, StableTotal: 20, StableEvents: 1}
	if r.slices["triage"] != want || !r.from.Equal(t0) {
		t.Fatalf("second round %+v, want %+v from %s", r, want, t0)
	}
}
