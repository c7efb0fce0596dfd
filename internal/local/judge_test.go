package local

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/analysis/judgerun"
	"ramp.dev/ramp/internal/proxy"
	"ramp.dev/ramp/internal/spec"
)

// judgeClock is the proxy's clock in the judge tests: the instances move it forward by the
// time they "take", so the proxy measures exact durations with no sleep.
type judgeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *judgeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *judgeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// judgeWorld is a real proxy in front of a stable (revision 1) and a canary (revision 2)
// instance; requests with x-rev: 2 go to the canary. Each instance takes its delay on the
// fake clock; a delay below zero, or a request for /hang, hangs until it is cancelled.
type judgeWorld struct {
	t     *testing.T
	clk   *judgeClock
	p     *proxy.Proxy
	run   *v1alpha1.AnalysisRunStatus
	st    *judgeState
	set   spec.JudgeSettings
	hangs sync.WaitGroup
}

func newJudgeWorld(t *testing.T, stable, canary time.Duration, j *v1alpha1.CanaryJudge) *judgeWorld {
	t.Helper()
	clk := &judgeClock{now: time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC)}
	instance := func(d time.Duration) proxy.Backend {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if d < 0 || r.URL.Path == "/hang" {
				<-r.Context().Done()
				return
			}
			clk.Advance(d)
			w.Write([]byte("data: triage\n\n"))
		}))
		t.Cleanup(s.Close)
		return proxy.Backend{ID: s.URL, Addr: s.Listener.Addr().String()}
	}
	p := proxy.New("chat-api", proxy.Options{Clock: clk.Now})
	p.SetTable(proxy.Table{
		Pools: []proxy.Pool{
			{Revision: 1, Role: "stable", Weight: 100, Backends: []proxy.Backend{instance(stable)}},
			{Revision: 2, Role: "canary", Backends: []proxy.Backend{instance(canary)}},
		},
		HeaderRoutes: []proxy.HeaderRoute{{Name: "canary", Match: []proxy.Match{{Header: "x-rev", Exact: "2"}}, Revision: 2}},
	})
	set := spec.Judge(&v1alpha1.CanaryStrategy{Judge: j})
	w := &judgeWorld{t: t, clk: clk, p: p, set: set}
	// Stable's record before the canary: its thresholds.
	w.send(1, 60)
	w.clk.Advance(time.Second)
	w.run = &v1alpha1.AnalysisRunStatus{Name: "judge-2", Kind: v1alpha1.AnalysisKindJudge, Revision: 2, BaselineRevision: 1,
		StartedAt: metav1.NewTime(clk.Now()), Phase: v1alpha1.AnalysisRunning}
	w.st = &judgeState{Run: judgerun.New(w.run, set, judgeMetrics(set)), next: w.run.StartedAt.Unix()}
	return w
}

// send sends n requests to revision rev, one after the other, and checks they succeed.
func (w *judgeWorld) send(rev int64, n int) {
	w.t.Helper()
	for range n {
		req := httptest.NewRequest(http.MethodGet, "/v1/chat", nil)
		if rev == 2 {
			req.Header.Set("x-rev", "2")
		}
		rec := httptest.NewRecorder()
		w.p.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			w.t.Fatalf("revision %d answered %d: %s", rev, rec.Code, rec.Body)
		}
	}
}

// hang sends n requests to revision rev that do not end until ctx is cancelled, and waits
// until the proxy has them in flight.
func (w *judgeWorld) hang(ctx context.Context, rev int64, n int) {
	w.t.Helper()
	open, _ := w.p.InFlightRequests(rev)
	for range n {
		w.hangs.Add(1)
		go func() {
			defer w.hangs.Done()
			req := httptest.NewRequest(http.MethodGet, "/hang", nil).WithContext(ctx)
			if rev == 2 {
				req.Header.Set("x-rev", "2")
			}
			w.p.ServeHTTP(httptest.NewRecorder(), req)
		}()
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if now, _ := w.p.InFlightRequests(rev); now >= open+int64(n) {
			return
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("%d requests to revision %d not in flight after 5s", n, rev)
		}
		time.Sleep(time.Millisecond)
	}
}

// second lets a second pass and feeds the judge, as the controller's loop does each second,
// and returns the run's phase.
func (w *judgeWorld) second() v1alpha1.AnalysisPhase {
	w.clk.Advance(time.Second)
	w.st.feed(w.p, w.set, w.run, w.clk.Now())
	w.st.Report(w.run, nil)
	return w.run.Phase
}

// The judge's floor: a canary three times slower in microseconds is not worse; with the
// floor at 0 it is (only the ratio counts); a canary 1.5 s slower is worse with the floor.
func TestJudgeLatencyFloor(t *testing.T) {
	zero := intstr.FromInt32(0)
	tests := []struct {
		name           string
		stable, canary time.Duration
		judge          *v1alpha1.CanaryJudge
		worse          bool
	}{
		{"microseconds, default floor", 100 * time.Microsecond, 300 * time.Microsecond, nil, false},
		{"microseconds, no floor", 100 * time.Microsecond, 300 * time.Microsecond, &v1alpha1.CanaryJudge{MinLatencyIncrease: &zero}, true},
		{"1.5s slower, default floor", 10 * time.Millisecond, 1510 * time.Millisecond, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newJudgeWorld(t, tt.stable, tt.canary, tt.judge)
			failedAt := 0
			for i := 1; i <= 30 && failedAt == 0; i++ {
				// Stable answers on both sides of the canary's, mostly in the same second.
				w.send(1, 10)
				w.send(2, 1)
				w.send(1, 10)
				if w.second() == v1alpha1.AnalysisFailed {
					failedAt = i
				}
			}
			if tt.worse && failedAt == 0 {
				t.Fatalf("canary at %v against stable's %v not judged worse in 30 s: %s", tt.canary, tt.stable, w.run.Message)
			}
			if !tt.worse && failedAt != 0 {
				t.Fatalf("canary at %v against stable's %v judged worse after %d s: %s", tt.canary, tt.stable, failedAt, w.run.Message)
			}
			t.Logf("after %d s: %s", failedAt, w.run.Message)
		})
	}
}

// A canary that accepts requests and never answers is judged worse on its requests in
// flight, before any of them ends.
func TestJudgeCountsHangingRequestsInFlight(t *testing.T) {
	w := newJudgeWorld(t, 20*time.Millisecond, -1, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer func() { cancel(); w.hangs.Wait() }()
	failedAt := 0
	for i := 1; i <= 20 && failedAt == 0; i++ {
		w.send(1, 10)
		w.hang(ctx, 2, 1)
		w.send(1, 10)
		if w.second() == v1alpha1.AnalysisFailed {
			failedAt = i
		}
	}
	if failedAt == 0 {
		t.Fatalf("a hanging canary not judged worse in 20 s: %s", w.run.Message)
	}
	if !strings.Contains(w.run.Message, "still in flight") {
		t.Fatalf("the verdict does not say it counted requests in flight: %s", w.run.Message)
	}
	if n := w.p.Stats(2, time.Time{}).Requests; n != 0 {
		t.Fatalf("%d canary requests ended; the judge must decide on requests in flight", n)
	}
	t.Logf("after %d s: %s", failedAt, w.run.Message)
}

// Requests in flight are weighed against the traffic of the second they arrived in: when both
// revisions have the same share of long requests, the canary is not judged worse for its own.
func TestJudgeInFlightOfAHealthyCanaryIsNoEvidence(t *testing.T) {
	w := newJudgeWorld(t, 20*time.Millisecond, 20*time.Millisecond, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer func() { cancel(); w.hangs.Wait() }()
	for i := 1; i <= 40; i++ {
		// Stable: 20 requests a second, 2 of them long; the canary: 2 a second, one long
		// every 5 seconds: 10% of each revision's requests stay in flight.
		w.send(1, 9)
		w.hang(ctx, 1, 1)
		w.send(2, 1)
		if i%5 == 0 {
			w.hang(ctx, 2, 1)
		} else {
			w.send(2, 1)
		}
		w.send(1, 9)
		w.hang(ctx, 1, 1)
		if w.second() == v1alpha1.AnalysisFailed {
			t.Fatalf("a canary with stable's share of long requests judged worse after %d s: %s", i, w.run.Message)
		}
	}
	t.Logf("after 40 s: %s", w.run.Message)
}
