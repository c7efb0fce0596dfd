package kube

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/analysis/trafficmetrics"
	"ramp.dev/ramp/internal/control"
)

// TestRevisionSelector: each revision's requests for the dashboard's charts: the router's
// canary or stable Service, else the app's series by pod-template-hash, else why not.
func TestRevisionSelector(t *testing.T) {
	withRevs := func(ro *v1alpha1.Rollout) *v1alpha1.Rollout {
		ro.Status.Revisions = []v1alpha1.RevisionStatus{{Revision: 1, PodTemplateHash: "h1"}, {Revision: 2, PodTemplateHash: "h2"}, {Revision: 3, PodTemplateHash: "h3"}}
		ro.Status.StableRevision, ro.Status.CanaryRevision = 2, 3
		return ro
	}
	istio := withRevs(istioRollout())
	istioApp := withRevs(withApp(istioRollout(), v1alpha1.AppMetrics{FirstToken: "ft"}))
	appOnly := withRevs(withApp(canaryRollout(), v1alpha1.AppMetrics{}))
	for _, tc := range []struct {
		name         string
		ro           *v1alpha1.Rollout
		rev          int64
		requests, ft string
		err          string
	}{
		{"istio canary", istio, 3, `destination_service_name="chat-api-canary"`, "", ""},
		{"istio stable", istio, 2, `destination_service_name="chat-api-stable"`, "", ""},
		{"istio, an old revision", istio, 1, "", "", "revision 1 is neither canary nor stable"},
		{"istio with app series: first token", istioApp, 3, `destination_service_name="chat-api-canary"`, `ft_bucket{namespace="` + ns + `", pod_template_hash="h3"}`, ""},
		{"istio with app series: an old revision by its hash", istioApp, 1, `http_requests_total{namespace="` + ns + `", pod_template_hash="h1"}`, `pod_template_hash="h1"`, ""},
		{"app series", appOnly, 2, `pod_template_hash="h2"`, "", ""},
		{"app series, unknown revision", appOnly, 9, "", "", "revision 9 of rollout chat-api runs no pods with a known pod-template-hash"},
		{"no router metrics, no app series", withRevs(canaryRollout()), 2, "", "", "set spec.appMetrics"},
	} {
		sel, err := RevisionSelector(tc.ro, tc.rev)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: error %v, want %q", tc.name, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if !strings.Contains(sel.Requests(), tc.requests) || !strings.Contains(sel.FirstTokenBuckets(), tc.ft) || (tc.ft == "") != (sel.FirstTokenBuckets() == "") {
			t.Errorf("%s: requests %s, first token %q", tc.name, sel.Requests(), sel.FirstTokenBuckets())
		}
	}
}

// fakeProm answers every range query with rate at its last time, and counts the queries.
func fakeProm(t *testing.T, rate float64) (*httptest.Server, *atomic.Int64) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		_ = r.ParseForm()
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/api/v1/query":
			fmt.Fprint(w, `{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"1"]}]}}`)
		case "/api/v1/query_range":
			fmt.Fprintf(w, `{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[%s,"%g"]]}]}}`, r.Form.Get("end"), rate)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

// TestPromSeries: which Prometheus the charts read (the flag's, or a reachable annotation's),
// and the messages when a revision or the annotation cannot be read.
func TestPromSeries(t *testing.T) {
	flag, _ := fakeProm(t, 3)
	annotated, _ := fakeProm(t, 7)
	gone := httptest.NewServer(http.NotFoundHandler())
	gone.Close()
	flagClient, err := trafficmetrics.NewClient(flag.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	ro := istioRollout()
	ro.Status.Revisions = []v1alpha1.RevisionStatus{{Revision: 3, PodTemplateHash: "h3"}, {Revision: 1, PodTemplateHash: "h1"}, {Revision: 2, PodTemplateHash: "h2"}}
	ro.Status.StableRevision, ro.Status.CanaryRevision = 2, 3
	now := time.Date(2026, 12, 3, 7, 30, 2, 0, time.UTC)
	source := func(prom *trafficmetrics.Client, annotation string) *PromSeries {
		r := ro.DeepCopy()
		if annotation != "" {
			r.Annotations = map[string]string{AnnotationPrometheusAddress: annotation}
		}
		return &PromSeries{Get: func(context.Context, string) (*v1alpha1.Rollout, error) { return r, nil }, Prometheus: prom,
			Annotated: func(a string) (*trafficmetrics.Client, error) {
				if !strings.HasPrefix(a, "http://") {
					return nil, fmt.Errorf("annotation %s: %q is not an http(s) URL", AnnotationPrometheusAddress, a)
				}
				return trafficmetrics.NewClient(a, nil)
			},
			Now: func() time.Time { return now }}
	}
	lastRates := func(s *control.Series) []float64 {
		var out []float64
		for _, r := range s.Revisions {
			out = append(out, r.Points[len(r.Points)-1].Rate)
		}
		return out
	}
	ctx := context.Background()

	// Without a Prometheus: the 501 error naming the flags
	if _, err := source(nil, "").Series(ctx, "chat-api"); !errors.Is(err, control.ErrNoSeries) || !strings.Contains(err.Error(), "--prometheus-service") {
		t.Errorf("no Prometheus: %v", err)
	}
	if _, err := source(nil, gone.URL).Series(ctx, "chat-api"); !errors.Is(err, control.ErrNoSeries) || !strings.Contains(err.Error(), "cannot be reached from here") {
		t.Errorf("no Prometheus, an unreachable annotation: %v", err)
	}

	// With the flag's: 10 minutes at 5 s, each revision in order; revision 1 (neither canary
	// nor stable, no app series) empty with why
	s, err := source(flagClient, "").Series(ctx, "chat-api")
	if err != nil {
		t.Fatal(err)
	}
	if s.StepSeconds != 5 || !s.To.Equal(now.Truncate(5*time.Second)) || s.To.Sub(s.From) != 10*time.Minute || len(s.Revisions) != 3 || s.Message != "" {
		t.Fatalf("series %+v", s)
	}
	for i, r := range s.Revisions {
		if r.Revision != int64(i+1) || len(r.Points) != 121 || !r.Points[120].Time.Equal(s.To) {
			t.Fatalf("revision %d: %d points, last at %v", r.Revision, len(r.Points), r.Points[len(r.Points)-1].Time)
		}
	}
	if got := lastRates(s); fmt.Sprint(got) != "[0 3 3]" || !strings.Contains(s.Revisions[0].Message, "revision 1 is neither canary nor stable") || s.Revisions[1].Message != "" {
		t.Errorf("rates %v, messages %q %q", got, s.Revisions[0].Message, s.Revisions[1].Message)
	}

	// A reachable annotation is read instead of the flag's; an unreachable or a bad one is
	// not, and the series say why
	if s, err := source(flagClient, annotated.URL).Series(ctx, "chat-api"); err != nil || fmt.Sprint(lastRates(s)) != "[0 7 7]" || s.Message != "" {
		t.Errorf("reachable annotation: %v %v %q", err, s, s.Message)
	}
	if s, err := source(nil, annotated.URL).Series(ctx, "chat-api"); err != nil || fmt.Sprint(lastRates(s)) != "[0 7 7]" {
		t.Errorf("reachable annotation without a flag: %v %v", err, s)
	}
	for _, a := range []string{gone.URL, "prometheus.monitoring:9090"} {
		s, err := source(flagClient, a).Series(ctx, "chat-api")
		if err != nil || fmt.Sprint(lastRates(s)) != "[0 3 3]" || !strings.Contains(s.Message, "cannot be reached from here") ||
			!strings.Contains(s.Message, a) || !strings.Contains(s.Message, "the charts read "+flag.URL+" instead") {
			t.Errorf("annotation %s: %v %q", a, err, s.Message)
		}
	}
}
