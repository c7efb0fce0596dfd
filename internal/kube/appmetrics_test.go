package kube

import (
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/analysis/trafficmetrics"
	"ramp.dev/ramp/internal/spec"
)

// routedRollout is a canary rollout on router name (every router of spec.Routers but local
// mode's proxy).
func routedRollout(t *testing.T, name string) *v1alpha1.Rollout {
	ro := canaryRollout(v1alpha1.CanaryStep{SetWeight: ptr(int32(25))})
	tr := &v1alpha1.TrafficRouting{}
	switch name {
	case spec.RouterService:
		tr = nil
	case spec.RouterGatewayAPI:
		tr.GatewayAPI = &v1alpha1.GatewayAPITrafficRouting{HTTPRoute: "chat-api"}
	case spec.RouterIstio:
		tr.Istio = &v1alpha1.IstioTrafficRouting{VirtualService: v1alpha1.IstioVirtualService{Name: "chat-api"}}
	case spec.RouterSMI:
		tr.SMI = &v1alpha1.SMITrafficRouting{}
	case spec.RouterNginx:
		tr.Nginx = &v1alpha1.NginxTrafficRouting{StableIngress: "chat-api"}
	case spec.RouterALB:
		tr.ALB = &v1alpha1.ALBTrafficRouting{Ingress: "chat-api", ServicePort: 80}
	default:
		t.Fatalf("no rollout for router %s", name)
	}
	ro.Spec.Strategy.Canary.TrafficRouting = tr
	return ro
}

// TestAppMetricsEveryRouter: with spec.appMetrics (and a first-token histogram) and a
// Prometheus, nothing is refused on any router that ramp's builtin provider can measure from
// Prometheus, and the judge is on with every metric it can feed and a business metric; the
// request metrics come from the router's own series where it has them (istio, nginx), unless
// the app's are preferred.
func TestAppMetricsEveryRouter(t *testing.T) {
	var all []v1alpha1.Metric
	for _, name := range trafficmetrics.Metrics() {
		all = append(all, v1alpha1.Metric{Name: name, Provider: v1alpha1.MetricProvider{Builtin: &v1alpha1.BuiltinMetric{Metric: name}}})
	}
	tmpl := &v1alpha1.AnalysisTemplate{Spec: v1alpha1.AnalysisTemplateSpec{Metrics: all}}
	judge := v1alpha1.CanaryJudge{Metrics: trafficmetrics.JudgeMetrics(), Business: []v1alpha1.JudgeBusinessMetric{{Name: "triage", Metric: "chat_triage_total", Events: map[string]string{"outcome": "failed"}}}}
	for _, r := range spec.Routers() {
		if r.Name == spec.RouterProxy {
			continue
		}
		for _, prefer := range []string{"", spec.AppMetricsPreferApp} {
			t.Run(r.Name+"/prefer="+prefer, func(t *testing.T) {
				ro := withApp(judgeOf(routedRollout(t, r.Name), judge), v1alpha1.AppMetrics{FirstToken: "chat_first_token_seconds", Prefer: prefer})
				ro.Status.Revisions = []v1alpha1.RevisionStatus{{Revision: 1, PodTemplateHash: "stablehash"}, {Revision: 2, PodTemplateHash: "canaryhash"}}
				m := &routerMetrics{ownsBuiltin: true, address: "http://prometheus:9090"}
				if errs := append(append(Validate(ro), m.validate(ro)...), m.checkTemplate(ro, tmpl)...); len(errs) > 0 {
					t.Fatalf("refused: %v", errs)
				}
				if !m.judgeOn(ro) {
					t.Fatal("judge off")
				}
				canary, stable, err := selectors(ro, 2, 1)
				if err != nil {
					t.Fatal(err)
				}
				wantRouter := trafficmetrics.App
				if r.Metrics != "" && prefer == "" {
					wantRouter = r.Metrics
				}
				if canary.Router != wantRouter || stable.Router != wantRouter {
					t.Errorf("request metrics from %s and %s, want %s", canary.Router, stable.Router, wantRouter)
				}
				if canary.App == nil || canary.App.Hash != "canaryhash" || canary.App.PodPrefix != "chat-api-canaryhash-" || stable.App == nil || stable.App.Hash != "stablehash" {
					t.Errorf("app selectors %+v, %+v", canary.App, stable.App)
				}
				for _, metric := range trafficmetrics.Metrics() {
					if why := canary.Unsupported(metric); why != "" {
						t.Errorf("%s: %s", metric, why)
					}
				}
			})
		}
	}
}

// TestAppMetricsSelectors: a revision is selected by its pod-template-hash from the status,
// blue-green too; one without a known hash is an error that names it; the default judge
// metrics leave first-token out without its histogram.
func TestAppMetricsSelectors(t *testing.T) {
	bg := &v1alpha1.Rollout{ObjectMeta: metav1.ObjectMeta{Name: "chat-api", Namespace: ns}, Spec: v1alpha1.RolloutSpec{
		WorkloadRef: &v1alpha1.WorkloadRef{Name: "chat-api"}, AppMetrics: &v1alpha1.AppMetrics{},
		Strategy: v1alpha1.Strategy{BlueGreen: &v1alpha1.BlueGreenStrategy{ActiveService: "a", PreviewService: "p"}}}}
	bg.Status.Revisions = []v1alpha1.RevisionStatus{{Revision: 3, PodTemplateHash: "h3"}, {Revision: 4, PodTemplateHash: "h4"}}
	preview, active, err := selectors(bg, 4, 3)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := preview.Requests(), `http_requests_total{namespace="`+ns+`", pod_template_hash="h4"}`; got != want {
		t.Errorf("preview requests %s, want %s", got, want)
	}
	if got, want := active.Restarts(), `kube_pod_container_status_restarts_total{namespace="`+ns+`", pod=~"chat-api-h3-[a-z0-9]{5}"}`; got != want {
		t.Errorf("active restarts %s, want %s", got, want)
	}
	if _, _, err := selectors(bg, 5, 3); err == nil || !strings.Contains(err.Error(), "revision 5 of rollout chat-api runs no pods with a known pod-template-hash yet") {
		t.Errorf("unknown revision: %v", err)
	}
	if got := judgeSettings(withApp(canaryRollout(), v1alpha1.AppMetrics{})).Metrics; strings.Join(got, ",") != "error-rate,latency" {
		t.Errorf("default judge metrics without a first-token histogram: %v", got)
	}
	if got := judgeSettings(withApp(canaryRollout(), v1alpha1.AppMetrics{FirstToken: "ft"})).Metrics; strings.Join(got, ",") != "error-rate,latency,first-token" {
		t.Errorf("default judge metrics with a first-token histogram: %v", got)
	}
}
