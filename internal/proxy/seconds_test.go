package proxy

import (
	"net/http"
	"testing"
	"time"
)

func TestHistogramAbove(t *testing.T) {
	var h Histogram
	for _, ms := range []int{1, 5, 10, 19, 20, 21, 26, 40, 400} {
		h.Observe(time.Duration(ms) * time.Millisecond)
	}
	thr := RoundThreshold(20 * time.Millisecond)
	if thr < 20*time.Millisecond || thr > 25*time.Millisecond {
		t.Fatalf("RoundThreshold(20ms) = %v, want the bucket bound just above", thr)
	}
	if RoundThreshold(thr) != thr {
		t.Fatalf("RoundThreshold is not idempotent: %v → %v", thr, RoundThreshold(thr))
	}
	// Above counts exactly the observations above the rounded threshold: 26, 40 and 400 ms,
	// and 21 ms when it is above the bound.
	want := int64(3)
	if 21*time.Millisecond > thr {
		want++
	}
	if got := h.Above(20 * time.Millisecond); got != want {
		t.Fatalf("Above(20ms) = %d, want %d (threshold %v)", got, want, thr)
	}
	if got := h.Above(time.Hour); got != 0 {
		t.Fatalf("Above(1h) = %d", got)
	}
}

// The proxy measures durations with its clock; the fake clock stands still during a request,
// so every request here takes 0 and only counts are checked.
func TestSecondsCountsPerSecond(t *testing.T) {
	clk := &fakeClock{now: time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)}
	up := upstream(t, "a", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("fail") != "" {
			http.Error(w, "boom", http.StatusInternalServerError)
			return
		}
	})
	p := New("chat-api", Options{Logger: quietLogger(), Clock: clk.Now})
	p.SetTable(Table{Pools: []Pool{{Revision: 1, Weight: 100, Backends: []Backend{up}}}})
	f := serve(t, p)
	t0 := clk.Now()
	for _, path := range []string{"/", "/?fail=1", "/", "/"} {
		f.get(t, path)
	}
	statsOf(t, p, 1, t0, 4)
	clk.Advance(2 * time.Second)
	f.get(t, "/?fail=1")
	statsOf(t, p, 1, t0, 5)

	thr := RoundThreshold(20 * time.Millisecond)
	got := p.Seconds(1, t0.Unix(), t0.Unix()+5, Thresholds{Latency: thr, TTFB: thr, FirstToken: thr})
	want := []Second{
		{Unix: t0.Unix(), Requests: 4, Errors: 1, TTFBCount: 4, FirstTokenCount: 1}, // only the 500 had a body
		{Unix: t0.Unix() + 2, Requests: 1, Errors: 1, TTFBCount: 1, FirstTokenCount: 1},
	}
	if len(got) != len(want) {
		t.Fatalf("Seconds = %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("second %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	if got := p.Seconds(1, t0.Unix()+1, t0.Unix()+1, Thresholds{Latency: thr}); len(got) != 0 {
		t.Errorf("a second with no request: %+v", got)
	}
	if got := p.Seconds(7, t0.Unix(), t0.Unix()+5, Thresholds{}); got != nil {
		t.Errorf("unknown revision: %+v", got)
	}
}
