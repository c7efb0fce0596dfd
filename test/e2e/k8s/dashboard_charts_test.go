package k8s

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
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
	eventually(t, 90*time.Second, "the dashboard's series of both revisions", func(context.Context) error {
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
			// Shares are told once the 30 s window holds 100 requests at least (a young
			// series' rate is low: Prometheus extrapolates little past its first sample).
			if n := p.Rate * 30; n < 100 {
				return fmt.Errorf("revision %d: %.0f requests in the last 30s so far", r.Revision, n)
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

	// And the page draws every chart with a line (of two points at least) for each revision,
	// and no note
	ctx := headlessChromium(t)
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(wctx, chromedp.Navigate("http://"+listen+"/dashboard/#chat-api")); err != nil {
		t.Fatal(err)
	}
	want := []string{}
	for _, c := range []string{"Request rate", "5xx share", "Latency p95", "First token p95", "triage: share of events"} {
		want = append(want, c+": revision 1 (stable)", c+": revision 2 (canary)")
	}
	var lines []string
	var note string
	eventually(t, 30*time.Second, "the page's charts", func(context.Context) error {
		ectx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		var err error
		if lines, err = chromedp.Run(ectx, chromedp.Evaluate[[]string](`[...document.querySelectorAll("#charts figure")].flatMap((f) => [...f.querySelectorAll("path.line")].filter((p) => p.getAttribute("d").includes("L")).map((p) => f.dataset.title + ": " + p.dataset.label))`)); err != nil {
			return err
		}
		if note, err = chromedp.Run(ectx, chromedp.Evaluate[string](`document.querySelector("#charts-note").hidden ? "" : document.querySelector("#charts-note").textContent`)); err != nil {
			return err
		}
		for _, w := range want {
			if !slices.Contains(lines, w) {
				return fmt.Errorf("no line %q among %q (note %q)", w, lines, note)
			}
		}
		if note != "" {
			return fmt.Errorf("note %q", note)
		}
		return nil
	})
	png, err := chromedp.Run(wctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(cmp.Or(os.Getenv("RAMP_ARTIFACTS"), filepath.Join("..", "artifacts")), "dashboard")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path, _ := filepath.Abs(filepath.Join(dir, "kubernetes-charts.png"))
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
}

// headlessChromium starts Debian's chromium (or RAMP_CHROMIUM) for the test; without one the
// test is skipped, unless CI is set: then it fails.
func headlessChromium(t *testing.T) context.Context {
	t.Helper()
	exe := os.Getenv("RAMP_CHROMIUM")
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if exe == "" {
			exe, _ = exec.LookPath(name)
		}
	}
	if exe == "" {
		msg := "no chromium on PATH (nor RAMP_CHROMIUM): install Debian's chromium (bash test/tools/chromium.sh)"
		if ci := os.Getenv("CI"); ci != "" && ci != "false" && ci != "0" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	opts := append(slices.Clone(chromedp.DefaultExecAllocatorOptions[:]),
		chromedp.ExecPath(exe), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.WindowSize(1400, 1800), chromedp.UserDataDir(t.TempDir()))
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(alloc)
	t.Cleanup(func() { cancelCtx(); cancelAlloc() })
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start chromium %s: %s", exe, err)
	}
	return ctx
}
