package trafficmetrics

import (
	"context"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/promql/parser"

	"ramp.dev/ramp/api/v1alpha1"
)

var triage = []v1alpha1.JudgeBusinessMetric{{Name: "triage", Metric: "chat_triage_total", Events: map[string]string{"outcome": "failed"}}}

// TestSeriesQueries: the PromQL of the dashboard's chart lines, per router and for the app's
// own series.
func TestSeriesQueries(t *testing.T) {
	istio := Selector{Router: Istio, Namespace: "team-chat", Service: "chat-api-canary"}
	nginx := Selector{Router: Nginx, Namespace: "team-chat", Ingresses: []string{"chat", "chat-api-chat-canary"}, Canary: true}
	app := appSel("team-chat", "5d8f7c9b6", v1alpha1.AppMetrics{FirstToken: "chat_first_token_seconds"})
	istioApp := istio
	istioApp.App = app.App
	const ist = `reporter="destination", destination_service_namespace="team-chat", destination_service_name="chat-api-canary"`
	const ngx = `namespace="team-chat", ingress=~"chat|chat-api-chat-canary", canary!=""`
	const am = `namespace="team-chat", pod_template_hash="5d8f7c9b6"`
	for _, tc := range []struct {
		name string
		got  SeriesQueries
		want SeriesQueries
	}{
		{"istio", QueriesFor(istio, 30*time.Second, triage), SeriesQueries{
			Rate:       `sum(rate(istio_requests_total{` + ist + `}[30s]))`,
			ErrorShare: `(sum(rate(istio_requests_total{` + ist + `, response_code=~"5.."}[30s])) or vector(0)) / sum(rate(istio_requests_total{` + ist + `}[30s]))`,
			LatencyP95: `histogram_quantile(0.95, sum by (le) (rate(istio_request_duration_milliseconds_bucket{` + ist + `}[30s]))) * 0.001`,
		}},
		{"nginx, window rounded up", QueriesFor(nginx, 1500*time.Millisecond, nil), SeriesQueries{
			Rate:       `sum(rate(nginx_ingress_controller_requests{` + ngx + `}[2s]))`,
			ErrorShare: `(sum(rate(nginx_ingress_controller_requests{` + ngx + `, status=~"5.."}[2s])) or vector(0)) / sum(rate(nginx_ingress_controller_requests{` + ngx + `}[2s]))`,
			LatencyP95: `histogram_quantile(0.95, sum by (le) (rate(nginx_ingress_controller_request_duration_seconds_bucket{` + ngx + `}[2s])))`,
		}},
		{"app series: status or code, first token, business", QueriesFor(app, 30*time.Second, triage), SeriesQueries{
			Rate:          `sum(rate(http_requests_total{` + am + `}[30s]))`,
			ErrorShare:    `((sum(rate(http_requests_total{` + am + `, status=~"5.."}[30s])) or vector(0)) + (sum(rate(http_requests_total{` + am + `, status="", code=~"5.."}[30s])) or vector(0))) / sum(rate(http_requests_total{` + am + `}[30s]))`,
			LatencyP95:    `histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket{` + am + `}[30s])))`,
			FirstTokenP95: `histogram_quantile(0.95, sum by (le) (rate(chat_first_token_seconds_bucket{` + am + `}[30s])))`,
			Business:      []BusinessQuery{{"triage", `(sum(rate(chat_triage_total{` + am + `, outcome="failed"}[30s])) or vector(0)) / sum(rate(chat_triage_total{` + am + `}[30s]))`}},
		}},
		{"istio's requests, the app's first token and business", QueriesFor(istioApp, 30*time.Second, triage), SeriesQueries{
			Rate:          `sum(rate(istio_requests_total{` + ist + `}[30s]))`,
			ErrorShare:    `(sum(rate(istio_requests_total{` + ist + `, response_code=~"5.."}[30s])) or vector(0)) / sum(rate(istio_requests_total{` + ist + `}[30s]))`,
			LatencyP95:    `histogram_quantile(0.95, sum by (le) (rate(istio_request_duration_milliseconds_bucket{` + ist + `}[30s]))) * 0.001`,
			FirstTokenP95: `histogram_quantile(0.95, sum by (le) (rate(chat_first_token_seconds_bucket{` + am + `}[30s])))`,
			Business:      []BusinessQuery{{"triage", `(sum(rate(chat_triage_total{` + am + `, outcome="failed"}[30s])) or vector(0)) / sum(rate(chat_triage_total{` + am + `}[30s]))`}},
		}},
	} {
		g, w := tc.got, tc.want
		all := []string{g.Rate, g.ErrorShare, g.LatencyP95, g.FirstTokenP95}
		for _, b := range g.Business {
			all = append(all, b.Query)
		}
		for _, q := range all {
			if _, err := parser.NewParser(parser.Options{}).ParseExpr(q); q != "" && err != nil {
				t.Errorf("%s: %s is not PromQL: %v", tc.name, q, err)
			}
		}
		for _, f := range []struct{ name, got, want string }{
			{"rate", g.Rate, w.Rate}, {"5xx share", g.ErrorShare, w.ErrorShare}, {"latency p95", g.LatencyP95, w.LatencyP95}, {"first token p95", g.FirstTokenP95, w.FirstTokenP95},
		} {
			if f.got != f.want {
				t.Errorf("%s: %s:\ngot  %s\nwant %s", tc.name, f.name, f.got, f.want)
			}
		}
		if len(g.Business) != len(w.Business) {
			t.Errorf("%s: business %+v, want %+v", tc.name, g.Business, w.Business)
			continue
		}
		for i := range g.Business {
			if g.Business[i] != w.Business[i] {
				t.Errorf("%s: business:\ngot  %+v\nwant %+v", tc.name, g.Business[i], w.Business[i])
			}
		}
	}
}

// TestSeriesRealPrometheus reads the chart lines of the app's revisions through a real
// Prometheus: each line has the value the stand-in's counters give, a revision without series
// has empty points, and a line whose query fails is empty with a message.
func TestSeriesRealPrometheus(t *testing.T) {
	c, _ := scrapedPrometheus(t, appServer)
	ctx := context.Background()
	to := time.Now().Truncate(time.Second)
	r := Range{From: to.Add(-20 * time.Second), To: to, Step: time.Second}
	am := v1alpha1.AppMetrics{FirstToken: "chat_first_token_seconds"}
	read := func(hash string, business []v1alpha1.JudgeBusinessMetric) (last int, pts []pointView, msg string) {
		t.Helper()
		got, msg, err := c.RevisionSeries(ctx, QueriesFor(appSel("app", hash, am), 3*time.Second, business), r)
		if err != nil {
			t.Fatalf("%s: %v", hash, err)
		}
		if len(got) != 21 || !got[0].Time.Equal(r.From) || !got[20].Time.Equal(r.To) {
			t.Fatalf("%s: %d points from %v to %v, want 21 from %v to %v", hash, len(got), got[0].Time, got[len(got)-1].Time, r.From, r.To)
		}
		last = -1
		for i, p := range got {
			pts = append(pts, pointView{p.Rate, p.ErrorShare, p.LatencyP95, p.FirstTokenP95, p.Business})
			if p.Rate > 0 {
				last = i
			}
		}
		return last, pts, msg
	}
	near := func(what string, got *float64, want float64) {
		t.Helper()
		if got == nil || math.Abs(*got-want) > 1e-6 {
			t.Errorf("%s: %v, want %g", what, deref(got), want)
		}
	}
	// stable: two pods of 50 requests a scrape, 1 of them 5xx, durations in 0.05-0.1s
	last, pts, msg := read("s1", triage)
	if last < 0 || msg != "" {
		t.Fatalf("stable has no request rate (message %q): %+v", msg, pts)
	}
	p := pts[last]
	if p.rate < 50 || p.rate > 200 {
		t.Errorf("stable's rate %g, want 100 a scrape", p.rate)
	}
	near("stable's 5xx share", p.errorShare, 0.02)
	near("stable's p95 latency", p.latency, 0.0975)
	near("stable's p95 first token", p.firstToken, 0.0475)
	if v, ok := p.business["triage"]; !ok || math.Abs(v-0.02) > 1e-6 {
		t.Errorf("stable's triage share %v, want 0.02", p.business)
	}
	// canaries bad in one measure each
	_, pts, _ = read("errors", nil)
	near("a failing canary's 5xx share", pts[last].errorShare, 0.48)
	_, pts, _ = read("slow", nil)
	near("a slow canary's p95 latency", pts[last].latency, 0.975)
	near("a slow canary's p95 first token", pts[last].firstToken, 0.4875)
	_, pts, _ = read("triage", triage)
	if v := pts[last].business["triage"]; math.Abs(v-0.48) > 1e-6 {
		t.Errorf("a triage canary's share %v, want 0.48", pts[last].business)
	}
	// a revision without series: no values
	if l, pts, _ := read("gone", triage); l >= 0 || pts[20].errorShare != nil || pts[20].latency != nil {
		t.Errorf("a revision without series has values: %+v", pts)
	}
	// a business metric whose query fails: the other lines are read, the message says why
	_, pts, msg = read("s1", []v1alpha1.JudgeBusinessMetric{{Name: "bad", Metric: "chat triage", Events: map[string]string{"outcome": "failed"}}})
	if !strings.Contains(msg, "chat triage") || pts[last].errorShare == nil || pts[last].business != nil {
		t.Errorf("a failing business query: message %q, point %+v", msg, pts[last])
	}
}

type pointView struct {
	rate                            float64
	errorShare, latency, firstToken *float64
	business                        map[string]float64
}

func deref(f *float64) any {
	if f == nil {
		return nil
	}
	return *f
}

// TestSeriesRouterRealPrometheus reads the chart lines of Istio's and NGINX's canary and
// stable through a real Prometheus, without the decoys (Istio's source reporter, another
// namespace's Ingress).
func TestSeriesRouterRealPrometheus(t *testing.T) {
	c, _ := scrapedPrometheus(t, seriesServer)
	ctx := context.Background()
	to := time.Now().Truncate(time.Second)
	r := Range{From: to.Add(-10 * time.Second), To: to, Step: time.Second}
	for _, router := range Routers() {
		canary, stable := selectors(router, "bad")
		for _, tc := range []struct {
			name           string
			sel            Selector
			errors, p95    float64
			rateLo, rateHi float64
		}{
			{"canary", canary, 0.5, 0.4875, 10, 40},
			{"stable", stable, 0.01, 0.0975, 50, 200},
		} {
			pts, msg, err := c.RevisionSeries(ctx, QueriesFor(tc.sel, 3*time.Second, triage), r)
			if err != nil || msg != "" {
				t.Fatalf("%s %s: %v %q", router, tc.name, err, msg)
			}
			last := -1
			for i, p := range pts {
				if p.Rate > 0 {
					last = i
				}
			}
			if last < 0 {
				t.Fatalf("%s %s: no rate: %+v", router, tc.name, pts)
			}
			p := pts[last]
			if p.Rate < tc.rateLo || p.Rate > tc.rateHi || p.ErrorShare == nil || math.Abs(*p.ErrorShare-tc.errors) > 1e-6 ||
				p.LatencyP95 == nil || math.Abs(*p.LatencyP95-tc.p95) > 1e-6 || p.FirstTokenP95 != nil || p.Business != nil {
				t.Errorf("%s %s: rate %g, 5xx %v, p95 %v, first token %v, business %v; want 5xx %g, p95 %g", router, tc.name,
					p.Rate, deref(p.ErrorShare), deref(p.LatencyP95), deref(p.FirstTokenP95), p.Business, tc.errors, tc.p95)
			}
		}
	}
}
