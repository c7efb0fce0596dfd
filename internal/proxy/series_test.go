package proxy

import (
	"net/http"
	"slices"
	"testing"
	"time"
)

// Spans cut the last 10 minutes of a revision into equal spans that end with the last whole
// second, with the requests of each second in its span.
func TestSpansCutTheWindowIntoSteps(t *testing.T) {
	clk := &fakeClock{now: time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)}
	up := upstream(t, "a", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("fail") != "" {
			http.Error(w, "boom", http.StatusInternalServerError)
		}
	})
	p := New("chat-api", Options{Logger: quietLogger(), Clock: clk.Now})
	p.SetTable(Table{Pools: []Pool{{Revision: 1, Weight: 100, Backends: []Backend{up}}}})
	f := serve(t, p)
	t0 := clk.Now()
	for _, path := range []string{"/", "/?fail=1", "/"} {
		f.get(t, path)
	}
	clk.Advance(7 * time.Second)
	f.get(t, "/?fail=1")
	clk.Advance(time.Second)
	statsOf(t, p, 1, t0, 4)

	spans := p.Spans(1, 5*time.Second)
	if len(spans) != 120 {
		t.Fatalf("%d spans of 5s, want 120 over 10 minutes", len(spans))
	}
	last := spans[len(spans)-1]
	if end := last.From + last.Seconds; end != clk.Now().Unix() {
		t.Fatalf("the last span ends at %d, want %d (the last whole second)", end, clk.Now().Unix())
	}
	for i := 1; i < len(spans); i++ {
		if spans[i].From != spans[i-1].From+5 || spans[i].Seconds != 5 {
			t.Fatalf("span %d: %+v after %+v", i, spans[i], spans[i-1])
		}
	}
	var got []Span
	for _, sp := range spans {
		if sp.Requests > 0 {
			got = append(got, sp)
		}
	}
	// t0 and t0+7 fall in different spans: the last one holds t0+3..t0+7.
	if len(got) != 2 || got[0].Requests != 3 || got[0].Errors != 1 || got[0].Errors5xx != 1 || got[1].Requests != 1 || got[1].Errors != 1 {
		t.Fatalf("spans with requests: %+v, want 3 (1 error) then 1 (1 error)", got)
	}
	if got[1].From != last.From || got[0].From > t0.Unix() || got[0].From+5 <= t0.Unix() {
		t.Fatalf("spans at %d and %d, want t0=%d in the first and the last span", got[0].From, got[1].From, t0.Unix())
	}
	if got[0].Latency.Count() != 3 || got[0].FirstToken.Count() != 1 {
		t.Fatalf("first span: %d latencies, %d first tokens, want 3 and 1 (only the 500 had a body)", got[0].Latency.Count(), got[0].FirstToken.Count())
	}
	if revs := p.Revisions(); !slices.Equal(revs, []int64{1}) {
		t.Fatalf("Revisions() = %v, want [1]", revs)
	}
	if p.Spans(7, 5*time.Second) != nil || p.Spans(1, 0) != nil {
		t.Fatal("an unknown revision or a zero step gives spans")
	}
}
