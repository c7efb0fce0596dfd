package cli

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/rest"

	"ramp.dev/ramp/internal/analysis/trafficmetrics"
	"ramp.dev/ramp/internal/control"
	"ramp.dev/ramp/internal/kube"
)

func TestDashboardSeriesWithoutPrometheusNamesTheFlags(t *testing.T) {
	d := startDashboard(t, nil, false)
	code, body := d.do(t, "GET", "/dashboard/api/rollouts/chat-api/series", "")
	if code != http.StatusNotImplemented || !strings.Contains(body, "numbers are in Prometheus") ||
		!strings.Contains(body, "--prometheus-service NAMESPACE/NAME:PORT") || !strings.Contains(body, "--prometheus-address URL") {
		t.Fatalf("series without Prometheus: %d %s, want 501 naming the flags", code, body)
	}
}

func TestDashboardRefusesBadPrometheusFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"--prometheus-address", "prometheus:9090"}, []string{`--prometheus-address: "prometheus:9090" is not an http(s) URL`}},
		{[]string{"--prometheus-address", "ftp://p"}, []string{`--prometheus-address: "ftp://p"`}},
		{[]string{"--prometheus-service", "prometheus:9090"}, []string{`--prometheus-service: "prometheus:9090" has no namespace`, "NAMESPACE/NAME[:PORT]"}},
		{[]string{"--prometheus-service", "Monitoring/prometheus"}, []string{`--prometheus-service: "Monitoring/prometheus" has no valid namespace`}},
		{[]string{"--prometheus-service", "monitoring/prom_etheus:9090"}, []string{`"monitoring/prom_etheus:9090" has no valid Service name`}},
		{[]string{"--prometheus-service", "monitoring/prometheus:99999"}, []string{`"monitoring/prometheus:99999" has no valid port`}},
		{[]string{"--prometheus-service", "monitoring/prometheus:"}, []string{`"monitoring/prometheus:" has no valid port`}},
		{[]string{"--prometheus-service", "monitoring/prometheus/x"}, []string{`has no valid Service name`}},
		{[]string{"--prometheus-service", "monitoring/prometheus", "--prometheus-address", "http://p:9090"}, []string{"--prometheus-address and --prometheus-service name two Prometheus servers"}},
	} {
		var stderr strings.Builder
		a := &app{stdin: strings.NewReader(""), stdout: io.Discard, stderr: &stderr, getenv: func(string) string { return "" }, now: time.Now,
			dashboardBackend: func() (control.Control, error) { return &kube.Commands{}, nil }}
		code := a.run(context.Background(), append([]string{"--kubeconfig", "/nonexistent", "dashboard", "--address", "127.0.0.1:0"}, tc.args...))
		for _, w := range tc.want {
			if code != exitError || !strings.Contains(stderr.String(), w) {
				t.Errorf("%v: exit %d: %s\nwant %q", tc.args, code, stderr.String(), w)
			}
		}
	}
}

// TestDashboardPrometheusServiceGoesThroughTheAPIServer: --prometheus-service asks the API
// server's service proxy, with the kubeconfig's credentials.
func TestDashboardPrometheusServiceGoesThroughTheAPIServer(t *testing.T) {
	var mu sync.Mutex
	var paths []string
	apiserver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		paths = append(paths, r.URL.Path)
		mu.Unlock()
		if r.Header.Get("Authorization") != "Bearer kube-token" {
			http.Error(w, "Unauthorized", http.StatusUnauthorized)
			return
		}
		if r.URL.Path != "/api/v1/namespaces/monitoring/services/prometheus:web/proxy/api/v1/query_range" {
			http.NotFound(w, r)
			return
		}
		_ = r.ParseForm()
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[%s,"2.5"]]}]}}`, r.Form.Get("end"))
	}))
	defer apiserver.Close()
	a := &app{}
	cfg := func() (*rest.Config, error) { return &rest.Config{Host: apiserver.URL, BearerToken: "kube-token"}, nil }
	c, err := a.dashboardPromClient(dashboardProm{service: "monitoring/prometheus:web"}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	to := time.Unix(1_700_000_000, 0)
	r := trafficmetrics.Range{From: to.Add(-10 * time.Second), To: to, Step: 5 * time.Second}
	sel := trafficmetrics.Selector{Router: trafficmetrics.Istio, Namespace: "team-chat", Service: "chat-api-canary"}
	pts, _, err := c.RevisionSeries(context.Background(), trafficmetrics.QueriesFor(sel, 30*time.Second, nil), r)
	if err != nil {
		t.Fatalf("%v (paths asked: %v)", err, paths)
	}
	if len(pts) != 3 || pts[2].Rate != 2.5 || pts[0].Rate != 0 {
		t.Fatalf("points %+v, want the rate 2.5 at the end only", pts)
	}
}

func FuzzParsePromService(f *testing.F) {
	for _, s := range []string{"monitoring/prometheus:9090", "monitoring/prometheus", "a/b:web", "/x", "a/:1", "a/b:0", "a/b:c:d", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		s, err := parsePromService(v)
		if err != nil {
			if !strings.Contains(err.Error(), "--prometheus-service") {
				t.Fatalf("error %q names no flag", err)
			}
			return
		}
		back := s.Namespace + "/" + s.Name
		if s.Port != "" {
			back += ":" + s.Port
		}
		if back != v || strings.ContainsAny(s.proxyPath()[len("/api/v1/namespaces/"):], "?#%") {
			t.Fatalf("%q parsed as %+v (path %s)", v, s, s.proxyPath())
		}
	})
}
