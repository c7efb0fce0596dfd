package prometheus

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"k8s.io/apimachinery/pkg/util/intstr"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/analysis"
	"ramp.dev/ramp/internal/proxy"
	"ramp.dev/ramp/test/promenv"
)

// TestRealPrometheus runs Debian's prometheus on loopback, scraping a page of chosen series
// and a real ramp proxy's metrics, and measures through it with real PromQL.
func TestRealPrometheus(t *testing.T) {
	bin := promenv.Binary(t)

	// Given a ramp proxy that served 6 good and 4 failed requests on the canary (revision 2)
	// and 30 good ones on stable (revision 1)
	rampMetrics := rampProxyMetrics(t, 6, 4, 30)
	// and a page of chosen series, whose test_scrapes gauge counts its scrapes
	var scrapes atomic.Int64
	series := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := scrapes.Add(1)
		fmt.Fprintf(w, `# TYPE test_error_ratio gauge
test_error_ratio{rollout="chat-api",revision="2"} 0.25
test_error_ratio{rollout="chat-api",revision="1"} 0.01
# TYPE test_multi gauge
test_multi{i="a"} 1
test_multi{i="b"} 2
# TYPE test_nan gauge
test_nan NaN
# TYPE test_scrapes gauge
test_scrapes %d
`, n)
	}))
	defer series.Close()
	// and a Prometheus scraping both every second, behind a gate that wants a bearer token
	// and a tenant header
	addr := promenv.Start(t, bin, hostPort(series.URL), hostPort(rampMetrics))
	const token = "t0ken-s3cret"
	var lastAuth atomic.Value
	lastAuth.Store("")
	target, _ := url.Parse(addr)
	rp := httputil.NewSingleHostReverseProxy(target)
	gate := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		lastAuth.Store(r.Header.Get("Authorization") + " " + r.Header.Get("X-Scope-OrgID"))
		if r.Header.Get("Authorization") != "Bearer "+token || r.Header.Get("X-Scope-OrgID") != "team-a" {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	defer gate.Close()

	p := New(nil)
	tg := analysis.Target{Rollout: "chat-api", Revision: 2, Baseline: 1, Role: "canary", Args: map[string]string{"class": "5xx", "service-name": "chat"}}
	measure := func(pm v1alpha1.PrometheusMetric, interval string) (analysis.Value, error) {
		m := v1alpha1.Metric{Name: "m", Provider: v1alpha1.MetricProvider{Prometheus: &pm}}
		if interval != "" {
			iv := intstr.FromString(interval)
			m.Interval = &iv
		}
		return p.Measure(context.Background(), m, tg)
	}

	// Wait (bounded) until both targets were scraped at least three times.
	waitFor(t, 30*time.Second, "three scrapes of both targets", func() bool {
		v, err := measure(v1alpha1.PrometheusMetric{Address: addr, Query: `min(count_over_time(up[1m]))`}, "")
		return err == nil && !v.Inconclusive && v.Result >= 3 && scrapes.Load() >= 3
	})

	tests := []struct {
		name             string
		pm               v1alpha1.PrometheusMetric
		interval         string
		env              map[string]string
		want             float64
		check            func(v float64) bool // instead of want
		wantInconclusive string
		wantErr          string
		wantAuth         string
	}{
		{name: "instant query", pm: v1alpha1.PrometheusMetric{Address: addr, Query: `test_error_ratio{revision="2"}`}, want: 0.25},
		{name: "ramp's error share per revision, with template variables",
			pm: v1alpha1.PrometheusMetric{Address: addr, Query: `sum(max_over_time(ramp_requests_total{rollout="{{rollout}}", revision="{{ revision }}", role="{{role}}", code_class="{{args.class}}"}[{{interval}}]))
  / sum(max_over_time(ramp_requests_total{rollout="{{rollout}}", revision="{{revision}}"}[{{interval}}]))`},
			interval: "30s", want: 0.4},
		{name: "ramp's baseline", pm: v1alpha1.PrometheusMetric{Address: addr, Query: `sum(ramp_requests_total{rollout="{{rollout}}", revision="{{baselineRevision}}"})`}, want: 30},
		{name: "ramp's time to first byte, p95, from the histogram",
			pm:    v1alpha1.PrometheusMetric{Address: addr, Query: `histogram_quantile(0.95, sum by (le) (ramp_ttfb_seconds_bucket{rollout="chat-api", revision="2"}))`},
			check: func(v float64) bool { return v > 0 && v <= 0.25 }},
		{name: "scalar", pm: v1alpha1.PrometheusMetric{Address: addr, Query: `scalar(sum(test_multi))`}, want: 3},
		{name: "range query, max", pm: v1alpha1.PrometheusMetric{Address: addr, Query: `test_scrapes`,
			RangeQuery: &v1alpha1.PrometheusRangeQuery{Range: ptr(intstr.FromString("1m")), Step: ptr(intstr.FromString("1s")), Reduce: "max"}},
			check: func(v float64) bool { return v >= 3 }},
		{name: "range query, min is below max", pm: v1alpha1.PrometheusMetric{Address: addr, Query: `test_scrapes`,
			RangeQuery: &v1alpha1.PrometheusRangeQuery{Range: ptr(intstr.FromString("1m")), Step: ptr(intstr.FromString("1s")), Reduce: "min"}},
			check: func(v float64) bool { return v >= 1 && v < float64(scrapes.Load()) }},
		{name: "range query, avg of a constant", pm: v1alpha1.PrometheusMetric{Address: addr, Query: `test_error_ratio{revision="1"}`,
			RangeQuery: &v1alpha1.PrometheusRangeQuery{Range: ptr(intstr.FromInt32(60)), Reduce: "avg"}}, want: 0.01},
		{name: "range query, no series", pm: v1alpha1.PrometheusMetric{Address: addr, Query: `test_error_ratio{revision="9"}`,
			RangeQuery: &v1alpha1.PrometheusRangeQuery{}}, wantInconclusive: "no data: the range query returned no series"},
		{name: "no series is no data", pm: v1alpha1.PrometheusMetric{Address: addr, Query: `test_error_ratio{revision="9"}`},
			wantInconclusive: "no data: the query returned no series"},
		{name: "NaN is no data", pm: v1alpha1.PrometheusMetric{Address: addr, Query: `test_nan`}, wantInconclusive: "no data: the query returned NaN"},
		{name: "more than one series", pm: v1alpha1.PrometheusMetric{Address: addr, Query: `test_multi`},
			wantErr: `the query returned 2 series, want one (aggregate it, e.g. with sum()): `},
		{name: "range vector in an instant query", pm: v1alpha1.PrometheusMetric{Address: addr, Query: `test_nan[1m]`},
			wantErr: "the query returned a range vector (1 series); use rangeQuery"},
		{name: "bad PromQL", pm: v1alpha1.PrometheusMetric{Address: addr, Query: `sum(`}, wantErr: `query "sum(": bad_data: `},
		{name: "unknown template variable", pm: v1alpha1.PrometheusMetric{Address: addr, Query: `up{ns="{{namespace}}"}`},
			wantErr: "query: template: {{namespace}} has no value here"},
		{name: "nobody listening", pm: v1alpha1.PrometheusMetric{Address: "http://127.0.0.1:1", Query: `up`}, wantErr: `query "up": `},
		{name: "bearer token and header reach the server",
			pm:   v1alpha1.PrometheusMetric{Address: gate.URL, Query: `test_error_ratio{revision="1"}`, BearerToken: token, Headers: []v1alpha1.WebMetricHeader{{Key: "X-Scope-OrgID", Value: "team-a"}}},
			want: 0.01, wantAuth: "Bearer " + token + " team-a"},
		{name: "bearer token from the environment",
			pm:  v1alpha1.PrometheusMetric{Address: gate.URL, Query: `test_error_ratio{revision="1"}`, BearerTokenEnv: "PROM_TOKEN", Headers: []v1alpha1.WebMetricHeader{{Key: "X-Scope-OrgID", Value: "team-a"}}},
			env: map[string]string{"PROM_TOKEN": token}, want: 0.01, wantAuth: "Bearer " + token + " team-a"},
		{name: "bearer token from a file",
			pm:   v1alpha1.PrometheusMetric{Address: gate.URL, Query: `test_error_ratio{revision="1"}`, BearerTokenFile: writeFile(t, token+"\n"), Headers: []v1alpha1.WebMetricHeader{{Key: "X-Scope-OrgID", Value: "team-a"}}},
			want: 0.01},
		{name: "no token", pm: v1alpha1.PrometheusMetric{Address: gate.URL, Query: `up`},
			wantErr: "401 Unauthorized from " + hostPort(gate.URL) + ": no bearer token is set"},
		{name: "wrong token", pm: v1alpha1.PrometheusMetric{Address: gate.URL, Query: `up`, BearerToken: "wrong"},
			wantErr: "the bearer token was refused"},
		{name: "token variable not set", pm: v1alpha1.PrometheusMetric{Address: gate.URL, Query: `up`, BearerTokenEnv: "RAMP_TEST_NO_SUCH_VAR"},
			wantErr: "bearerTokenEnv: the environment variable RAMP_TEST_NO_SUCH_VAR is not set"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			v, err := measure(tt.pm, tt.interval)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), token) || strings.Contains(err.Error(), "wrong") {
					t.Errorf("error shows the token: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case tt.wantInconclusive != "":
				if !v.Inconclusive || v.Text != tt.wantInconclusive {
					t.Errorf("got %+v, want inconclusive %q", v, tt.wantInconclusive)
				}
			case v.Inconclusive:
				t.Errorf("got %+v, want a value", v)
			case tt.check != nil:
				if !tt.check(v.Result) {
					t.Errorf("got %+v, which fails the check", v)
				}
			case v.Result != tt.want:
				t.Errorf("got %+v, want %v", v, tt.want)
			}
			if tt.wantAuth != "" && lastAuth.Load() != tt.wantAuth {
				t.Errorf("server saw %q, want %q", lastAuth.Load(), tt.wantAuth)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

func hostPort(u string) string { return strings.TrimPrefix(u, "http://") }

func writeFile(t *testing.T, s string) string {
	path := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// rampProxyMetrics runs a real ramp proxy for rollout chat-api, sends it canary requests
// (good and failed) and stable requests, and serves its Prometheus collector; it returns the
// metrics server's URL.
func rampProxyMetrics(t *testing.T, canaryGood, canaryFailed, stableGood int) string {
	t.Helper()
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("fail") == "1" {
			http.Error(w, "boom", http.StatusInternalServerError)
			return
		}
		io.WriteString(w, "ok")
	}))
	t.Cleanup(backend.Close)
	p := proxy.New("chat-api", proxy.Options{})
	t.Cleanup(p.Close)
	b := hostPort(backend.URL)
	p.SetTable(proxy.Table{
		Pools: []proxy.Pool{
			{Revision: 1, Role: "stable", Weight: 100, Backends: []proxy.Backend{{ID: "r1-0", Addr: b}}},
			{Revision: 2, Role: "canary", Weight: 0, Backends: []proxy.Backend{{ID: "r2-0", Addr: b}}},
		},
		HeaderRoutes: []proxy.HeaderRoute{{Name: "canary", Match: []proxy.Match{{Header: "x-version", Exact: "canary"}}, Revision: 2}},
	})
	front := httptest.NewServer(p)
	t.Cleanup(front.Close)
	send := func(n int, canary bool, fail string, want int) {
		for range n {
			req, _ := http.NewRequest("GET", front.URL+"/?fail="+fail, nil)
			if canary {
				req.Header.Set("x-version", "canary")
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != want {
				t.Fatalf("proxy answered %d, want %d", resp.StatusCode, want)
			}
		}
	}
	send(canaryGood, true, "0", 200)
	send(canaryFailed, true, "1", 500)
	send(stableGood, false, "0", 200)

	reg := prometheus.NewRegistry()
	reg.MustRegister(p.Collector())
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		<-tick.C
	}
}
