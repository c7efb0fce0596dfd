package local

import (
	"context"
	"errors"
	"testing"
	"time"

	"ramp.dev/ramp/internal/analysis/judge"
	"ramp.dev/ramp/internal/control"
	"ramp.dev/ramp/internal/proxy"
)

func TestSeriesOfAMissingAndAQuietRollout(t *testing.T) {
	h := newHarness(t, time.Second)
	if _, err := h.c.Series(context.Background(), "nope"); !errors.Is(err, control.ErrNotFound) {
		t.Fatalf("Series of a missing rollout: %v, want ErrNotFound", err)
	}
	h.apply("chat-api", "chat", "      - setWeight: 20\n")
	s, err := h.c.Series(context.Background(), "chat-api")
	if err != nil {
		t.Fatal(err)
	}
	if s.Rollout != "chat-api" || s.StepSeconds != 5 || len(s.Revisions) != 0 || s.Revisions == nil {
		t.Fatalf("series of a rollout without traffic: %+v, want no revision (an empty list)", s)
	}
}

func TestSeriesPoint(t *testing.T) {
	sp := proxy.Span{From: 1000, Seconds: 5, Requests: 10, Errors: 2}
	for _, ms := range []int{10, 10, 10, 10, 10, 10, 10, 10, 10, 900} {
		sp.Latency.Observe(time.Duration(ms) * time.Millisecond)
	}
	sp.FirstToken.Observe(5 * time.Millisecond)
	biz := []businessSample{
		{at: 1001, revision: 2, metric: "triage", events: 1, total: 4},
		{at: 1004, revision: 2, metric: "triage", events: 1, total: 6},
		{at: 1005, revision: 2, metric: "triage", events: 9, total: 9}, // the next span
		{at: 1002, revision: 1, metric: "triage", events: 5, total: 5}, // another revision
	}
	p := point(sp, biz, 2)
	if !p.Time.Equal(time.Unix(1005, 0)) || p.Requests != 10 || p.Rate != 2 || p.Errors != 2 || *p.ErrorShare != 0.2 {
		t.Fatalf("point %+v", p)
	}
	if *p.LatencyP95 < 0.1 || *p.FirstTokenP95 > 0.01 {
		t.Fatalf("p95 latency %v (want the slow one's bucket), first token %v", *p.LatencyP95, *p.FirstTokenP95)
	}
	if got := p.Business["triage"]; got != 0.2 {
		t.Fatalf("triage share %v, want 2 events in 10 answers", got)
	}
	// No request: no share and no quantile, rather than a 0 that reads as perfect.
	q := point(proxy.Span{From: 1000, Seconds: 5}, nil, 2)
	if q.ErrorShare != nil || q.LatencyP95 != nil || q.FirstTokenP95 != nil || q.Business != nil || q.Rate != 0 {
		t.Fatalf("empty point %+v", q)
	}
}

func TestBusinessBookKeepsTheLastMinutes(t *testing.T) {
	var b businessBook
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	b.add("chat-api", t0, 2, 1, map[string]judge.Slice{"triage": {CanaryEvents: 1, CanaryTotal: 10, StableEvents: 0, StableTotal: 40}})
	if got := b.of("chat-api"); len(got) != 2 || got[0].revision != 2 || got[0].total != 10 || got[1].revision != 1 || got[1].total != 40 {
		t.Fatalf("after one round: %v", got)
	}
	b.add("chat-api", t0.Add(businessKeep+time.Second), 2, 1, map[string]judge.Slice{"triage": {CanaryTotal: 3, StableTotal: 3}})
	if got := b.of("chat-api"); len(got) != 2 || got[0].at != t0.Add(businessKeep+time.Second).Unix() {
		t.Fatalf("rounds older than %s are kept: %v", businessKeep, got)
	}
	if got := b.of("other"); len(got) != 0 {
		t.Fatalf("another rollout: %v", got)
	}
}
