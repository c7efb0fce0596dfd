package k8s

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/analysis"
	"ramp.dev/ramp/internal/kube"
	"ramp.dev/ramp/test/k8senv"
	"ramp.dev/ramp/test/promenv"
)

// behaviour is how one revision's stand-in pods answer.
type behaviour struct {
	// errorsPer100 of every 100 requests are answered 500.
	errorsPer100 int64
	// delay is added before the first byte of each answer (stable's take 0-19ms).
	delay time.Duration
	// failedPer100 of every 100 answered requests have a failed triage outcome.
	failedPer100 int64
}

// standIn is a test HTTP server on 127.0.0.1 that stands in for one kwok pod: it answers the
// test's requests as its revision behaves and exports the app's series on /metrics, without
// namespace, pod or pod-template-hash labels: Prometheus adds those from the scrape target,
// as the documented relabeling of kubernetes_sd does.
type standIn struct {
	srv       *httptest.Server
	ns, name  string
	hash      string
	image     string
	started   time.Time
	restarts  int32
	requests  atomic.Int64
	answered  atomic.Int64
	reqs      *prometheus.CounterVec
	duration  prometheus.Histogram
	ttft      prometheus.Histogram
	triage    *prometheus.CounterVec
	behaviour func() behaviour
}

func (p *standIn) serve(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	b := p.behaviour()
	n := p.requests.Add(1)
	delay := b.delay + time.Duration(n%20)*time.Millisecond
	select {
	case <-time.After(delay): // the app's work: this is the latency Prometheus will see
	case <-r.Context().Done():
		return
	}
	code := http.StatusOK
	if (n*b.errorsPer100)%100 < b.errorsPer100 { // spread evenly: 50 per 100 is every other one
		code = http.StatusInternalServerError
	}
	w.WriteHeader(code)
	_, _ = w.Write([]byte("data: hello\n\n"))
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
	p.ttft.Observe(time.Since(start).Seconds())
	if code == http.StatusOK {
		outcome := "success"
		if (p.answered.Add(1)*b.failedPer100)%100 < b.failedPer100 {
			outcome = "failed"
		}
		p.triage.WithLabelValues(outcome).Inc()
	}
	p.reqs.WithLabelValues(fmt.Sprint(code)).Inc()
	p.duration.Observe(time.Since(start).Seconds())
}

// fleet runs a stand-in for every ready kwok pod of chat-api in the namespaces it watches,
// writes Prometheus file_sd targets for them with the labels the README's relabel config
// gives (namespace, pod, pod_template_hash), serves kube-state-metrics' restarts and
// cAdvisor's CPU and memory series of the pods, and sends each namespace 20 requests a
// second spread over its ready pods, as the chat-api Service (selecting every revision's
// pods) would.
type fleet struct {
	t   *testing.T
	c   client.Client
	dir string
	ksm *httptest.Server

	mu         sync.Mutex
	pods       map[string]*standIn  // by namespace/name
	behaviours map[string]behaviour // by namespace/image
	targets    string
}

func newFleet(t *testing.T, c client.Client) *fleet {
	f := &fleet{t: t, c: c, dir: t.TempDir(), pods: map[string]*standIn{}, behaviours: map[string]behaviour{}}
	f.ksm = httptest.NewServer(http.HandlerFunc(f.serveKSM))
	f.writeTargets()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			f.sync(ctx)
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, p := range f.pods {
			p.srv.Close()
		}
		f.ksm.Close()
	})
	return f
}

// scrapeConfig is the test Prometheus's scrape configuration: the pods from the file_sd
// targets, and kube-state-metrics/cAdvisor's stand-in, whose own namespace and pod labels
// are kept (honor_labels), as for the real ones.
func (f *fleet) scrapeConfig() string {
	return fmt.Sprintf(`scrape_configs:
  - job_name: kubernetes-pods
    file_sd_configs:
      - files: [%q]
        refresh_interval: 1s
  - job_name: kube-state-metrics
    honor_labels: true
    static_configs:
      - targets: [%q]
`, filepath.Join(f.dir, "*.json"), strings.TrimPrefix(f.ksm.URL, "http://"))
}

// set makes the pods of image in namespace ns behave as b.
func (f *fleet) set(ns, image string, b behaviour) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.behaviours[ns+"/"+image] = b
}

// sync starts a stand-in for each new ready pod of a watched namespace, stops those of pods
// gone or not ready, and rewrites the targets when they changed.
func (f *fleet) sync(ctx context.Context) {
	var pods corev1.PodList
	if err := f.c.List(ctx, &pods, client.MatchingLabels{"app": "chat-api"}); err != nil {
		return // the next tick lists again
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	seen := map[string]bool{}
	for i := range pods.Items {
		p := &pods.Items[i]
		key := p.Namespace + "/" + p.Name
		image := p.Spec.Containers[0].Image
		if _, watched := f.behaviours[p.Namespace+"/"+image]; !watched || p.DeletionTimestamp != nil || !podReady(p) {
			continue
		}
		seen[key] = true
		var restarts int32
		for _, cs := range p.Status.ContainerStatuses {
			restarts += cs.RestartCount
		}
		if s := f.pods[key]; s != nil {
			s.restarts = restarts
			continue
		}
		f.pods[key] = f.startStandIn(p, restarts)
	}
	for key, s := range f.pods {
		if !seen[key] {
			s.srv.Close()
			delete(f.pods, key)
		}
	}
	f.writeTargets()
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func (f *fleet) startStandIn(p *corev1.Pod, restarts int32) *standIn {
	reg := prometheus.NewRegistry()
	s := &standIn{ns: p.Namespace, name: p.Name, hash: p.Labels[appsv1.DefaultDeploymentUniqueLabelKey], image: p.Spec.Containers[0].Image,
		started: time.Now(), restarts: restarts,
		reqs:     prometheus.NewCounterVec(prometheus.CounterOpts{Name: "http_requests_total", Help: "Requests by status code."}, []string{"code"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "http_request_duration_seconds", Help: "Request duration.", Buckets: prometheus.DefBuckets}),
		ttft:     prometheus.NewHistogram(prometheus.HistogramOpts{Name: "chat_first_token_seconds", Help: "Time to the first token.", Buckets: prometheus.DefBuckets}),
		triage:   prometheus.NewCounterVec(prometheus.CounterOpts{Name: "chat_triage_total", Help: "Answers by triage outcome."}, []string{"outcome"}),
	}
	reg.MustRegister(s.reqs, s.duration, s.ttft, s.triage)
	s.triage.WithLabelValues("success")
	s.triage.WithLabelValues("failed")
	key := s.ns + "/" + s.image
	s.behaviour = func() behaviour {
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.behaviours[key]
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /v1/chat", s.serve)
	s.srv = httptest.NewServer(mux)
	return s
}

// writeTargets writes the file_sd targets (into a new file renamed over the old, which
// Prometheus sees whole).
func (f *fleet) writeTargets() {
	type group struct {
		Targets []string          `json:"targets"`
		Labels  map[string]string `json:"labels"`
	}
	groups := []group{}
	keys := make([]string, 0, len(f.pods))
	for k := range f.pods {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		p := f.pods[k]
		groups = append(groups, group{Targets: []string{strings.TrimPrefix(p.srv.URL, "http://")},
			Labels: map[string]string{"namespace": p.ns, "pod": p.name, "pod_template_hash": p.hash}})
	}
	b, err := json.Marshal(groups)
	if err != nil {
		f.t.Error(err)
		return
	}
	if string(b) == f.targets {
		return
	}
	tmp := filepath.Join(f.dir, "pods.json.tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		f.t.Error(err)
		return
	}
	if err := os.Rename(tmp, filepath.Join(f.dir, "pods.json")); err != nil {
		f.t.Error(err)
		return
	}
	f.targets = string(b)
}

// serveKSM serves kube-state-metrics' restart counter (from the pods' status, as
// kube-state-metrics reads it) and cAdvisor's CPU and memory series of the stand-ins' pods.
func (f *fleet) serveKSM(w http.ResponseWriter, _ *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b := &strings.Builder{}
	b.WriteString("# TYPE kube_pod_container_status_restarts_total counter\n# TYPE container_cpu_usage_seconds_total counter\n# TYPE container_memory_working_set_bytes gauge\n")
	for _, p := range f.pods {
		l := fmt.Sprintf(`namespace=%q,pod=%q,container="chat-api"`, p.ns, p.name)
		fmt.Fprintf(b, "kube_pod_container_status_restarts_total{%s} %d\n", l, p.restarts)
		fmt.Fprintf(b, "container_cpu_usage_seconds_total{%s} %g\n", l, 0.05*time.Since(p.started).Seconds())
		fmt.Fprintf(b, "container_memory_working_set_bytes{%s} %d\n", l, 64<<20)
	}
	fmt.Fprint(w, b.String())
}

// traffic sends 20 requests a second to the ready pods of ns, each to one of them at random,
// until the test ends.
func (f *fleet) traffic(t *testing.T, ns string) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	hc := &http.Client{Timeout: 10 * time.Second}
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			f.mu.Lock()
			var urls []string
			for _, p := range f.pods {
				if p.ns == ns {
					urls = append(urls, p.srv.URL)
				}
			}
			f.mu.Unlock()
			if len(urls) == 0 {
				continue
			}
			u := urls[rand.IntN(len(urls))]
			wg.Add(1)
			go func() {
				defer wg.Done()
				req, err := http.NewRequestWithContext(ctx, http.MethodGet, u+"/v1/chat", nil)
				if err != nil {
					return
				}
				if resp, err := hc.Do(req); err == nil {
					resp.Body.Close()
				}
			}()
		}
	}()
	t.Cleanup(func() { cancel(); wg.Wait() })
}

// promQuery runs an instant query on the test Prometheus and returns its first value.
func promQuery(ctx context.Context, addr, q string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, addr+"/api/v1/query?"+url.Values{"query": {q}}.Encode(), nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var body struct {
		Data struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return "", err
	}
	if len(body.Data.Result) == 0 {
		return "", fmt.Errorf("%s: no result", q)
	}
	return fmt.Sprint(body.Data.Result[0].Value[1]), nil
}

// TestAppMetrics: with the plain Service router and no mesh, a canary is judged from the
// app's own series in a real Prometheus, per revision by the pods' pod-template-hash (and
// kube-state-metrics'/cAdvisor's by pod name): a healthy canary passes an analysis of the
// builtin metrics and is promoted; one that fails requests, is slow, restarts or fails its
// triage answers is aborted, with why in the status.
func TestAppMetrics(t *testing.T) {
	began := time.Now()
	env := k8senv.Start(t)
	cfg := installRamp(t, env)
	f := newFleet(t, rampClient(t, env))
	addr := promenv.StartConfig(t, promenv.Binary(t), f.scrapeConfig())
	startController(t, cfg, "appmetrics", nil, kube.Options{
		Providers:         map[string]analysis.Provider{}, // the builtin provider is Kubernetes mode's own
		PrometheusAddress: addr,
		JudgeInterval:     time.Second,
	})
	healthy := behaviour{}
	triage := []v1alpha1.JudgeBusinessMetric{{Name: "triage", Metric: "chat_triage_total", Events: map[string]string{"outcome": "failed"}}}
	paused := []v1alpha1.CanaryStep{{SetWeight: ptr(int32(34))}, {Pause: &v1alpha1.RolloutPause{}}}
	var mu sync.Mutex
	timings := map[string]time.Duration{}
	t.Run("cases", func(t *testing.T) {
		for _, tc := range []struct {
			name   string
			canary behaviour
			steps  []v1alpha1.CanaryStep
			// restart restarts a canary pod once the canary is paused at its step.
			restart bool
			// want matches the status message of the abort (a regular expression); empty
			// means the canary is promoted.
			want string
		}{
			{name: "healthy", canary: healthy, steps: []v1alpha1.CanaryStep{{SetWeight: ptr(int32(34))},
				{Analysis: &v1alpha1.RolloutAnalysis{Templates: []v1alpha1.AnalysisTemplateRef{{TemplateName: "app-checks"}}}}}},
			{name: "errors", canary: behaviour{errorsPer100: 50}, steps: paused, want: `analysis judge-2 failed: error-rate: canary worse than stable: canary \d+ errors in \d+`},
			// The threshold is a bucket bound (250ms, or 500ms on a machine so loaded that
			// stable's p95 passes 150ms): the canary's 1s answers are slow either way.
			{name: "latency", canary: behaviour{delay: time.Second}, steps: paused, want: `analysis judge-2 failed: latency over (250|500)ms \(stable's p95 \+ 100ms\): canary worse than stable: canary \d+ slow requests`},
			{name: "business", canary: behaviour{failedPer100: 50}, steps: paused, want: `analysis judge-2 failed: triage: canary worse than stable: canary \d+ chat_triage_total\{outcome="failed"\}`},
			{name: "restarts", canary: healthy, steps: paused, restart: true, want: `revision 2 exited unexpectedly: instance chat-api-\w+-\w{5} container chat-api exited with status 137 \(OOMKilled\)`},
		} {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				ns := "app-" + tc.name
				f.set(ns, v1, healthy)
				f.set(ns, v2, tc.canary)
				s := newScenario(t, env, ns, "chat-api-stable", "chat-api-canary")
				createAppChecks(t, s)
				strategy := v1alpha1.Strategy{Canary: &v1alpha1.CanaryStrategy{
					StableService: "chat-api-stable", CanaryService: "chat-api-canary", Steps: tc.steps,
					Judge: &v1alpha1.CanaryJudge{Business: triage, EndAnalysisEarly: ptr(false)},
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
				from := time.Now()
				if tc.restart {
					s.waitPhase(v1alpha1.PhasePaused, 1, 90*time.Second)
					canary := s.pods(v2)
					if len(canary) == 0 {
						t.Fatal("no canary pod")
					}
					// kube-state-metrics' stand-in serves the pod's restarts, found by the
					// pattern of its ReplicaSet's pod names, as ramp selects them.
					eventually(t, 30*time.Second, "the canary pod's restarts in Prometheus", func(ctx context.Context) error {
						v, err := promQuery(ctx, addr, fmt.Sprintf(`sum(kube_pod_container_status_restarts_total{namespace=%q, pod=~%q})`, ns, "chat-api-"+canary[0].Labels[appsv1.DefaultDeploymentUniqueLabelKey]+"-[a-z0-9]{5}"))
						if err == nil && v != "0" {
							err = fmt.Errorf("restarts %s", v)
						}
						return err
					})
					s.restartPod(canary[0], 1)
					from = time.Now()
					// The exit rule (issue 11) judges the restart from the pod's status at once;
					// kube-state-metrics' series of it (the builtin restarts metric, measured
					// in the healthy case and in internal/analysis/trafficmetrics' tests)
					// would come a scrape later.
				}
				if tc.want == "" {
					// While the analysis step runs, the judge watches the canary on every
					// metric, each fed from the app's series.
					eventually(t, 60*time.Second, "the judge fed on every metric", func(ctx context.Context) error {
						ro, err := s.rollout(ctx)
						if err != nil {
							return err
						}
						if ro.Status.StableRevision == 2 {
							return final{fmt.Errorf("promoted before the judge was seen fed: %+v", ro.Status.Analysis)}
						}
						return judgeFed(ro)
					})
					got := s.waitPhase(v1alpha1.PhaseHealthy, 2, 3*time.Minute)
					mu.Lock()
					timings[tc.name] = time.Since(from)
					mu.Unlock()
					checkAppChecks(t, got)
					return
				}
				got := s.waitPhase(v1alpha1.PhaseDegraded, 1, 3*time.Minute)
				mu.Lock()
				timings[tc.name] = time.Since(from)
				mu.Unlock()
				if !regexp.MustCompile(tc.want).MatchString(got.Status.Message) {
					t.Errorf("status message %q does not match %q", got.Status.Message, tc.want)
				}
				t.Logf("aborted %s after the change: %s", time.Since(from).Round(time.Second), got.Status.Message)
			})
		}
	})
	for name, d := range timings {
		t.Logf("%s: decided %s after the change (or the restart)", name, d.Round(100*time.Millisecond))
	}
	t.Logf("run time %s", time.Since(began).Round(time.Second))
}

// judgeFed says what the rollout's judge run lacks: a run, every metric, slices fed to each,
// and the latency threshold in its message.
func judgeFed(ro *v1alpha1.Rollout) error {
	for _, a := range ro.Status.Analysis {
		if a.Kind != v1alpha1.AnalysisKindJudge {
			continue
		}
		var names []string
		for _, m := range a.Metrics {
			names = append(names, m.Name)
			if m.Phase == v1alpha1.AnalysisFailed {
				return final{fmt.Errorf("judge metric %s failed: %s", m.Name, m.Message)}
			}
			if m.Count == 0 {
				return fmt.Errorf("judge metric %s not fed yet: %s", m.Name, m.Message)
			}
		}
		if got := strings.Join(names, ","); got != "error-rate,latency,first-token,triage" {
			return fmt.Errorf("judge metrics %s; want error-rate,latency,first-token,triage", got)
		}
		if !strings.Contains(a.Message, "(stable's p95 + 100ms)") {
			return fmt.Errorf("judge run %s: %s; want the latency threshold in it", a.Phase, a.Message)
		}
		return nil
	}
	return fmt.Errorf("no judge run in %+v", ro.Status.Analysis)
}

// createAppChecks makes the analysis template of the healthy canary: every builtin metric
// that the app's series, kube-state-metrics' and cAdvisor's answer.
func createAppChecks(t *testing.T, s *scenario) {
	t.Helper()
	metric := func(name, cond string) v1alpha1.Metric {
		return v1alpha1.Metric{Name: name, Interval: ptr(intstr.FromString("2s")), Count: ptr(int32(6)), SuccessCondition: cond,
			Provider: v1alpha1.MetricProvider{Builtin: &v1alpha1.BuiltinMetric{Metric: name}}}
	}
	at := &v1alpha1.AnalysisTemplate{
		ObjectMeta: metav1.ObjectMeta{Name: "app-checks", Namespace: s.ns},
		Spec: v1alpha1.AnalysisTemplateSpec{Metrics: []v1alpha1.Metric{
			metric("error-rate", "result < 0.05"),
			metric("request-rate", "result > 0"),
			metric("latency-p95", "result < 0.3"),
			metric("first-token-p95", "result < 0.3"),
			metric("restarts", "result < 1"),
			metric("cpu", "result < 1"),
			metric("memory", "result < 1000000000"),
		}},
	}
	if err := s.c.Create(context.Background(), at); err != nil {
		t.Fatal(err)
	}
}

// checkAppChecks checks that the promoted canary's step analysis measured every metric of
// app-checks from Prometheus.
func checkAppChecks(t *testing.T, ro *v1alpha1.Rollout) {
	t.Helper()
	want := map[string]string{"error-rate": "5xx in", "request-rate": "req/s", "latency-p95": "p95 of", "first-token-p95": "p95 of",
		"restarts": "0 restarts", "cpu": "cores", "memory": "MiB)"}
	for _, a := range ro.Status.Analysis {
		if a.Kind != v1alpha1.AnalysisKindStep {
			continue
		}
		if a.Phase != v1alpha1.AnalysisSuccessful {
			t.Errorf("step analysis %s: %s", a.Phase, a.Message)
		}
		for _, m := range a.Metrics {
			if len(m.Measurements) == 0 || !strings.Contains(m.Measurements[len(m.Measurements)-1].Value, want[m.Name]) {
				t.Errorf("metric %s: %s %+v; want a value with %q", m.Name, m.Phase, m.Measurements, want[m.Name])
			}
			delete(want, m.Name)
		}
	}
	if len(want) > 0 {
		t.Errorf("metrics not measured: %v", want)
	}
}
