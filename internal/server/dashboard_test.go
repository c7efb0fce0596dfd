package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/control"
)

// argSecret is an analysis argument's value: the dashboard's views must not show it.
const argSecret = "arg-s3cret"

// dashBackend is a rollout in canary at step 3 with an analysis run and many events, and,
// when series is set, the per-revision series of a mode that measures them.
type dashBackend struct {
	fakeBackend
	events int
	series *control.Series
}

func (d *dashBackend) rollout() v1alpha1.Rollout {
	r := chatAPI()
	w := func(v int32) *int32 { return &v }
	r.Spec.Strategy.Canary = &v1alpha1.CanaryStrategy{Steps: []v1alpha1.CanaryStep{
		{SetWeight: w(20)},
		{Pause: &v1alpha1.RolloutPause{Duration: &intstr.IntOrString{Type: intstr.String, StrVal: "30s"}}},
		{Analysis: &v1alpha1.RolloutAnalysis{Templates: []v1alpha1.AnalysisTemplateRef{{TemplateName: "error-rate"}}}},
		{SetWeight: w(50)},
		{Pause: &v1alpha1.RolloutPause{}},
	}}
	r.Status = v1alpha1.RolloutStatus{
		Phase: v1alpha1.PhaseProgressing, Step: "3/5", CurrentStepIndex: w(2), CanaryWeight: 20,
		StableRevision: 1, CanaryRevision: 2, CurrentRevision: 2,
		Revisions: []v1alpha1.RevisionStatus{
			{Revision: 1, Role: v1alpha1.RoleStable, Weight: 80, Desired: 3, Ready: 3},
			{Revision: 2, Role: v1alpha1.RoleCanary, Weight: 20, Desired: 1, Ready: 1},
		},
		Analysis: []v1alpha1.AnalysisRunStatus{{
			Name: "step-2-step2", Kind: v1alpha1.AnalysisKindStep, Revision: 2, BaselineRevision: 1, Step: w(2),
			Spec: v1alpha1.RolloutAnalysis{
				Templates: []v1alpha1.AnalysisTemplateRef{{TemplateName: "error-rate"}},
				Args:      []v1alpha1.AnalysisRunArgument{{Name: "token", Value: argSecret}},
			},
			StartedAt: metav1.NewTime(time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)),
			Phase:     v1alpha1.AnalysisRunning,
			Metrics: []v1alpha1.MetricResult{{Name: "error-rate", Phase: v1alpha1.AnalysisRunning, Count: 1, Successful: 1,
				Message: "canary 0 errors in 36, stable 1 in 140"}},
		}},
	}
	return r
}

func (d *dashBackend) List(ctx context.Context) ([]v1alpha1.Rollout, error) {
	return []v1alpha1.Rollout{d.rollout()}, nil
}

func (d *dashBackend) Get(ctx context.Context, name string) (*v1alpha1.Rollout, error) {
	if err := d.lookup(name); err != nil {
		return nil, err
	}
	r := d.rollout()
	return &r, nil
}

func (d *dashBackend) History(ctx context.Context, name string) ([]control.Revision, error) {
	if err := d.lookup(name); err != nil {
		return nil, err
	}
	r := d.rollout()
	return []control.Revision{
		{Rollout: name, Number: 1, Hash: "aaa", Cause: "apply", Template: r.Spec.Template},
		{Rollout: name, Number: 2, Hash: "bbb", Cause: "apply", Template: r.Spec.Template},
	}, nil
}

func (d *dashBackend) Events(ctx context.Context, name string, after uint64) ([]control.Event, error) {
	if err := d.lookup(name); err != nil {
		return nil, err
	}
	var out []control.Event
	for i := 1; i <= d.events; i++ {
		out = append(out, control.Event{Seq: uint64(i), Rollout: name, Reason: fmt.Sprintf("E%d", i)})
	}
	return out, nil
}

// seriesBackend is dashBackend in a mode that measures traffic (control.SeriesSource).
type seriesBackend struct{ *dashBackend }

func (s seriesBackend) Series(ctx context.Context, name string) (*control.Series, error) {
	if err := s.lookup(name); err != nil {
		return nil, err
	}
	return s.series, nil
}

func dashServer(t *testing.T, b control.Control) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(New(b, testToken, nil))
	t.Cleanup(srv.Close)
	return srv
}

func get(t *testing.T, url, auth string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(data)
}

func TestDashboardPageIsEmbeddedAndServedWithoutToken(t *testing.T) {
	srv := dashServer(t, &dashBackend{})
	for path, want := range map[string]string{
		"/dashboard/":           `<script src="app.js"></script>`,
		"/dashboard/app.js":     "function renderActions",
		"/dashboard/chart.js":   "function lineChart",
		"/dashboard/style.css":  "#charts",
		"/dashboard/index.html": "", // the file server sends index.html as the directory
	} {
		code, h, body := get(t, srv.URL+path, "")
		if want == "" {
			if code != http.StatusMovedPermanently {
				t.Errorf("GET %s: %d, want a redirect to /dashboard/", path, code)
			}
			continue
		}
		if code != http.StatusOK || !strings.Contains(body, want) {
			t.Errorf("GET %s: %d, body without %q", path, code, want)
		}
		if csp := h.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") {
			t.Errorf("GET %s: Content-Security-Policy %q", path, csp)
		}
		if h.Get("Referrer-Policy") != "no-referrer" {
			t.Errorf("GET %s: Referrer-Policy %q, want no-referrer (the URL may carry ?token=)", path, h.Get("Referrer-Policy"))
		}
	}
	// No file of the page loads anything from elsewhere.
	for _, f := range []string{"index.html", "app.js", "chart.js", "style.css"} {
		data, err := dashboardFiles.ReadFile("dashboard/" + f)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(data), "https://") || strings.Contains(string(data), "innerHTML") {
			t.Errorf("%s loads from the network or writes HTML from data", f)
		}
	}
	if code, h, _ := get(t, srv.URL+"/", ""); code != http.StatusFound || h.Get("Location") != "/dashboard/" {
		t.Errorf("GET /: %d to %q, want 302 to /dashboard/", code, h.Get("Location"))
	}
}

func TestDashboardReadAPIShowsTheRolloutWithoutSecrets(t *testing.T) {
	srv := dashServer(t, &dashBackend{events: 250})
	// The list, without the token.
	code, _, body := get(t, srv.URL+"/dashboard/api/rollouts", "")
	var list []RolloutSummary
	if code != http.StatusOK || json.Unmarshal([]byte(body), &list) != nil || len(list) != 1 {
		t.Fatalf("GET /dashboard/api/rollouts: %d %s", code, body)
	}
	if s := list[0]; s.Name != "chat-api" || s.Phase != "Progressing" || s.Step != "3/5" || s.CanaryWeight != 20 || len(s.Revisions) != 2 || s.Revisions[1].Weight != 20 {
		t.Errorf("summary %+v", s)
	}
	// One rollout, without the token.
	code, _, body = get(t, srv.URL+"/dashboard/api/rollouts/chat-api", "")
	var v RolloutView
	if code != http.StatusOK || json.Unmarshal([]byte(body), &v) != nil {
		t.Fatalf("GET /dashboard/api/rollouts/chat-api: %d %s", code, body)
	}
	wantSteps := []string{"setWeight 20", "pause 30s", "analysis error-rate", "setWeight 50", "pause (until promoted)"}
	if fmt.Sprint(v.Steps) != fmt.Sprint(wantSteps) || v.StepIndex == nil || *v.StepIndex != 2 {
		t.Errorf("steps %q at %v, want %q at 2", v.Steps, v.StepIndex, wantSteps)
	}
	if len(v.Analysis) != 1 || v.Analysis[0].Templates[0] != "error-rate" || v.Analysis[0].Metrics[0].Message != "canary 0 errors in 36, stable 1 in 140" {
		t.Errorf("analysis %+v", v.Analysis)
	}
	if len(v.History) != 2 || v.History[1].Number != 2 || v.History[1].Hash != "bbb" {
		t.Errorf("history %+v", v.History)
	}
	if len(v.Events) != maxViewEvents || v.Events[0].Seq != 51 || v.Events[len(v.Events)-1].Seq != 250 {
		t.Errorf("%d events from %d, want the newest %d (51..250)", len(v.Events), v.Events[0].Seq, maxViewEvents)
	}
	// Nothing of the template or the analysis arguments, in any answer without the token.
	for _, p := range []string{"/dashboard/api/rollouts", "/dashboard/api/rollouts/chat-api"} {
		_, _, body := get(t, srv.URL+p, "")
		for _, secret := range []string{dbPassword, argSecret, "DB_PASSWORD", `"template"`} {
			if strings.Contains(body, secret) {
				t.Errorf("GET %s shows %q: %s", p, secret, body)
			}
		}
	}
	// A missing rollout is a 404; the control API itself still needs the token.
	if code, _, body := get(t, srv.URL+"/dashboard/api/rollouts/nope", ""); code != http.StatusNotFound {
		t.Errorf("GET a missing rollout: %d %s", code, body)
	}
	if code, _, _ := get(t, srv.URL+"/api/v1/rollouts/chat-api", ""); code != http.StatusUnauthorized {
		t.Errorf("GET /api/v1/rollouts/chat-api without token: %d, want 401", code)
	}
}

func TestDashboardSeries(t *testing.T) {
	share := 0.25
	want := &control.Series{Rollout: "chat-api", StepSeconds: 5, Revisions: []control.RevisionSeries{
		{Revision: 1, Points: []control.SeriesPoint{{Requests: 40, Rate: 8, Errors: 10, ErrorShare: &share}}},
	}}
	// A mode that measures traffic answers its series, on the page's API without the token
	// and on the control API with it.
	srv := dashServer(t, seriesBackend{&dashBackend{series: want}})
	for _, c := range []struct{ path, auth string }{
		{"/dashboard/api/rollouts/chat-api/series", ""},
		{"/api/v1/rollouts/chat-api/series", "Bearer " + testToken},
	} {
		code, _, body := get(t, srv.URL+c.path, c.auth)
		var got control.Series
		if code != http.StatusOK || json.Unmarshal([]byte(body), &got) != nil {
			t.Fatalf("GET %s: %d %s", c.path, code, body)
		}
		if len(got.Revisions) != 1 || got.Revisions[0].Points[0].Rate != 8 || *got.Revisions[0].Points[0].ErrorShare != 0.25 {
			t.Errorf("GET %s: %+v", c.path, got)
		}
	}
	if code, _, _ := get(t, srv.URL+"/api/v1/rollouts/chat-api/series", ""); code != http.StatusUnauthorized {
		t.Errorf("GET /api/v1/.../series without token: %d, want 401", code)
	}
	if code, _, _ := get(t, srv.URL+"/dashboard/api/rollouts/nope/series", ""); code != http.StatusNotFound {
		t.Errorf("series of a missing rollout: %d, want 404", code)
	}
	// A mode without series (Kubernetes mode) says so.
	srv = dashServer(t, &dashBackend{})
	code, _, body := get(t, srv.URL+"/dashboard/api/rollouts/chat-api/series", "")
	if code != http.StatusNotImplemented || !strings.Contains(body, "Prometheus") {
		t.Errorf("series without a SeriesSource: %d %s, want 501 naming Prometheus", code, body)
	}
}

func TestDashboardKeepsHostChecks(t *testing.T) {
	srv := dashServer(t, &dashBackend{})
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/dashboard/api/rollouts", nil)
	req.Host = "evil.example:80"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("dashboard read with a rebound Host: %d, want 403", resp.StatusCode)
	}
}
