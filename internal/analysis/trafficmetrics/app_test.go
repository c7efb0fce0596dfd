package trafficmetrics

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/spec"
)

func appSel(ns, hash string, a v1alpha1.AppMetrics) Selector {
	s, _ := spec.AppMetrics(&a)
	return Selector{Router: App, Namespace: ns, App: &AppSelector{Series: s, Hash: hash, PodPrefix: PodPrefix("chat-api-" + hash)}}
}

// TestAppQueries: the PromQL of the app's series, kube-state-metrics' and cAdvisor's, with the
// defaults and with every name set.
func TestAppQueries(t *testing.T) {
	def := appSel("carepath-demo", "5d8f7c9b6", v1alpha1.AppMetrics{})
	set := appSel("carepath-demo", "5d8f7c9b6", v1alpha1.AppMetrics{
		Requests: "chat_requests_total", StatusLabel: "code", Duration: "chat_request_duration_seconds", FirstToken: "chat_first_token_seconds",
		Restarts: "restarts_total", CPU: "cpu_seconds_total", Memory: "rss_bytes",
		RevisionLabel: "hash", NamespaceLabel: "kubernetes_namespace", PodLabel: "kubernetes_pod_name",
		MatchLabels: map[string]string{"job": "chat-api", "deployment": "chat-api"},
	})
	b := func(s Selector) string { q, _ := s.Buckets(); return q }
	bad := func(s Selector) string {
		q, _ := s.Business("chat_triage_total", map[string]string{"outcome": "failed"}, nil)
		return q
	}
	all := func(s Selector) string {
		_, q := s.Business("chat_triage_total", map[string]string{"outcome": "failed"}, map[string]string{"kind": "triage"})
		return q
	}
	for _, tc := range []struct {
		name, got, want string
	}{
		{"requests", def.Requests(), `http_requests_total{namespace="carepath-demo", pod_template_hash="5d8f7c9b6"}`},
		{"errors: status, else code", sumOf(def.Errors(), identity),
			`(sum(http_requests_total{namespace="carepath-demo", pod_template_hash="5d8f7c9b6", status=~"5.."}) or vector(0)) + (sum(http_requests_total{namespace="carepath-demo", pod_template_hash="5d8f7c9b6", status="", code=~"5.."}) or vector(0))`},
		{"unlabelled", def.Unlabelled(), `http_requests_total{namespace="carepath-demo", pod_template_hash="5d8f7c9b6", status="", code=""}`},
		{"buckets", b(def), `http_request_duration_seconds_bucket{namespace="carepath-demo", pod_template_hash="5d8f7c9b6"}`},
		{"no first-token histogram", def.FirstTokenBuckets(), ``},
		{"restarts", def.Restarts(), `kube_pod_container_status_restarts_total{namespace="carepath-demo", pod=~"chat-api-5d8f7c9b6-[a-z0-9]{5}"}`},
		{"cpu", def.CPU(), `container_cpu_usage_seconds_total{namespace="carepath-demo", pod=~"chat-api-5d8f7c9b6-[a-z0-9]{5}", container!="", container!="POD"}`},
		{"memory", def.Memory(), `container_memory_working_set_bytes{namespace="carepath-demo", pod=~"chat-api-5d8f7c9b6-[a-z0-9]{5}", container!="", container!="POD"}`},
		{"business events", bad(def), `chat_triage_total{namespace="carepath-demo", pod_template_hash="5d8f7c9b6", outcome="failed"}`},
		{"business total", all(def), `chat_triage_total{namespace="carepath-demo", pod_template_hash="5d8f7c9b6", kind="triage"}`},
		{"set: requests", set.Requests(), `chat_requests_total{kubernetes_namespace="carepath-demo", hash="5d8f7c9b6", deployment="chat-api", job="chat-api"}`},
		{"set: errors", sumOf(set.Errors(), identity), `sum(chat_requests_total{kubernetes_namespace="carepath-demo", hash="5d8f7c9b6", deployment="chat-api", job="chat-api", code=~"5.."})`},
		{"set: unlabelled", set.Unlabelled(), ``},
		{"set: buckets", b(set), `chat_request_duration_seconds_bucket{kubernetes_namespace="carepath-demo", hash="5d8f7c9b6", deployment="chat-api", job="chat-api"}`},
		{"set: first token", set.FirstTokenBuckets(), `chat_first_token_seconds_bucket{kubernetes_namespace="carepath-demo", hash="5d8f7c9b6", deployment="chat-api", job="chat-api"}`},
		{"set: restarts", set.Restarts(), `restarts_total{kubernetes_namespace="carepath-demo", kubernetes_pod_name=~"chat-api-5d8f7c9b6-[a-z0-9]{5}"}`},
		{"set: memory", set.Memory(), `rss_bytes{kubernetes_namespace="carepath-demo", kubernetes_pod_name=~"chat-api-5d8f7c9b6-[a-z0-9]{5}", container!="", container!="POD"}`},
		{"le matcher", withMatcher(b(def), `le="+Inf"`), `http_request_duration_seconds_bucket{namespace="carepath-demo", pod_template_hash="5d8f7c9b6", le="+Inf"}`},
		// A ReplicaSet name of 60 characters: the API server cuts the generated names' prefix to 58.
		{"long pod prefix", PodPrefix(strings.Repeat("a", 50) + "-5d8f7c9b6"), strings.Repeat("a", 50) + "-5d8f7c9"},
		{"regexp metacharacters in a name", regexpQuote("chat.api-x"), `chat\.api-x`},
	} {
		if tc.got != tc.want {
			t.Errorf("%s:\ngot  %s\nwant %s", tc.name, tc.got, tc.want)
		}
	}
	if err := (Selector{Router: App, Namespace: "x"}).Validate(); err == nil {
		t.Error("an app selector without spec.appMetrics is valid")
	}
	if why := (Selector{Router: Istio, Namespace: "x", Service: "s"}).Unsupported("restarts"); !strings.Contains(why, "set spec.appMetrics") {
		t.Errorf("restarts without app series: %q", why)
	}
	if why := def.Unsupported("first-token-p95"); !strings.Contains(why, "set spec.appMetrics.firstToken") {
		t.Errorf("first-token without a histogram: %q", why)
	}
}

// TestThresholdOf: the bucket at or above stable's p95 plus the floor.
func TestThresholdOf(t *testing.T) {
	inf := math.Inf(1)
	// 100 requests: 90 at or below 0.1s, 98 at or below 0.25s, all at or below 0.5s. p95
	// interpolates in (0.1, 0.25]: 0.1 + 0.15*5/8 = 0.19375.
	bs := func() []bucket {
		return []bucket{{"+Inf", inf, 100}, {"0.5", 0.5, 100}, {"0.1", 0.1, 90}, {"0.25", 0.25, 98}, {"0.05", 0.05, 10}}
	}
	for _, tc := range []struct {
		name  string
		bs    []bucket
		scale float64
		floor time.Duration
		want  Threshold
	}{
		{"p95 alone", bs(), 1, 0, Threshold{LE: "0.25", Bound: 250 * time.Millisecond}},
		{"p95 plus 100ms", bs(), 1, 100 * time.Millisecond, Threshold{LE: "0.5", Bound: 500 * time.Millisecond}},
		{"milliseconds (Istio)", []bucket{{"+Inf", inf, 100}, {"500", 500, 100}, {"100", 100, 90}, {"250", 250, 98}}, 0.001, 0, Threshold{LE: "250", Bound: 250 * time.Millisecond}},
		{"too few requests", []bucket{{"+Inf", inf, 49}, {"0.1", 0.1, 49}}, 1, 0, Threshold{}},
		{"no +Inf bucket", []bucket{{"0.1", 0.1, 100}}, 1, 0, Threshold{}},
		{"above the largest bucket", bs(), 1, time.Second, Threshold{Never: "stable's p95 plus the floor (1.194s) is above the histogram's largest bucket (500ms)"}},
		{"p95 in the +Inf bucket", []bucket{{"+Inf", inf, 100}, {"0.1", 0.1, 50}, {"1", 1, 60}}, 1, 0, Threshold{LE: "1", Bound: time.Second}},
	} {
		if got := thresholdOf(tc.bs, tc.scale, tc.floor); got != tc.want {
			t.Errorf("%s: got %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

// appRevision is what one revision's pods serve per scrape: requests, 5xx among them, the
// bucket of every request's duration and first token, failed triage answers, restarts, CPU
// seconds and memory.
type appRevision struct {
	requests, errors int64
	bucket           int // durations in (appBounds[i-1], appBounds[i]]
	ftBucket         int
	triage, failed   int64
	restarts         int64
	cpu              float64
	memory           int64
}

var appBounds = []string{"0.05", "0.1", "0.25", "0.5", "1", "2.5"}

// appSeries writes the app's series of one pod after n scrapes, in the chat-api's names (with
// the code label), as the documented relabeling gives them; and its kube-state-metrics and
// cAdvisor series.
func appSeries(b *strings.Builder, ns, hash, pod string, r appRevision, n int64) {
	l := fmt.Sprintf(`namespace=%q,pod=%q,pod_template_hash=%q,job="chat-api"`, ns, pod, hash)
	fmt.Fprintf(b, "http_requests_total{%s,code=\"200\"} %d\n", l, (r.requests-r.errors)*n)
	fmt.Fprintf(b, "http_requests_total{%s,code=\"503\"} %d\n", l, r.errors*n)
	for _, h := range []struct {
		name   string
		bucket int
	}{{"http_request_duration_seconds", r.bucket}, {"chat_first_token_seconds", r.ftBucket}} {
		for i, le := range appBounds {
			v := int64(0)
			if i >= h.bucket {
				v = r.requests * n
			}
			fmt.Fprintf(b, "%s_bucket{%s,le=%q} %d\n", h.name, l, le, v)
		}
		fmt.Fprintf(b, "%s_bucket{%s,le=\"+Inf\"} %d\n", h.name, l, r.requests*n)
	}
	fmt.Fprintf(b, "chat_triage_total{%s,outcome=\"success\"} %d\n", l, (r.triage-r.failed)*n)
	fmt.Fprintf(b, "chat_triage_total{%s,outcome=\"failed\"} %d\n", l, r.failed*n)
	pl := fmt.Sprintf(`namespace=%q,pod=%q`, ns, pod)
	fmt.Fprintf(b, "kube_pod_container_status_restarts_total{%s,container=\"chat-api\"} %d\n", pl, r.restarts)
	fmt.Fprintf(b, "container_cpu_usage_seconds_total{%s,container=\"chat-api\"} %g\n", pl, r.cpu*float64(n))
	fmt.Fprintf(b, "container_cpu_usage_seconds_total{%s,container=\"\"} %g\n", pl, 100*r.cpu*float64(n)) // the pod's cgroup: left out
	fmt.Fprintf(b, "container_memory_working_set_bytes{%s,container=\"chat-api\"} %d\n", pl, r.memory)
	fmt.Fprintf(b, "container_memory_working_set_bytes{%s,container=\"POD\"} %d\n", pl, 1<<40) // the pause container: left out
}

// appServer serves, in namespace "app", a stable revision (hash s1, two pods) and canaries
// of several kinds, one hash each: "good", "errors" (half fail), "slow" (durations in
// 0.5-1s), "triage" (half the answers failed), each with one pod; and a decoy in another
// namespace with the same hash as stable.
func appServer(t *testing.T) (string, *atomic.Int64) {
	stable := appRevision{requests: 50, errors: 1, bucket: 1, ftBucket: 0, triage: 50, failed: 1, restarts: 0, cpu: 0.25, memory: 100 << 20}
	canaries := map[string]appRevision{
		"good":   {requests: 25, errors: 0, bucket: 1, ftBucket: 0, triage: 25, failed: 0, restarts: 0, cpu: 0.125, memory: 110 << 20},
		"errors": {requests: 25, errors: 12, bucket: 1, ftBucket: 0, triage: 25, failed: 0, restarts: 2, cpu: 0.125, memory: 110 << 20},
		"slow":   {requests: 25, errors: 0, bucket: 4, ftBucket: 3, triage: 25, failed: 0, cpu: 0.125, memory: 110 << 20},
		"triage": {requests: 25, errors: 0, bucket: 1, ftBucket: 0, triage: 25, failed: 12, cpu: 0.125, memory: 110 << 20},
	}
	var scrapes atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := scrapes.Add(1)
		b := &strings.Builder{}
		appSeries(b, "app", "s1", "chat-api-s1-abcde", stable, n)
		appSeries(b, "app", "s1", "chat-api-s1-fghij", stable, n)
		for hash, c := range canaries {
			appSeries(b, "app", hash, "chat-api-"+hash+"-klmno", c, n)
		}
		appSeries(b, "other", "s1", "chat-api-s1-zzzzz", appRevision{requests: 1000, errors: 1000, bucket: 5, restarts: 99, cpu: 9, memory: 1 << 30}, n)
		fmt.Fprint(w, b.String())
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://"), &scrapes
}

// TestAppRealPrometheus measures every builtin metric from the app's own series through a
// real Prometheus, and judges canaries bad in errors, latency, first token and a business
// metric against stable.
func TestAppRealPrometheus(t *testing.T) {
	c, _ := scrapedPrometheus(t, appServer)
	ctx := context.Background()
	am := v1alpha1.AppMetrics{FirstToken: "chat_first_token_seconds"}
	sel := func(hash string) Selector { return appSel("app", hash, am) }
	near := func(want float64) func(float64) bool {
		return func(v float64) bool { return math.Abs(v-want) < 1e-6*math.Max(1, math.Abs(want)) }
	}
	w := 3 * time.Second
	for _, tc := range []struct {
		name  string
		q     Query
		sel   Selector
		check func(float64) bool
		text  string
	}{
		{"error-rate of stable (code label)", Query{Metric: "error-rate"}, sel("s1"), near(0.02), "5xx in 3s"},
		{"error-rate of a failing canary", Query{Metric: "error-rate"}, sel("errors"), near(0.48), ""},
		{"error-rate of a good canary", Query{Metric: "error-rate"}, sel("good"), near(0), ""},
		{"latency-p50 of stable", Query{Metric: "latency-p50"}, sel("s1"), near(0.075), ""},
		{"latency-p95 of a slow canary", Query{Metric: "latency-p95"}, sel("slow"), near(0.975), ""},
		{"first-token-p95 of a slow canary", Query{Metric: "first-token-p95"}, sel("slow"), near(0.4875), ""},
		{"first-token-p50 of stable", Query{Metric: "first-token-p50"}, sel("s1"), near(0.025), ""},
		{"request-rate of stable (two pods)", Query{Metric: "request-rate"}, sel("s1"), func(v float64) bool { return v > 50 && v < 200 }, "req/s"},
		{"restarts of a failing canary", Query{Metric: "restarts"}, sel("errors"), near(2), "2 restarts"},
		{"restarts of stable", Query{Metric: "restarts"}, sel("s1"), near(0), ""},
		{"cpu of stable, without the pod's cgroup", Query{Metric: "cpu"}, sel("s1"), func(v float64) bool { return v > 0.2 && v < 1 }, "cores"},
		{"memory of stable, without the pause container", Query{Metric: "memory"}, sel("s1"), near(200 << 20), "200.0 MiB"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.q.Now, tc.q.Window = time.Now(), w
			v, err := c.Measure(ctx, tc.q, tc.sel)
			if err != nil {
				t.Fatal(err)
			}
			if v.Inconclusive || !tc.check(v.Result) || !strings.Contains(v.Text, tc.text) {
				t.Errorf("got %+v", v)
			}
		})
	}
	t.Run("first-token without a histogram is an error", func(t *testing.T) {
		_, err := c.Measure(ctx, Query{Metric: "first-token-p95", Window: w, Now: time.Now()}, appSel("app", "s1", v1alpha1.AppMetrics{}))
		if err == nil || !strings.Contains(err.Error(), "set spec.appMetrics.firstToken") {
			t.Errorf("got %v", err)
		}
	})
	t.Run("series with neither status nor code", func(t *testing.T) {
		// Counted under another label: status_code.
		s := appSel("app", "s1", v1alpha1.AppMetrics{Requests: "chat_triage_total"})
		_, err := c.Measure(ctx, Query{Metric: "error-rate", Window: w, Now: time.Now()}, s)
		if err == nil || !strings.Contains(err.Error(), "set spec.appMetrics.statusLabel") {
			t.Errorf("got %v", err)
		}
	})

	// The judge, fed each second, fails each bad canary on its metric, naming it, and not the
	// good one.
	t.Run("judge", func(t *testing.T) {
		settings := spec.Judge(&v1alpha1.CanaryStrategy{})
		settings.MinLatencyIncrease = 100 * time.Millisecond
		settings.Business = []v1alpha1.JudgeBusinessMetric{{Name: "triage", Metric: "chat_triage_total", Events: map[string]string{"outcome": "failed"}}}
		// The run began a minute ago: stable's p95 is fixed on the requests since then.
		start := time.Now()
		wantFailed := map[string]string{
			"errors": "error-rate: canary worse than stable",
			"slow":   "latency over 250ms (stable's p95 + 100ms): canary worse than stable",
			"triage": `triage: canary worse than stable: canary 1`,
			"good":   "",
		}
		runs := map[string]*v1alpha1.AnalysisRunStatus{}
		judges := map[string]*Judge{}
		for hash := range wantFailed {
			runs[hash] = &v1alpha1.AnalysisRunStatus{Name: "judge-2", Kind: v1alpha1.AnalysisKindJudge, Revision: 2, BaselineRevision: 1}
			runs[hash].StartedAt.Time = start
			judges[hash] = NewJudge(runs[hash], settings)
		}
		st := &v1alpha1.RolloutStatus{}
		deadline := time.Now().Add(45 * time.Second)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for extra := 3; extra > 0; {
			failed := 0
			for hash := range wantFailed {
				if runs[hash].Phase.Completed() {
					failed++
					continue
				}
				if err := judges[hash].Step(ctx, c, time.Now(), sel(hash), sel("s1"), st, runs[hash]); err != nil {
					t.Fatal(err)
				}
			}
			if failed == 3 {
				extra--
			}
			if time.Now().After(deadline) {
				for h, r := range runs {
					t.Logf("%s: %s %s", h, r.Phase, r.Message)
				}
				t.Fatal("the bad canaries were not all failed in 45s")
			}
			<-tick.C
		}
		for hash, want := range wantFailed {
			r := runs[hash]
			if want == "" {
				if r.Phase != v1alpha1.AnalysisRunning || len(r.Metrics) != 4 {
					t.Errorf("good canary: %s %s %+v", r.Phase, r.Message, r.Metrics)
				}
				for _, m := range r.Metrics {
					if m.Count == 0 {
						t.Errorf("good canary: %s was never fed: %s", m.Name, m.Message)
					}
				}
				continue
			}
			if r.Phase != v1alpha1.AnalysisFailed || !strings.Contains(r.Message, want) {
				t.Errorf("%s canary: %s %s; want %q in it", hash, r.Phase, r.Message, want)
			}
			t.Logf("%s: %s", hash, r.Message)
		}
	})
}

// FuzzThresholdOf: whatever buckets Prometheus gives (le labels parsed as numbers, in any
// order, counts of any size), the threshold is one of their finite bounds at or above the
// floor, none, or never, without a panic.
func FuzzThresholdOf(f *testing.F) {
	f.Add("0.05 0.1 0.25 0.5 +Inf", "10 90 98 100 100", int64(100))
	f.Add("1 +Inf", "60 100", int64(0))
	f.Add("NaN -1 +Inf", "1 2 3", int64(5))
	f.Fuzz(func(t *testing.T, les, counts string, floorMs int64) {
		ls, cs := strings.Fields(les), strings.Fields(counts)
		var bs []bucket
		for i := range min(len(ls), len(cs)) {
			b, err1 := strconv.ParseFloat(ls[i], 64)
			c, err2 := strconv.ParseFloat(cs[i], 64)
			if err1 != nil || err2 != nil {
				continue
			}
			bs = append(bs, bucket{le: ls[i], bound: b, count: c})
		}
		floor := time.Duration(floorMs%10000) * time.Millisecond
		th := thresholdOf(bs, 1, floor)
		if th.LE == "" {
			return
		}
		ok := false
		for _, b := range bs {
			if b.le == th.LE && !math.IsInf(b.bound, 1) {
				ok = true
			}
		}
		if !ok || th.Never != "" || (floor > 0 && th.Bound < floor-time.Millisecond) {
			t.Fatalf("threshold %+v of %v (floor %s)", th, bs, floor)
		}
	})
}
