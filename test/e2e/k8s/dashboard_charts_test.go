package k8s

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/analysis"
	"ramp.dev/ramp/internal/control"
	"ramp.dev/ramp/internal/kube"
	"ramp.dev/ramp/test/k8senv"
	"ramp.dev/ramp/test/promenv"
	"ramp.dev/ramp/test/testkit"
)

// TestDashboardCharts: `ramp dashboard --prometheus-address` answers the series endpoint with
// each revision's lines from the app's own series in a real Prometheus: stable's 10% of 5xx
// and 20% of failed triage answers, the canary's none, and both revisions' latency and first
// token.
func TestDashboardCharts(t *testing.T) {
	env := k8senv.Start(t)
	cfg := installRamp(t, env)
	f := newFleet(t, rampClient(t, env))
	addr := promenv.StartConfig(t, promenv.Binary(t), f.scrapeConfig())
	startController(t, cfg, "dashboard-charts", nil, kube.Options{
		Providers: map[string]analysis.Provider{}, PrometheusAddress: addr, JudgeInterval: time.Second,
	})
	ns := "dashboard-charts"
	f.set(ns, v1, behaviour{errorsPer100: 10, failedPer100: 20})
	f.set(ns, v2, behaviour{})
	s := newScenario(t, env, ns, "chat-api-stable", "chat-api-canary")
	strategy := v1alpha1.Strategy{Canary: &v1alpha1.CanaryStrategy{
		StableService: "chat-api-stable", CanaryService: "chat-api-canary",
		Steps: []v1alpha1.CanaryStep{{SetWeight: ptr(int32(34))}, {Pause: &v1alpha1.RolloutPause{}}},
		Judge: &v1alpha1.CanaryJudge{Business: []v1alpha1.JudgeBusinessMetric{{Name: "triage", Metric: "chat_triage_total", Events: map[string]string{"outcome": "failed"}}}, EndAnalysisEarly: ptr(false)},
	}}
	noWatch(&strategy)
	ro := &v1alpha1.Rollout{
		ObjectMeta: metav1.ObjectMeta{Name: "chat-api", Namespace: ns},
		Spec: v1alpha1.RolloutSpec{WorkloadRef: &v1alpha1.WorkloadRef{Name: "chat-api"}, Strategy: strategy,
			AppMetrics: &v1alpha1.AppMetrics{FirstToken: "chat_first_token_seconds"}},
	}
	if err := s.c.Create(context.Background(), ro); err != nil {
		t.Fatal(err)
	}
	f.traffic(t, ns)
	s.waitPhase(v1alpha1.PhaseHealthy, 1, 90*time.Second)
	s.setImage(v2)
	s.waitPhase(v1alpha1.PhasePaused, 1, 90*time.Second)

	// Given ramp dashboard with the Prometheus's address
	bin, err := rampBinary()
	if err != nil {
		t.Fatal(err)
	}
	listen := testkit.FreeAddr(t)
	out := &testkit.SyncBuffer{}
	cmd := exec.Command(bin, "--kubeconfig", env.Kubeconfig, "-n", ns, "dashboard", "--address", listen, "--read-only", "--prometheus-address", addr)
	cmd.Env = os.Environ()
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Signal(os.Interrupt); _ = cmd.Wait() })

	// Then the series endpoint has both revisions' lines, each with its own values
	var last control.Series
	eventually(t, 60*time.Second, "the dashboard's series of both revisions", func(context.Context) error {
		code, body := httpDo("http://"+listen+"/dashboard/api/rollouts/chat-api/series", "GET", "")
		if code != 200 {
			return fmt.Errorf("GET series: %d %s (ramp dashboard: %s)", code, body, out.String())
		}
		var sr control.Series
		if err := json.Unmarshal([]byte(body), &sr); err != nil {
			return err
		}
		last = sr
		if sr.StepSeconds != 5 || sr.To.Sub(sr.From) != 10*time.Minute || len(sr.Business) != 1 || sr.Business[0] != "triage" {
			return fmt.Errorf("series step %ds from %v to %v, business %v", sr.StepSeconds, sr.From, sr.To, sr.Business)
		}
		if len(sr.Revisions) != 2 || sr.Revisions[0].Revision != 1 || sr.Revisions[1].Revision != 2 {
			return fmt.Errorf("revisions %+v", sr.Revisions)
		}
		// stable's 5xx and failed triage shares, the canary's none (20 req/s spread over 3 pods)
		want := [2]struct{ errs, triage float64 }{{0.1, 0.2}, {0, 0}}
		for i, r := range sr.Revisions {
			if len(r.Points) != 121 || r.Message != "" {
				return fmt.Errorf("revision %d: %d points, message %q", r.Revision, len(r.Points), r.Message)
			}
			p := r.Points[len(r.Points)-1]
			if p.Rate <= 0 || p.ErrorShare == nil || p.LatencyP95 == nil || p.FirstTokenP95 == nil {
				return fmt.Errorf("revision %d's last point: %+v", r.Revision, p)
			}
			if math.Abs(*p.ErrorShare-want[i].errs) > 0.05 {
				return fmt.Errorf("revision %d's 5xx share %g, want %g", r.Revision, *p.ErrorShare, want[i].errs)
			}
			if v, ok := p.Business["triage"]; !ok || math.Abs(v-want[i].triage) > 0.08 {
				return fmt.Errorf("revision %d's triage share %v, want %g", r.Revision, p.Business, want[i].triage)
			}
		}
		return nil
	})
	for _, r := range last.Revisions {
		p := r.Points[len(r.Points)-1]
		t.Logf("revision %d at %s: %.2f req/s, 5xx %.3f, p95 %.3fs, first token p95 %.3fs, triage %v", r.Revision, p.Time.Format(time.TimeOnly), p.Rate, *p.ErrorShare, *p.LatencyP95, *p.FirstTokenP95, p.Business)
	}
}
