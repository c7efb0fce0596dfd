package trafficmetrics

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/intstr"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/analysis"
	"ramp.dev/ramp/internal/spec"
	"ramp.dev/ramp/test/promenv"
)

// revision is what one revision serves per scrape of the series page: requests, 5xx among
// them, and every request's duration in (lo, hi] of one histogram bucket.
type revision struct {
	requests, errors int64
	bucket           int // index into the router's bucket bounds: durations in (bounds[i-1], bounds[i]]
}

// Bucket bounds of the histograms served: Istio's in milliseconds, NGINX's in seconds.
var (
	istioBounds = []string{"50", "100", "250", "500", "1000"}
	nginxBounds = []string{"0.05", "0.1", "0.25", "0.5", "1"}
)

// routerSeries writes the router's series for one revision after n scrapes: cumulative
// counters that grow by the revision's numbers at each scrape.
func routerSeries(b *strings.Builder, router, labels string, r revision, n int64) {
	metric, hist, bounds := "istio_requests_total", "istio_request_duration_milliseconds", istioBounds
	code := "response_code"
	if router == Nginx {
		metric, hist, bounds, code = "nginx_ingress_controller_requests", "nginx_ingress_controller_request_duration_seconds", nginxBounds, "status"
	}
	fmt.Fprintf(b, "%s{%s,%s=\"200\"} %d\n", metric, labels, code, (r.requests-r.errors)*n)
	fmt.Fprintf(b, "%s{%s,%s=\"503\"} %d\n", metric, labels, code, r.errors*n)
	for i, le := range bounds {
		v := int64(0)
		if i >= r.bucket {
			v = r.requests * n
		}
		fmt.Fprintf(b, "%s_bucket{%s,le=%q} %d\n", hist, labels, le, v)
	}
	fmt.Fprintf(b, "%s_bucket{%s,le=\"+Inf\"} %d\n", hist, labels, r.requests*n)
}

// seriesServer serves Istio and NGINX series for namespaces "bad" (the canary fails half its
// requests, in 250-500ms) and "good" (the canary like stable: 1% errors, 50-100ms), each with
// a stable and a canary revision, and decoys that must not be counted: Istio's source
// reporter, and another namespace's Ingress. It returns its host:port and a scrape counter.
func seriesServer(t *testing.T) (string, *atomic.Int64) {
	stable := revision{requests: 100, errors: 1, bucket: 1}
	canary := map[string]revision{
		"bad":  {requests: 20, errors: 10, bucket: 3},
		"good": {requests: 20, errors: 0, bucket: 1},
	}
	var scrapes atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := scrapes.Add(1)
		b := &strings.Builder{}
		b.WriteString("# TYPE istio_requests_total counter\n# TYPE nginx_ingress_controller_requests counter\n")
		for _, ns := range []string{"bad", "good"} {
			for _, rev := range []struct {
				svc, nginxCanary string
				r                revision
			}{{"chat-api-stable", "", stable}, {"chat-api-canary", ns + "-chat-api-canary-80", canary[ns]}} {
				routerSeries(b, Istio, fmt.Sprintf(`reporter="destination",destination_service_namespace=%q,destination_service_name=%q`, ns, rev.svc), rev.r, n)
				routerSeries(b, Istio, fmt.Sprintf(`reporter="source",destination_service_namespace=%q,destination_service_name=%q`, ns, rev.svc), revision{requests: 1000, errors: 1000}, n)
				routerSeries(b, Nginx, fmt.Sprintf(`namespace=%q,ingress="chat-api",service="chat-api-stable",canary=%q,method="GET",path="/"`, ns, rev.nginxCanary), rev.r, n)
			}
		}
		routerSeries(b, Nginx, `namespace="other",ingress="chat-api",service="chat-api-stable",canary="x",method="GET",path="/"`, revision{requests: 1000, errors: 1000}, n)
		fmt.Fprint(w, b.String())
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://"), &scrapes
}

func selectors(router, ns string) (canary, stable Selector) {
	if router == Istio {
		return Selector{Router: Istio, Namespace: ns, Service: "chat-api-canary"}, Selector{Router: Istio, Namespace: ns, Service: "chat-api-stable"}
	}
	ing := []string{"chat-api", "chat-api-chat-api-canary"}
	return Selector{Router: Nginx, Namespace: ns, Ingresses: ing, Canary: true}, Selector{Router: Nginx, Namespace: ns, Ingresses: ing}
}

type fixedScope struct{ sc Scope }

func (f fixedScope) Scope(context.Context, analysis.Target) (Scope, error) { return f.sc, nil }

// TestRealPrometheus measures the builtin metrics through a real Prometheus scraping Istio and
// NGINX series, and feeds the judge from the same counters.
func TestRealPrometheus(t *testing.T) {
	c, addr := scrapedPrometheus(t, seriesServer)
	ctx := context.Background()

	near := func(want float64) func(float64) bool {
		return func(v float64) bool { return math.Abs(v-want) < 1e-9 }
	}
	for _, router := range Routers() {
		t.Run(router, func(t *testing.T) {
			badCanary, badStable := selectors(router, "bad")
			goodCanary, _ := selectors(router, "good")
			for _, tc := range []struct {
				name             string
				q                Query
				sel              Selector
				check            func(float64) bool
				wantInconclusive bool
			}{
				{"error-rate of a bad canary", Query{Metric: "error-rate", Window: 3 * time.Second}, badCanary, near(0.5), false},
				{"error-rate of stable", Query{Metric: "error-rate", Window: 3 * time.Second}, badStable, near(0.01), false},
				{"error-rate of a good canary", Query{Metric: "error-rate", Window: 3 * time.Second}, goodCanary, near(0), false},
				// The bad canary's requests take 250-500ms: p95 interpolates to 487.5ms.
				{"latency-p95 of a bad canary", Query{Metric: "latency-p95", Window: 3 * time.Second}, badCanary, near(0.4875), false},
				{"latency-p50 of stable", Query{Metric: "latency-p50", Window: 3 * time.Second}, badStable, near(0.075), false},
				{"request-rate of stable", Query{Metric: "request-rate", Window: 3 * time.Second}, badStable, func(v float64) bool { return v > 50 && v < 200 }, false},
				{"request-count of the canary", Query{Metric: "request-count", Window: 3 * time.Second}, badCanary, func(v float64) bool { return v >= 20 }, false},
				{"minRequests not met", Query{Metric: "error-rate", Window: 3 * time.Second, MinRequests: 1e9}, badCanary, nil, true},
				{"no such service", Query{Metric: "error-rate", Window: 3 * time.Second}, Selector{Router: router, Namespace: "nobody", Service: "x", Ingresses: []string{"x"}}, nil, true},
			} {
				t.Run(tc.name, func(t *testing.T) {
					tc.q.Now = time.Now()
					v, err := c.Measure(ctx, tc.q, tc.sel)
					if err != nil {
						t.Fatal(err)
					}
					if v.Inconclusive != tc.wantInconclusive || (!v.Inconclusive && !tc.check(v.Result)) {
						t.Errorf("got %+v", v)
					}
				})
			}

			// The provider measures the canary and, asked for it, stable as the baseline.
			p := NewProvider(fixedScope{Scope{Address: addr, Revision: badCanary, Baseline: badStable}}, nil, nil)
			w := intstr.FromString("3s")
			v, err := p.Measure(ctx, v1alpha1.Metric{Name: "e", Provider: v1alpha1.MetricProvider{Builtin: &v1alpha1.BuiltinMetric{Metric: "error-rate", Window: &w, Baseline: true}}},
				analysis.Target{Revision: 2, Baseline: 1})
			if err != nil || v.Baseline == nil || !near(0.5)(v.Result) || !near(0.01)(*v.Baseline) {
				t.Errorf("provider with baseline: %+v, %v", v, err)
			}
			if _, err := p.Measure(ctx, v1alpha1.Metric{Name: "t", Provider: v1alpha1.MetricProvider{Builtin: &v1alpha1.BuiltinMetric{Metric: "ttfb-p95", Window: &w}}},
				analysis.Target{Revision: 2}); err == nil || !strings.Contains(err.Error(), `"ttfb-p95" is not measured in Kubernetes mode`) {
				t.Errorf("ttfb-p95: %v", err)
			}
		})
	}

	// The judge, fed each second from the counters, fails the bad canary and not the good one.
	t.Run("judge", func(t *testing.T) {
		for _, router := range Routers() {
			t.Run(router, func(t *testing.T) {
				settings := spec.Judge(&v1alpha1.CanaryStrategy{})
				settings.Metrics = []string{v1alpha1.JudgeErrorRate, v1alpha1.JudgeLatency} // no first-token histogram in a router's series
				start := time.Now()
				runs := map[string]*v1alpha1.AnalysisRunStatus{}
				judges := map[string]*Judge{}
				for _, ns := range []string{"bad", "good"} {
					runs[ns] = &v1alpha1.AnalysisRunStatus{Name: "judge-2", Kind: v1alpha1.AnalysisKindJudge, Revision: 2, BaselineRevision: 1}
					runs[ns].StartedAt.Time = start
					judges[ns] = NewJudge(runs[ns], settings)
				}
				st := &v1alpha1.RolloutStatus{}
				deadline := time.Now().Add(30 * time.Second)
				tick := time.NewTicker(time.Second)
				defer tick.Stop()
				extra := 3 // ticks after the bad canary failed, for the good one to fail if it would
				for extra > 0 {
					for _, ns := range []string{"bad", "good"} {
						canary, stable := selectors(router, ns)
						if runs[ns].Phase.Completed() {
							continue
						}
						if err := judges[ns].Step(ctx, c, time.Now(), canary, stable, st, runs[ns]); err != nil {
							t.Fatal(err)
						}
					}
					if runs["bad"].Phase == v1alpha1.AnalysisFailed {
						extra--
					}
					if time.Now().After(deadline) {
						t.Fatalf("the bad canary was not failed in 30s: %s", runs["bad"].Message)
					}
					<-tick.C
				}
				if !strings.Contains(runs["bad"].Message, "canary worse than stable") {
					t.Errorf("bad canary: %s", runs["bad"].Message)
				}
				good := runs["good"]
				if good.Phase != v1alpha1.AnalysisRunning || len(good.Metrics) != 2 || good.Metrics[0].Count == 0 {
					t.Errorf("good canary: %s %s %+v", good.Phase, good.Message, good.Metrics)
				}
				t.Logf("bad: %s\ngood: %s", runs["bad"].Message, good.Message)
			})
		}
	})
}

// scrapedPrometheus starts a real Prometheus scraping the stand-in that server starts, and
// returns a client of it (and its address) once it has scraped the stand-in four times.
func scrapedPrometheus(t *testing.T, server func(*testing.T) (string, *atomic.Int64)) (*Client, string) {
	t.Helper()
	target, scrapes := server(t)
	addr := promenv.Start(t, promenv.Binary(t), target)
	c, err := NewClient(addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		n, ok, err := c.scalar(context.Background(), `min(count_over_time(up[1m]))`, time.Now())
		if err == nil && ok && n >= 4 && scrapes.Load() >= 4 {
			return c, addr
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus did not scrape the series four times: %v", err)
		}
		time.Sleep(100 * time.Millisecond) // poll
	}
}
