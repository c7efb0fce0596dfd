package k8s

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/analysis"
	"ramp.dev/ramp/internal/kube"
	"ramp.dev/ramp/test/k8senv"
)

// repoRoot is the module root, from this package's folder.
const repoRoot = "../../.."

// metricsServer is the metrics endpoint written for these tests: it serves one value per
// rollout and revision (the error rate the test chose; 0 when none was chosen).
type metricsServer struct {
	*httptest.Server
	mu     sync.Mutex
	values map[string]float64
}

func newMetricsServer(t *testing.T) *metricsServer {
	m := &metricsServer{values: map[string]float64{}}
	m.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.mu.Lock()
		v := m.values[r.URL.Query().Get("rollout")+"@"+r.URL.Query().Get("revision")]
		m.mu.Unlock()
		_ = json.NewEncoder(w).Encode(map[string]float64{"value": v})
	}))
	t.Cleanup(m.Close)
	return m
}

// set makes the error rate of rollout (namespace/name) at revision rev v.
func (m *metricsServer) set(rollout string, rev int64, v float64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.values[rollout+"@"+strconv.FormatInt(rev, 10)] = v
}

// httpProvider asks the metrics server for the revision's value.
type httpProvider struct{ url string }

func (p httpProvider) Measure(ctx context.Context, m v1alpha1.Metric, t analysis.Target) (analysis.Value, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/?rollout=%s/%s&revision=%d", p.url, t.Namespace, t.Rollout, t.Revision), nil)
	if err != nil {
		return analysis.Value{}, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return analysis.Value{}, err
	}
	defer resp.Body.Close()
	var body struct{ Value float64 }
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return analysis.Value{}, err
	}
	return analysis.Value{Result: body.Value}, nil
}

// controller is one in-process ramp controller.
type controller struct {
	mgr  manager.Manager
	stop func()
}

// startController runs a controller with cfg until the test ends or stop is called.
func startController(t *testing.T, cfg *rest.Config, name string, metrics *metricsServer, o kube.Options) *controller {
	t.Helper()
	if o.Providers == nil { // non-nil: the caller's providers (empty: Kubernetes mode's own builtin)
		o.Providers = map[string]analysis.Provider{"builtin": httpProvider{url: metrics.URL}}
	}
	if o.MetricsBindAddress == "" {
		o.MetricsBindAddress = "0"
	}
	o.HealthProbeBindAddress = "0"
	o.LeaderElectionNamespace = "default"
	logs := &logBuffer{}
	o.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("controller %s log:\n%s", name, logs.tail(300))
		}
	})
	mgr, err := kube.NewManager(cfg, o)
	if err != nil {
		t.Fatalf("controller %s: %v", name, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	var once sync.Once
	c := &controller{mgr: mgr}
	c.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("controller %s: %v", name, err)
				}
			case <-time.After(30 * time.Second):
				t.Errorf("controller %s did not stop within 30s", name)
			}
		})
	}
	t.Cleanup(c.stop)
	return c
}

// logBuffer keeps a controller's log lines; the test prints them when it fails. (The
// controller's loggers are also installed process-wide, so they must outlive the test.)
type logBuffer struct {
	mu    sync.Mutex
	lines []string
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.lines = append(b.lines, strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func (b *logBuffer) tail(n int) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Join(b.lines[max(0, len(b.lines)-n):], "\n")
}

// scenario is one namespace with the team's Deployment chat-api, its Services and a Rollout.
type scenario struct {
	t   *testing.T
	env *k8senv.Env
	c   client.Client
	ns  string
}

func newScenario(t *testing.T, env *k8senv.Env, ns string, services ...string) *scenario {
	t.Helper()
	s := &scenario{t: t, env: env, c: rampClient(t, env), ns: ns}
	ctx := context.Background()
	if err := s.c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	replicas := int32(3)
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "chat-api", Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "chat-api"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "chat-api"}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name: "chat-api", Image: "example.com/chat-api:v1", Ports: []corev1.ContainerPort{{ContainerPort: 8080}},
				}}},
			},
		},
	}
	if err := s.c.Create(ctx, d); err != nil {
		t.Fatal(err)
	}
	for _, name := range append([]string{"chat-api"}, services...) {
		svc := &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec: corev1.ServiceSpec{
				Selector: map[string]string{"app": "chat-api"},
				Ports:    []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}},
			},
		}
		if err := s.c.Create(ctx, svc); err != nil {
			t.Fatal(err)
		}
	}
	at := &v1alpha1.AnalysisTemplate{
		ObjectMeta: metav1.ObjectMeta{Name: "error-rate", Namespace: ns},
		Spec: v1alpha1.AnalysisTemplateSpec{Metrics: []v1alpha1.Metric{{
			Name: "error-rate", Interval: ptr(intstr.FromString("1s")), Count: ptr(int32(3)),
			SuccessCondition: "result < 0.05",
			Provider:         v1alpha1.MetricProvider{Builtin: &v1alpha1.BuiltinMetric{Metric: "error-rate"}},
		}}},
	}
	if err := s.c.Create(ctx, at); err != nil {
		t.Fatal(err)
	}
	return s
}

func ptr[T any](v T) *T { return &v }

// noWatch turns the watch window after promotion off (scaleDownDelaySeconds 0) where the
// strategy leaves it to its default of 300 s, so that a promotion hands the new ReplicaSet to
// the Deployment at once, as these tests expect; TestKubernetesMode's "watch window" sets it.
func noWatch(st *v1alpha1.Strategy) {
	zero := int32(0)
	switch {
	case st.Canary != nil && st.Canary.ScaleDownDelaySeconds == nil:
		st.Canary.ScaleDownDelaySeconds = &zero
	case st.BlueGreen != nil && st.BlueGreen.ScaleDownDelaySeconds == nil:
		st.BlueGreen.ScaleDownDelaySeconds = &zero
	case st.RollingUpdate != nil && st.RollingUpdate.ScaleDownDelaySeconds == nil:
		st.RollingUpdate.ScaleDownDelaySeconds = &zero
	}
}

func (s *scenario) createRollout(strategy v1alpha1.Strategy) {
	s.t.Helper()
	noWatch(&strategy)
	ro := &v1alpha1.Rollout{
		ObjectMeta: metav1.ObjectMeta{Name: "chat-api", Namespace: s.ns},
		Spec:       v1alpha1.RolloutSpec{WorkloadRef: &v1alpha1.WorkloadRef{Name: "chat-api"}, Strategy: strategy},
	}
	if err := s.c.Create(context.Background(), ro); err != nil {
		s.t.Fatal(err)
	}
}

func (s *scenario) rollout(ctx context.Context) (*v1alpha1.Rollout, error) {
	ro := &v1alpha1.Rollout{}
	return ro, s.c.Get(ctx, client.ObjectKey{Namespace: s.ns, Name: "chat-api"}, ro)
}

func (s *scenario) deployment(ctx context.Context) (*appsv1.Deployment, error) {
	d := &appsv1.Deployment{}
	return d, s.c.Get(ctx, client.ObjectKey{Namespace: s.ns, Name: "chat-api"}, d)
}

// waitPhase waits until the rollout is in phase with the given stable revision.
func (s *scenario) waitPhase(phase v1alpha1.RolloutPhase, stable int64, timeout time.Duration) *v1alpha1.Rollout {
	s.t.Helper()
	var ro *v1alpha1.Rollout
	eventually(s.t, timeout, fmt.Sprintf("rollout %s/chat-api %s at stable revision %d", s.ns, phase, stable), func(ctx context.Context) error {
		var err error
		if ro, err = s.rollout(ctx); err != nil {
			return err
		}
		if ro.Status.Phase != phase || ro.Status.StableRevision != stable {
			return fmt.Errorf("phase %q stable %d current %d: %s", ro.Status.Phase, ro.Status.StableRevision, ro.Status.CurrentRevision, ro.Status.Message)
		}
		return nil
	})
	return ro
}

// setImage changes the Deployment's image through the API, as `kubectl set image` or
// `terraform apply` do.
func (s *scenario) setImage(image string) {
	s.t.Helper()
	eventually(s.t, 10*time.Second, "set image", func(ctx context.Context) error {
		d, err := s.deployment(ctx)
		if err != nil {
			return err
		}
		d.Spec.Template.Spec.Containers[0].Image = image
		return s.c.Update(ctx, d)
	})
}

// imageSets returns, per image, the replicas of the ReplicaSets running it and who owns them.
func (s *scenario) replicaSets(ctx context.Context) (map[string]int32, map[string]string, error) {
	var l appsv1.ReplicaSetList
	if err := s.c.List(ctx, &l, client.InNamespace(s.ns)); err != nil {
		return nil, nil, err
	}
	replicas, owners := map[string]int32{}, map[string]string{}
	for _, rs := range l.Items {
		img := rs.Spec.Template.Spec.Containers[0].Image
		replicas[img] += *rs.Spec.Replicas
		if ref := metav1.GetControllerOf(&rs); ref != nil && *rs.Spec.Replicas > 0 {
			owners[img] = ref.Kind
		}
	}
	return replicas, owners, nil
}

// waitReplicas waits until the images run with these replica counts (an image not listed runs
// none).
func (s *scenario) waitReplicas(want map[string]int32, timeout time.Duration) {
	s.t.Helper()
	eventually(s.t, timeout, fmt.Sprintf("replicas %v in %s", want, s.ns), func(ctx context.Context) error {
		got, _, err := s.replicaSets(ctx)
		if err != nil {
			return err
		}
		for img, n := range got {
			if n != want[img] {
				return fmt.Errorf("replicas by image %v", got)
			}
		}
		for img, n := range want {
			if got[img] != n {
				return fmt.Errorf("replicas by image %v", got)
			}
		}
		return nil
	})
}

// selectsImage checks that Service svc selects exactly the ready pods of image.
func (s *scenario) selectsImage(ctx context.Context, svc, image string) error {
	sv := &corev1.Service{}
	if err := s.c.Get(ctx, client.ObjectKey{Namespace: s.ns, Name: svc}, sv); err != nil {
		return err
	}
	var pods corev1.PodList
	if err := s.c.List(ctx, &pods, client.InNamespace(s.ns), client.MatchingLabels(sv.Spec.Selector)); err != nil {
		return err
	}
	n := 0
	for _, p := range pods.Items {
		if p.DeletionTimestamp != nil {
			continue
		}
		if img := p.Spec.Containers[0].Image; img != image {
			return fmt.Errorf("service %s (selector %v) selects pod %s of %s; want only %s", svc, sv.Spec.Selector, p.Name, img, image)
		}
		n++
	}
	if n == 0 {
		return fmt.Errorf("service %s (selector %v) selects no pods; want %s", svc, sv.Spec.Selector, image)
	}
	return nil
}

func (s *scenario) waitSelects(svc, image string) {
	s.t.Helper()
	eventually(s.t, 30*time.Second, fmt.Sprintf("service %s/%s selects %s", s.ns, svc, image), func(ctx context.Context) error {
		return s.selectsImage(ctx, svc, image)
	})
}

// kubectlRolloutStatus runs `kubectl rollout status deployment/chat-api`, as the team does.
func (s *scenario) kubectlRolloutStatus() (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := s.env.Kubectl(ctx, "-n", s.ns, "rollout", "status", "deployment/chat-api", "--timeout=20s")
	return string(out), err
}

// rampBinary builds bin/ramp once for the tests that run the CLI.
var rampBinary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "ramp-k8s-e2e")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "ramp")
	out, err := exec.Command("go", "build", "-o", bin, "ramp.dev/ramp/cmd/ramp").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %w: %s", err, out)
	}
	return bin, os.Symlink("ramp", filepath.Join(dir, "kubectl-ramp"))
})

// ramp runs the ramp binary (or kubectl-ramp with plugin set) and returns its output.
func ramp(t *testing.T, plugin bool, args ...string) (string, error) {
	t.Helper()
	bin, err := rampBinary()
	if err != nil {
		t.Fatal(err)
	}
	if plugin {
		bin = filepath.Join(filepath.Dir(bin), "kubectl-ramp")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	return string(out), err
}

// rampClient is an administrator's client that knows ramp's types.
func rampClient(t *testing.T, env *k8senv.Env) client.Client {
	t.Helper()
	c, err := client.New(env.Config, client.Options{Scheme: kube.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// installRamp installs ramp's manifests as a user would: kubectl apply -k config/default. It
// returns a config for a user bound to exactly the ClusterRole in config/rbac.
func installRamp(t *testing.T, env *k8senv.Env) *rest.Config {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if out, err := env.Kubectl(ctx, "apply", "-k", filepath.Join(repoRoot, "config/default")); err != nil {
		t.Fatalf("kubectl apply -k config/default: %v\n%s", err, out)
	}
	c := rampClient(t, env)
	eventually(t, time.Minute, "ramp CRDs established", func(ctx context.Context) error {
		var l v1alpha1.RolloutList
		return c.List(ctx, &l)
	})
	// Every ramp kind is in the ramp category (kubectl get ramp), under short names that Argo
	// Rollouts' CRDs leave free.
	eventually(t, time.Minute, "kubectl api-resources lists ramp's kinds in the ramp category", func(ctx context.Context) error {
		out, err := env.Kubectl(ctx, "api-resources", "--categories=ramp", "--no-headers")
		if err != nil {
			return fmt.Errorf("%w: %s", err, out)
		}
		for _, want := range [][]string{{"rollouts", "rro", "ramp.dev/v1alpha1", "true", "Rollout"}, {"analysistemplates", "rat", "ramp.dev/v1alpha1", "true", "AnalysisTemplate"}} {
			if !slices.ContainsFunc(strings.Split(string(out), "\n"), func(l string) bool { return slices.Equal(strings.Fields(l), want) }) {
				return fmt.Errorf("no line %q in:\n%s", want, out)
			}
		}
		return nil
	})
	cfg, _ := env.KubeconfigFor(t, "ramp-controller")
	return cfg
}
