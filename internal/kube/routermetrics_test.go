package kube

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"ramp.dev/ramp/api/v1alpha1"
)

func istioRollout() *v1alpha1.Rollout {
	ro := canaryRollout(v1alpha1.CanaryStep{SetWeight: ptr(int32(25))}, v1alpha1.CanaryStep{Pause: &v1alpha1.RolloutPause{}})
	ro.Spec.Strategy.Canary.TrafficRouting = &v1alpha1.TrafficRouting{Istio: &v1alpha1.IstioTrafficRouting{VirtualService: v1alpha1.IstioVirtualService{Name: "chat-api"}}}
	return ro
}

func nginxRollout() *v1alpha1.Rollout {
	ro := canaryRollout(v1alpha1.CanaryStep{SetWeight: ptr(int32(25))})
	ro.Spec.Strategy.Canary.TrafficRouting = &v1alpha1.TrafficRouting{Nginx: &v1alpha1.NginxTrafficRouting{StableIngress: "chat-api"}}
	return ro
}

func withApp(ro *v1alpha1.Rollout, a v1alpha1.AppMetrics) *v1alpha1.Rollout {
	ro.Spec.AppMetrics = &a
	return ro
}

func judgeOf(ro *v1alpha1.Rollout, j v1alpha1.CanaryJudge) *v1alpha1.Rollout {
	ro.Spec.Strategy.Canary.Judge = &j
	return ro
}

func TestRouterMetricsValidation(t *testing.T) {
	const prom = "http://prometheus.monitoring:9090"
	annotated := func(ro *v1alpha1.Rollout, addr string) *v1alpha1.Rollout {
		ro.Annotations = map[string]string{AnnotationPrometheusAddress: addr}
		return ro
	}
	on := ptr(true)
	for _, tt := range []struct {
		name    string
		ro      *v1alpha1.Rollout
		address string
		want    string // "" means valid
		judgeOn bool
	}{
		{name: "judge on by default without router metrics is off", ro: canaryRollout(), judgeOn: false},
		{name: "judge on by default with istio but no Prometheus is off", ro: istioRollout(), judgeOn: false},
		{name: "judge on by default with istio and Prometheus", ro: istioRollout(), address: prom, judgeOn: true},
		{name: "judge on by default with nginx and an annotated Prometheus", ro: annotated(nginxRollout(), prom), judgeOn: true},
		{name: "judge off", ro: judgeOf(istioRollout(), v1alpha1.CanaryJudge{Enabled: ptr(false)}), address: prom, judgeOn: false},
		{name: "judge enabled with istio and Prometheus", ro: judgeOf(istioRollout(), v1alpha1.CanaryJudge{Enabled: on, Metrics: []string{"error-rate"}}), address: prom, judgeOn: true},
		{name: "judge enabled on plain Services", ro: judgeOf(canaryRollout(), v1alpha1.CanaryJudge{Enabled: on}), address: prom, judgeOn: true,
			want: "spec.strategy.canary.judge.enabled: true cannot be honoured in Kubernetes mode, where the judge reads the traffic router's or the app's counters from Prometheus: the service (plain Service selectors) router exports no request metrics ramp reads (trafficRouting istio and nginx do): set spec.appMetrics to read the app's own series"},
		{name: "judge enabled without Prometheus", ro: judgeOf(istioRollout(), v1alpha1.CanaryJudge{Enabled: on}), judgeOn: true,
			want: "spec.strategy.canary.judge.enabled: true cannot be honoured in Kubernetes mode, where the judge reads the traffic router's or the app's counters from Prometheus: no Prometheus is set: start the controller with --prometheus-address, or annotate the rollout ramp.dev/prometheus-address"},
		{name: "judge enabled with the SMI router", ro: func() *v1alpha1.Rollout {
			ro := judgeOf(canaryRollout(), v1alpha1.CanaryJudge{Enabled: on})
			ro.Spec.Strategy.Canary.TrafficRouting = &v1alpha1.TrafficRouting{SMI: &v1alpha1.SMITrafficRouting{}}
			return ro
		}(), address: prom, judgeOn: true,
			want: "spec.strategy.canary.judge.enabled: true cannot be honoured in Kubernetes mode, where the judge reads the traffic router's or the app's counters from Prometheus: the smi router exports no request metrics ramp reads (trafficRouting istio and nginx do): set spec.appMetrics to read the app's own series"},
		{name: "latency is judged from the router's histogram", ro: judgeOf(istioRollout(), v1alpha1.CanaryJudge{Metrics: []string{"error-rate", "latency"}}), address: prom, judgeOn: true},
		{name: "ttfb is not judged", ro: judgeOf(istioRollout(), v1alpha1.CanaryJudge{Metrics: []string{"error-rate", "ttfb"}}), address: prom, judgeOn: true,
			want: `spec.strategy.canary.judge.metrics[1]: "ttfb" is not judged in Kubernetes mode, where no usual Prometheus series holds it; use error-rate, latency, first-token`},
		{name: "first-token needs the app's histogram", ro: withApp(judgeOf(istioRollout(), v1alpha1.CanaryJudge{Metrics: []string{"first-token"}}), v1alpha1.AppMetrics{}), address: prom, judgeOn: true,
			want: `spec.strategy.canary.judge.metrics[0]: "first-token" is judged in Kubernetes mode from the app's first-token histogram: set spec.appMetrics.firstToken`},
		{name: "first-token with the app's histogram", ro: withApp(judgeOf(canaryRollout(), v1alpha1.CanaryJudge{Metrics: []string{"first-token"}}), v1alpha1.AppMetrics{FirstToken: "chat_first_token_seconds"}), address: prom, judgeOn: true},
		{name: "business metrics need the app's series", ro: judgeOf(istioRollout(), v1alpha1.CanaryJudge{Business: []v1alpha1.JudgeBusinessMetric{{Name: "triage", Metric: "chat_triage_total", Events: map[string]string{"outcome": "failed"}}}}), address: prom, judgeOn: true,
			want: `spec.strategy.canary.judge.business[0]: "triage" is read in Kubernetes mode from the app's own series in Prometheus: set spec.appMetrics (and scrape the pods as the README shows)`},
		{name: "business metrics from the app's series", ro: withApp(judgeOf(canaryRollout(), v1alpha1.CanaryJudge{Business: []v1alpha1.JudgeBusinessMetric{{Name: "triage", Metric: "chat_triage_total", Events: map[string]string{"outcome": "failed"}}}}), v1alpha1.AppMetrics{}), address: prom, judgeOn: true},
		{name: "a business metric's scrape path is local mode's", ro: withApp(judgeOf(canaryRollout(), v1alpha1.CanaryJudge{Business: []v1alpha1.JudgeBusinessMetric{{Name: "triage", Metric: "chat_triage_total", Events: map[string]string{"outcome": "failed"}, Path: "/stats"}}}), v1alpha1.AppMetrics{}), address: prom, judgeOn: true,
			want: `spec.strategy.canary.judge.business[0].path: "/stats" is where local mode scrapes each instance; Kubernetes mode reads the metric from Prometheus, leave it out`},
		{name: "judge on by default on plain Services with the app's series", ro: withApp(canaryRollout(), v1alpha1.AppMetrics{}), address: prom, judgeOn: true},
		{name: "judge on plain Services with the app's series but no Prometheus is off", ro: withApp(canaryRollout(), v1alpha1.AppMetrics{}), judgeOn: false},
		{name: "bad Prometheus annotation", ro: annotated(istioRollout(), "prometheus:9090"), judgeOn: true,
			want: `metadata.annotations[ramp.dev/prometheus-address]: "prometheus:9090" is not an http(s) URL of a Prometheus, such as http://prometheus.monitoring:9090`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m := &routerMetrics{address: tt.address}
			if got := m.validate(tt.ro).Error(); got != tt.want && !(tt.want == "" && len(m.validate(tt.ro)) == 0) {
				t.Errorf("validate: %q\nwant        %q", got, tt.want)
			}
			if got := m.judgeOn(tt.ro); got != tt.judgeOn {
				t.Errorf("judgeOn %v, want %v", got, tt.judgeOn)
			}
		})
	}
}

func TestRouterMetricsTemplates(t *testing.T) {
	tmpl := &v1alpha1.AnalysisTemplate{Spec: v1alpha1.AnalysisTemplateSpec{Metrics: []v1alpha1.Metric{
		{Name: "errors", Provider: v1alpha1.MetricProvider{Builtin: &v1alpha1.BuiltinMetric{Metric: "error-rate"}}},
		{Name: "ttfb", Provider: v1alpha1.MetricProvider{Builtin: &v1alpha1.BuiltinMetric{Metric: "ttfb-p95"}}},
		{Name: "prom", Provider: v1alpha1.MetricProvider{Prometheus: &v1alpha1.PrometheusMetric{Address: "http://p:9090", Query: "up"}}},
	}}}
	bg := &v1alpha1.Rollout{ObjectMeta: metav1.ObjectMeta{Name: "chat-api", Namespace: ns}, Spec: v1alpha1.RolloutSpec{Strategy: v1alpha1.Strategy{BlueGreen: &v1alpha1.BlueGreenStrategy{ActiveService: "a"}}}}
	ttfb := `spec.metrics[1].provider.builtin.metric: "ttfb-p95" is not measured in Kubernetes mode, where builtin metrics come from Prometheus (the traffic router's or the app's series); these are: error-rate, request-count, request-rate, latency-p50, latency-p95, latency-p99, first-token-p50, first-token-p95, first-token-p99, restarts, cpu, memory`
	appTmpl := &v1alpha1.AnalysisTemplate{Spec: v1alpha1.AnalysisTemplateSpec{Metrics: []v1alpha1.Metric{
		{Name: "errors", Provider: v1alpha1.MetricProvider{Builtin: &v1alpha1.BuiltinMetric{Metric: "error-rate"}}},
		{Name: "ft", Provider: v1alpha1.MetricProvider{Builtin: &v1alpha1.BuiltinMetric{Metric: "first-token-p95"}}},
		{Name: "restarts", Provider: v1alpha1.MetricProvider{Builtin: &v1alpha1.BuiltinMetric{Metric: "restarts"}}},
		{Name: "cpu", Provider: v1alpha1.MetricProvider{Builtin: &v1alpha1.BuiltinMetric{Metric: "cpu"}}},
		{Name: "memory", Provider: v1alpha1.MetricProvider{Builtin: &v1alpha1.BuiltinMetric{Metric: "memory"}}},
	}}}
	for _, tt := range []struct {
		name    string
		m       *routerMetrics
		ro      *v1alpha1.Rollout
		want    string
		wantNil bool
		tmpl    *v1alpha1.AnalysisTemplate
	}{
		{name: "plain Services with the app's series", m: &routerMetrics{ownsBuiltin: true, address: "http://p:9090"}, ro: withApp(canaryRollout(), v1alpha1.AppMetrics{FirstToken: "chat_first_token_seconds"}), tmpl: appTmpl, wantNil: true},
		{name: "blue-green with the app's series", m: &routerMetrics{ownsBuiltin: true, address: "http://p:9090"}, ro: withApp(bg.DeepCopy(), v1alpha1.AppMetrics{FirstToken: "chat_first_token_seconds"}), tmpl: appTmpl, wantNil: true},
		{name: "istio without the app's series", m: &routerMetrics{ownsBuiltin: true, address: "http://p:9090"}, ro: istioRollout(), tmpl: appTmpl,
			want: `spec.metrics[1].provider.builtin.metric: "first-token-p95" cannot be measured for rollout chat-api: it is read from the app's own series, kube-state-metrics' and cAdvisor's: set spec.appMetrics` + "\n" +
				`spec.metrics[2].provider.builtin.metric: "restarts" cannot be measured for rollout chat-api: it is read from the app's own series, kube-state-metrics' and cAdvisor's: set spec.appMetrics` + "\n" +
				`spec.metrics[3].provider.builtin.metric: "cpu" cannot be measured for rollout chat-api: it is read from the app's own series, kube-state-metrics' and cAdvisor's: set spec.appMetrics` + "\n" +
				`spec.metrics[4].provider.builtin.metric: "memory" cannot be measured for rollout chat-api: it is read from the app's own series, kube-state-metrics' and cAdvisor's: set spec.appMetrics`},
		{name: "app's series without a first-token histogram", m: &routerMetrics{ownsBuiltin: true, address: "http://p:9090"}, ro: withApp(canaryRollout(), v1alpha1.AppMetrics{}), tmpl: appTmpl,
			want: `spec.metrics[1].provider.builtin.metric: "first-token-p95" cannot be measured for rollout chat-api: it is read from the app's first-token histogram: set spec.appMetrics.firstToken`},
		{name: "istio with Prometheus", m: &routerMetrics{ownsBuiltin: true, address: "http://p:9090"}, ro: istioRollout(), want: ttfb},
		{name: "plain Services", m: &routerMetrics{ownsBuiltin: true, address: "http://p:9090"}, ro: canaryRollout(),
			want: `spec.metrics[0].provider.builtin.metric: "error-rate" cannot be measured for rollout chat-api: the service (plain Service selectors) router exports no request metrics ramp reads (trafficRouting istio and nginx do): set spec.appMetrics to read the app's own series` + "\n" + ttfb},
		{name: "nginx without Prometheus", m: &routerMetrics{ownsBuiltin: true}, ro: nginxRollout(),
			want: `spec.metrics[0].provider.builtin.metric: "error-rate" cannot be measured for rollout chat-api: no Prometheus is set: start the controller with --prometheus-address, or annotate the rollout ramp.dev/prometheus-address` + "\n" + ttfb},
		{name: "blue-green", m: &routerMetrics{ownsBuiltin: true, address: "http://p:9090"}, ro: bg,
			want: `spec.metrics[0].provider.builtin.metric: "error-rate" cannot be measured for rollout chat-api: a blueGreen rollout has no traffic router whose metrics ramp reads (only canary trafficRouting istio or nginx): set spec.appMetrics to read the app's own series` + "\n" + ttfb},
		{name: "a builtin provider of the caller's own", m: &routerMetrics{}, ro: canaryRollout(), wantNil: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tm := tmpl
			if tt.tmpl != nil {
				tm = tt.tmpl
			}
			errs := tt.m.checkTemplate(tt.ro, tm)
			if tt.wantNil {
				if len(errs) != 0 {
					t.Errorf("got %v", errs)
				}
				return
			}
			if got := errs.Error(); got != tt.want {
				t.Errorf("got  %q\nwant %q", got, tt.want)
			}
		})
	}
}

// TestJudgeOffWithoutRouterMetrics: a canary on plain Services gets no judge run (it would
// stay Pending forever), and a template's builtin metric that cannot be measured is refused
// when the rollout is validated, naming the rollout's field and the template's.
func TestJudgeOffWithoutRouterMetrics(t *testing.T) {
	f := newFixture(t, canaryRollout(v1alpha1.CanaryStep{SetWeight: ptr(int32(25))}, v1alpha1.CanaryStep{Pause: &v1alpha1.RolloutPause{}}))
	f.settle()
	f.setImage("chat-api:v2")
	f.settle()
	got := f.rollout()
	if got.Status.Phase != v1alpha1.PhasePaused || got.Status.CanaryRevision != 2 {
		t.Fatalf("phase %s canary %d: %s", got.Status.Phase, got.Status.CanaryRevision, got.Status.Message)
	}
	for _, a := range got.Status.Analysis {
		if a.Kind == v1alpha1.AnalysisKindJudge {
			t.Errorf("a judge run on plain Services: %+v", a)
		}
	}

	ro := canaryRollout(
		v1alpha1.CanaryStep{SetWeight: ptr(int32(25))},
		v1alpha1.CanaryStep{Analysis: &v1alpha1.RolloutAnalysis{Templates: []v1alpha1.AnalysisTemplateRef{{TemplateName: "ttfb"}}}},
	)
	tmpl := &v1alpha1.AnalysisTemplate{
		ObjectMeta: metav1.ObjectMeta{Name: "ttfb", Namespace: ns},
		Spec: v1alpha1.AnalysisTemplateSpec{Metrics: []v1alpha1.Metric{{
			Name: "ttfb", Interval: ptr(intstr.FromString("1s")), SuccessCondition: "result < 1",
			Provider: v1alpha1.MetricProvider{Builtin: &v1alpha1.BuiltinMetric{Metric: "ttfb-p95"}},
		}}},
	}
	f = newFixture(t, ro, tmpl)
	f.settle()
	want := `spec.strategy.canary.steps[1].analysis.templates[0]: AnalysisTemplate ttfb: spec.metrics[0].provider.builtin.metric: "ttfb-p95" is not measured in Kubernetes mode`
	c := meta.FindStatusCondition(f.rollout().Status.Conditions, v1alpha1.ConditionValid)
	if c == nil || c.Status != metav1.ConditionFalse || c.Reason != "InvalidSpec" || !strings.Contains(c.Message, want) {
		t.Fatalf("Valid condition %+v; want False InvalidSpec with %q", c, want)
	}
}

// TestJudgeReadsOffTheLoop: a Prometheus that does not answer holds up no decision. The
// judge's read of the counters runs on its own goroutine; the reconcile that its end wakes
// applies it, and a failed read says so in the metric's message.
func TestJudgeReadsOffTheLoop(t *testing.T) {
	release := make(chan struct{})
	hung := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
		http.Error(w, "unavailable", http.StatusServiceUnavailable)
	}))
	defer hung.Close()
	defer close(release)

	woken := make(chan string, 4)
	m := &routerMetrics{address: hung.URL, interval: time.Minute, wake: func(ns, name string) { woken <- ns + "/" + name }}
	ro := istioRollout()
	run := &v1alpha1.AnalysisRunStatus{Name: "judge-2", Kind: v1alpha1.AnalysisKindJudge, Revision: 2, StartedAt: metav1.Now()}
	now := time.Now()

	start := time.Now()
	next := m.stepJudge(context.Background(), now, ro, run)
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("stepJudge waited %s for a Prometheus that does not answer", took)
	}
	if want := now.Add(time.Minute); !next.Equal(want) {
		t.Errorf("next read due %s, want %s", next, want)
	}
	if run.Phase.Completed() {
		t.Fatalf("run %s with no reading yet", run.Phase)
	}
	// A second decision while the read hangs starts no second read and still returns at once.
	start = time.Now()
	again := m.stepJudge(context.Background(), now.Add(2*time.Minute), ro, run)
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("second stepJudge waited %s", took)
	}
	if !again.Equal(next) {
		t.Errorf("a read started while one was in flight: next read due %s, want still %s", again, next)
	}

	release <- struct{}{}
	select {
	case got := <-woken:
		if want := ro.Namespace + "/" + ro.Name; got != want {
			t.Errorf("woke %q, want %q", got, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the end of the read woke no reconcile within 10s")
	}
	m.stepJudge(context.Background(), now.Add(3*time.Minute), ro, run)
	if len(run.Metrics) != 2 || !strings.Contains(run.Metrics[0].Message, "last read failed") || !strings.Contains(run.Metrics[1].Message, "last read failed") {
		t.Errorf("run metrics %+v do not say the read failed", run.Metrics)
	}
}
