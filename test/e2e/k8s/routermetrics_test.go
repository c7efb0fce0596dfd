package k8s

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/analysis"
	"ramp.dev/ramp/internal/kube"
	"ramp.dev/ramp/test/k8senv"
	"ramp.dev/ramp/test/promenv"
)

// istioSeries serves istio_requests_total as the destination sidecars of chat-api-stable and
// chat-api-canary would report them, in each namespace of canaryErrors: at every scrape,
// stable serves 100 more requests with 1 5xx, the canary 20 more with canaryErrors[ns] 5xx.
func istioSeries(t *testing.T, canaryErrors map[string]int64) string {
	var scrapes atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := scrapes.Add(1)
		b := &strings.Builder{}
		b.WriteString("# TYPE istio_requests_total counter\n")
		for ns, errs := range canaryErrors {
			for _, s := range []struct {
				svc              string
				requests, errors int64
			}{{"chat-api-stable", 100, 1}, {"chat-api-canary", 20, errs}} {
				labels := fmt.Sprintf(`reporter="destination",destination_service_namespace=%q,destination_service_name=%q`, ns, s.svc)
				fmt.Fprintf(b, "istio_requests_total{%s,response_code=\"200\"} %d\n", labels, (s.requests-s.errors)*n)
				fmt.Fprintf(b, "istio_requests_total{%s,response_code=\"503\"} %d\n", labels, s.errors*n)
			}
		}
		fmt.Fprint(w, b.String())
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// testRouterMetrics: with --prometheus-address and no builtin provider of the test's, the
// builtin error-rate metric of an Istio canary is read from a real Prometheus scraping Istio's
// series, and the judge is fed from the same counters: a canary failing half its requests is
// aborted by the analysis step (judge off) or by the judge alone (no analysis step), a healthy
// one is promoted with the judge on.
func testRouterMetrics(t *testing.T, env *k8senv.Env, cfg *rest.Config, metrics *metricsServer) {
	env.ApplyFiles(t, filepath.Join(repoRoot, "internal/kube/testdata/crds/networking.istio.io_virtualservices.yaml"))
	target := istioSeries(t, map[string]int64{"prom-healthy": 0, "prom-failing": 10, "prom-judge": 10})
	addr := promenv.Start(t, promenv.Binary(t), target)
	promenv.WaitScrapes(t, addr, 3, 30*time.Second)
	startController(t, cfg, "prometheus", metrics, kube.Options{
		Providers:         map[string]analysis.Provider{}, // the builtin provider is Kubernetes mode's own
		PrometheusAddress: addr,
		JudgeInterval:     time.Second,
	})
	analysisStep := v1alpha1.CanaryStep{Analysis: &v1alpha1.RolloutAnalysis{Templates: []v1alpha1.AnalysisTemplateRef{{TemplateName: "error-rate"}}}}
	for _, tc := range []struct {
		name  string
		steps []v1alpha1.CanaryStep
		judge *v1alpha1.CanaryJudge
		// failedRun is the kind of analysis run that must fail; empty means the canary is
		// promoted.
		failedRun v1alpha1.AnalysisKind
	}{
		{name: "prom-healthy", steps: []v1alpha1.CanaryStep{{SetWeight: ptr(int32(20))}, analysisStep}},
		{name: "prom-failing", steps: []v1alpha1.CanaryStep{{SetWeight: ptr(int32(20))}, analysisStep}, judge: &v1alpha1.CanaryJudge{Enabled: ptr(false)}, failedRun: v1alpha1.AnalysisKindStep},
		{name: "prom-judge", steps: []v1alpha1.CanaryStep{{SetWeight: ptr(int32(20))}, {Pause: &v1alpha1.RolloutPause{}}}, failedRun: v1alpha1.AnalysisKindJudge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newScenario(t, env, tc.name, "chat-api-stable", "chat-api-canary")
			vs := &unstructured.Unstructured{Object: map[string]any{
				"apiVersion": "networking.istio.io/v1beta1", "kind": "VirtualService",
				"metadata": map[string]any{"name": "chat-api", "namespace": tc.name},
				"spec": map[string]any{"hosts": []any{"chat-api"}, "http": []any{map[string]any{
					"route": []any{map[string]any{"destination": map[string]any{"host": "chat-api-stable"}, "weight": int64(100)}},
				}}},
			}}
			if err := s.c.Create(context.Background(), vs); err != nil {
				t.Fatal(err)
			}
			s.createRollout(v1alpha1.Strategy{Canary: &v1alpha1.CanaryStrategy{
				StableService: "chat-api-stable", CanaryService: "chat-api-canary",
				TrafficRouting: &v1alpha1.TrafficRouting{Istio: &v1alpha1.IstioTrafficRouting{VirtualService: v1alpha1.IstioVirtualService{Name: "chat-api"}}},
				Steps:          tc.steps,
				Judge:          tc.judge,
			}})
			s.waitPhase(v1alpha1.PhaseHealthy, 1, 90*time.Second)
			s.setImage(v2)
			if tc.failedRun == "" {
				ro := s.waitPhase(v1alpha1.PhaseHealthy, 2, 90*time.Second)
				for _, a := range ro.Status.Analysis {
					if a.Kind == v1alpha1.AnalysisKindStep && (a.Phase != v1alpha1.AnalysisSuccessful || len(a.Metrics) == 0 || len(a.Metrics[0].Measurements) == 0 || !strings.Contains(a.Metrics[0].Measurements[0].Value, "5xx in")) {
						t.Errorf("step analysis %s %s: %+v", a.Phase, a.Message, a.Metrics)
					}
				}
				return
			}
			ro := s.waitPhase(v1alpha1.PhaseDegraded, 1, 90*time.Second)
			var failed *v1alpha1.AnalysisRunStatus
			for i := range ro.Status.Analysis {
				if a := &ro.Status.Analysis[i]; a.Kind == tc.failedRun && a.Phase == v1alpha1.AnalysisFailed {
					failed = a
				}
			}
			if failed == nil {
				t.Fatalf("no failed %s run in %+v; message %s", tc.failedRun, ro.Status.Analysis, ro.Status.Message)
			}
			want := "0.5 (" // the step's builtin error-rate: "0.5 (300/600 5xx in 30s)"
			if tc.failedRun == v1alpha1.AnalysisKindJudge {
				want = "canary worse than stable"
			}
			if msg := failed.Message + fmt.Sprint(failed.Metrics); !strings.Contains(msg, want) {
				t.Errorf("failed %s run says %s; want %q in it", tc.failedRun, msg, want)
			}
		})
	}
}
