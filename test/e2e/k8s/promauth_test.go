package k8s

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/intstr"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/kube"
	"ramp.dev/ramp/test/k8senv"
	"ramp.dev/ramp/test/promenv"
	"ramp.dev/ramp/test/testkit"
)

// testPrometheusAuth runs the ramp binary's controller (`ramp controller`, one per namespace)
// against a real Prometheus that holds Istio's series behind a checking reverse proxy on
// 127.0.0.1: TLS with a certificate of its own, and basic auth. With --prometheus-username,
// --prometheus-password-file and --prometheus-ca-file the builtin error-rate metric and the
// judge read the counters and a healthy canary is promoted, also when the rollout names the
// Prometheus with its ramp.dev/prometheus-address annotation; with a wrong password, or none,
// the analysis run says what Prometheus refused and what to set. No log line of any
// controller holds the password.
func testPrometheusAuth(t *testing.T, env *k8senv.Env) {
	env.ApplyFiles(t, filepath.Join(repoRoot, "internal/kube/testdata/crds/networking.istio.io_virtualservices.yaml"))
	namespaces := []string{"prom-auth-ok", "prom-auth-annotation", "prom-auth-wrong", "prom-auth-none"}
	errs := map[string]int64{}
	for _, ns := range namespaces {
		errs[ns] = 0
	}
	prom := promenv.Start(t, promenv.Binary(t), istioSeries(t, errs))
	promenv.WaitScrapes(t, prom, 3, 30*time.Second)

	// Given the checking proxy in front of Prometheus
	const user, password = "ramp", "Pr0m-pa55word-e2e"
	var refused, passed atomic.Int64
	target, _ := url.Parse(prom)
	forward := httputil.NewSingleHostReverseProxy(target)
	proxy := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != user || p != password {
			refused.Add(1)
			w.Header().Set("WWW-Authenticate", `Basic realm="prometheus"`)
			http.Error(w, "wrong or no basic auth", http.StatusUnauthorized)
			return
		}
		passed.Add(1)
		forward.ServeHTTP(w, r)
	}))
	dir := t.TempDir()
	certFile, keyFile, _ := testkit.SelfSigned(t, dir, 1, "prometheus.test")
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	proxy.TLS = &tls.Config{Certificates: []tls.Certificate{pair}}
	proxy.Config.ErrorLog = log.New(io.Discard, "", 0)
	proxy.StartTLS()
	t.Cleanup(proxy.Close)

	// and the mounted Secret's files
	writeFile := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	passwordFile := writeFile("password", password+"\n")
	wrongFile := writeFile("wrong-password", "not-"+password+"\n")
	_, kubeconfig := env.KubeconfigFor(t, "ramp-controller")
	creds := []string{"--prometheus-username", user, "--prometheus-password-file", passwordFile, "--prometheus-ca-file", certFile}
	logs := map[string]*testkit.SyncBuffer{}
	for _, c := range []struct {
		ns   string
		args []string
	}{
		{"prom-auth-ok", append([]string{"--prometheus-address", proxy.URL}, creds...)},
		{"prom-auth-annotation", creds}, // no --prometheus-address: the rollout's annotation names it
		{"prom-auth-wrong", []string{"--prometheus-address", proxy.URL, "--prometheus-username", user, "--prometheus-password-file", wrongFile, "--prometheus-ca-file", certFile}},
		{"prom-auth-none", []string{"--prometheus-address", proxy.URL, "--prometheus-ca-file", certFile}},
	} {
		logs[c.ns] = startControllerBinary(t, kubeconfig, append([]string{"--namespace", c.ns, "--judge-interval", "1s"}, c.args...)...)
	}

	analysisStep := v1alpha1.CanaryStep{Analysis: &v1alpha1.RolloutAnalysis{Templates: []v1alpha1.AnalysisTemplateRef{{TemplateName: "error-rate"}}}}
	t.Run("rollouts", func(t *testing.T) {
		for _, tc := range []struct {
			ns         string
			annotation bool
			// refusal is what the failed analysis run says; empty means the canary is promoted.
			refusal string
		}{
			{ns: "prom-auth-ok"},
			{ns: "prom-auth-annotation", annotation: true},
			{ns: "prom-auth-wrong", refusal: "401 Unauthorized from " + strings.TrimPrefix(proxy.URL, "https://") + ": the basic auth user name and password were refused"},
			{ns: "prom-auth-none", refusal: "401 Unauthorized from " + strings.TrimPrefix(proxy.URL, "https://") + ": the controller sends no credentials: start it with --prometheus-bearer-token-file, --prometheus-username and --prometheus-password-file"},
		} {
			t.Run(tc.ns, func(t *testing.T) {
				t.Parallel()
				s := newScenario(t, env, tc.ns, "chat-api-stable", "chat-api-canary")
				vs := &unstructured.Unstructured{Object: map[string]any{
					"apiVersion": "networking.istio.io/v1beta1", "kind": "VirtualService",
					"metadata": map[string]any{"name": "chat-api", "namespace": tc.ns},
					"spec": map[string]any{"hosts": []any{"chat-api"}, "http": []any{map[string]any{
						"route": []any{map[string]any{"destination": map[string]any{"host": "chat-api-stable"}, "weight": int64(100)}},
					}}},
				}}
				if err := s.c.Create(context.Background(), vs); err != nil {
					t.Fatal(err)
				}
				strategy := v1alpha1.Strategy{Canary: &v1alpha1.CanaryStrategy{
					StableService: "chat-api-stable", CanaryService: "chat-api-canary",
					TrafficRouting: &v1alpha1.TrafficRouting{Istio: &v1alpha1.IstioTrafficRouting{VirtualService: v1alpha1.IstioVirtualService{Name: "chat-api"}}},
					// The pause lets the judge read the counters (every second) before the step's
					// analysis ends the canary.
					Steps: []v1alpha1.CanaryStep{{SetWeight: ptr(int32(20))}, {Pause: &v1alpha1.RolloutPause{Duration: ptr(intstr.FromString("6s"))}}, analysisStep},
				}}
				noWatch(&strategy)
				ro := &v1alpha1.Rollout{
					ObjectMeta: metav1.ObjectMeta{Name: "chat-api", Namespace: tc.ns},
					Spec:       v1alpha1.RolloutSpec{WorkloadRef: &v1alpha1.WorkloadRef{Name: "chat-api"}, Strategy: strategy},
				}
				if tc.annotation {
					ro.Annotations = map[string]string{kube.AnnotationPrometheusAddress: proxy.URL}
				}
				if err := s.c.Create(context.Background(), ro); err != nil {
					t.Fatal(err)
				}
				s.waitPhase(v1alpha1.PhaseHealthy, 1, 90*time.Second)

				// When the image changes
				s.setImage(v2)
				// Then the judge reads the router's counters through the proxy, or says what
				// Prometheus refused
				eventually(t, 60*time.Second, "the judge's reading", func(ctx context.Context) error {
					ro, err := s.rollout(ctx)
					if err != nil {
						return err
					}
					for _, a := range ro.Status.Analysis {
						if a.Kind != v1alpha1.AnalysisKindJudge || len(a.Metrics) == 0 {
							continue
						}
						m := a.Metrics[0]
						switch {
						case tc.refusal == "" && strings.Contains(m.Message, "read failed"):
							t.Fatalf("the judge could not read: %s", m.Message)
						case tc.refusal == "" && m.Count > 0:
							return nil
						case tc.refusal != "" && strings.Contains(m.Message, "last read failed: ") && strings.Contains(m.Message, tc.refusal):
							return nil
						}
						return fmt.Errorf("judge run %s: %s (%d slices)", a.Phase, m.Message, m.Count)
					}
					return fmt.Errorf("no judge run in %d runs; phase %s: %s", len(ro.Status.Analysis), ro.Status.Phase, ro.Status.Message)
				})
				if tc.refusal == "" {
					// and the step's analysis measures through the proxy: the canary is promoted
					ro := s.waitPhase(v1alpha1.PhaseHealthy, 2, 90*time.Second)
					var step *v1alpha1.AnalysisRunStatus
					for i := range ro.Status.Analysis {
						if a := &ro.Status.Analysis[i]; a.Kind == v1alpha1.AnalysisKindStep {
							step = a
						}
					}
					if step == nil || step.Phase != v1alpha1.AnalysisSuccessful || len(step.Metrics) == 0 || len(step.Metrics[0].Measurements) == 0 ||
						!strings.Contains(step.Metrics[0].Measurements[0].Value, "5xx in") {
						t.Errorf("step analysis: %+v", step)
					}
					return
				}
				// Then the analysis run says what Prometheus refused, and the canary is rolled back
				ro = s.waitPhase(v1alpha1.PhaseDegraded, 1, 90*time.Second)
				var said []string
				found := false
				for _, a := range ro.Status.Analysis {
					text := a.Message + fmt.Sprint(a.Metrics)
					said = append(said, fmt.Sprintf("%s %s: %s", a.Kind, a.Phase, text))
					if a.Kind == v1alpha1.AnalysisKindStep && a.Phase == v1alpha1.AnalysisError && strings.Contains(text, tc.refusal) {
						found = true
					}
				}
				if !found {
					t.Errorf("no step analysis run in Error saying %q:\n%s", tc.refusal, strings.Join(said, "\n"))
				}
			})
		}
	})
	t.Run("the proxy checked", func(t *testing.T) {
		if passed.Load() == 0 || refused.Load() == 0 {
			t.Errorf("the proxy passed %d requests and refused %d; want some of each", passed.Load(), refused.Load())
		}
	})
	t.Run("no log line holds the password", func(t *testing.T) {
		for ns, l := range logs {
			out := l.String()
			if !strings.Contains(out, "ramp controller starting") || !strings.Contains(out, `basic auth as \"ramp\"`) && ns != "prom-auth-none" {
				t.Errorf("controller %s: the log does not show its start with its Prometheus settings:\n%.3000s", ns, out)
			}
			if strings.Contains(out, password) {
				t.Errorf("controller %s: the log holds the password:\n%s", ns, out)
			}
		}
	})
}

// startControllerBinary runs `ramp controller` with kubeconfig and args, at debug level and
// without leader election, metrics or probes, until the test ends; it returns its output.
func startControllerBinary(t *testing.T, kubeconfig string, args ...string) *testkit.SyncBuffer {
	t.Helper()
	bin, err := rampBinary()
	if err != nil {
		t.Fatal(err)
	}
	out := &testkit.SyncBuffer{}
	cmd := exec.Command(bin, append([]string{"controller", "--kubeconfig", kubeconfig, "--leader-elect=false",
		"--metrics-bind-address", "0", "--health-probe-bind-address", "0", "--log-level", "debug"}, args...)...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			var exit *exec.ExitError
			if err != nil && !errors.As(err, &exit) {
				t.Errorf("ramp controller %v: %v", args, err)
			}
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
			t.Errorf("ramp controller %v did not stop within 30s", args)
		}
		if t.Failed() {
			t.Logf("ramp controller %v output:\n%s", args, tail(out.String(), 200))
		}
	})
	return out
}

func tail(s string, lines int) string {
	l := strings.Split(s, "\n")
	return strings.Join(l[max(0, len(l)-lines):], "\n")
}
