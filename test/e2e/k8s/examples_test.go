package k8s

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/analysis"
	promprovider "ramp.dev/ramp/internal/analysis/prometheus"
	"ramp.dev/ramp/internal/analysis/web"
	"ramp.dev/ramp/internal/kube"
	"ramp.dev/ramp/test/k8senv"
	"ramp.dev/ramp/test/promenv"
)

// exampleDir is examples/chat-api/kubernetes, the files a team copies.
var exampleDir = filepath.Join(repoRoot, "examples", "chat-api", "kubernetes")

// The example's images: the note's ECR repository, a tag per model. kwok runs them without
// pulling anything.
const (
	chatImage    = "123456789012.dkr.ecr.us-east-1.amazonaws.com/carepath-chat-api:"
	chatV1       = chatImage + "v1.0"
	chatV2       = chatImage + "v2.0"
	chatBadModel = chatImage + "v2.1" // its answers fail: the stand-in serves 30% 5xx for it
	shippedProm  = "http://prometheus.monitoring:9090"
)

// exampleNamespaces: a namespace per strategy (the files' carepath-demo, renamed, so that
// the three run side by side), and carepath-demo itself for make deploy-chat.
var exampleNamespaces = []string{"carepath-demo-rolling", "carepath-demo-canary", "carepath-demo-bluegreen", "carepath-demo"}

// TestChatAPIKubernetesExamples applies every file of examples/chat-api/kubernetes/ to a real
// control plane and runs each Rollout through a change of model to its promotion — the gated
// rolling update, the Istio canary with its x-version header route, the blue-green with its Job
// test suite — and then through a bad model (30% 5xx), which the note's error-rate query fails
// and each strategy takes back its way (undo; weights and header route back to stable; the
// switch back to the warm pods). The AnalysisTemplates' queries — the
// note's own — are evaluated by a real Prometheus that scrapes, with the relabelling of
// prometheus/scrape-config.yaml, a stand-in for the pods' /metrics and kube-state-metrics.
// After each promotion, what ramp changed on the Deployment and Services is checked against
// the ignore_changes of terraform/chat-api.tf; and deploy-chat.sh (make deploy-chat) runs
// against the control plane.
func TestChatAPIKubernetesExamples(t *testing.T) {
	env := k8senv.Start(t)
	cfg := installRamp(t, env)
	// Istio's real VirtualService CRD, so 21-virtualservice.yaml is checked against its schema.
	env.ApplyFiles(t, filepath.Join(repoRoot, "internal/kube/testdata/crds/networking.istio.io_virtualservices.yaml"))
	c := rampClient(t, env)

	series := newChatSeries(t, c)
	prom := startExamplePrometheus(t, env, c, series)
	startController(t, cfg, "examples", nil, kube.Options{Providers: map[string]analysis.Provider{
		// As `ramp controller` has them.
		"prometheus": promprovider.New(time.Now),
		"web":        web.New(nil),
	}})

	for _, strategy := range []string{"rolling", "canary", "bluegreen"} {
		t.Run(strategy, func(t *testing.T) {
			t.Parallel()
			ns := "carepath-demo-" + strategy
			s := &scenario{t: t, env: env, c: c, ns: ns}
			applyExample(t, env, ns, prom, strategy)

			// Given the files applied, the Deployment runs v1.0 and it is the stable revision.
			s.waitPhase(v1alpha1.PhaseHealthy, 1, 90*time.Second)
			s.waitReplicas(map[string]int32{chatV1: 3}, 30*time.Second)

			// When the model changes (kubectl set image, terraform apply), then ramp rolls it
			// out with the file's strategy to its promotion.
			s.setImage(chatV2)
			switch strategy {
			case "rolling":
				exerciseRolling(t, s)
			case "canary":
				exerciseCanary(t, s)
			case "bluegreen":
				exerciseBlueGreen(t, s)
			}
			// The note's queries judged the new revision on its own series.
			checkNoteQueries(t, s, 2, chatV2)
			checkTerraformIgnores(t, s, chatV2, strategy)

			// When a bad model comes (30% of its answers 5xx), then the note's error-rate
			// query fails it and ramp takes it back, each strategy its way.
			s.setImage(chatBadModel)
			switch strategy {
			case "rolling":
				// At the pause, ramp undoes the update: the Deployment runs v2.0 again.
				badModelAborted(t, s)
				s.waitReplicas(map[string]int32{chatV2: 3}, 90*time.Second)
				eventually(t, 30*time.Second, "the Deployment's template back on v2.0", func(ctx context.Context) error {
					d, err := s.deployment(ctx)
					if err != nil {
						return err
					}
					if img := d.Spec.Template.Spec.Containers[0].Image; img != chatV2 {
						return fmt.Errorf("image %s", img)
					}
					return nil
				})
			case "canary":
				// Testers promote past the 5% pause; the analysis at 5% aborts it: all traffic
				// back to stable, the header route gone.
				s.waitPhase(v1alpha1.PhasePaused, 2, 90*time.Second)
				if out, err := ramp(t, true, "--kubeconfig", s.env.Kubeconfig, "-n", s.ns, "promote", "chat-api"); err != nil {
					t.Fatalf("kubectl ramp promote: %v\n%s", err, out)
				}
				badModelAborted(t, s)
				eventually(t, 30*time.Second, "the VirtualService all to stable, without the header route", func(ctx context.Context) error {
					vs, err := exampleVirtualService(ctx, s)
					if err != nil {
						return err
					}
					if vs.canaryWeight != 0 || vs.stableWeight != 100 || len(vs.headerRoutes) != 0 {
						return fmt.Errorf("stable %d canary %d header routes %q", vs.stableWeight, vs.canaryWeight, vs.headerRoutes)
					}
					return nil
				})
				s.waitSelects("chat-api-stable", chatV2)
				waitImages(t, s, map[string]int32{chatV2: 3, chatBadModel: 0})
			case "bluegreen":
				// The test suite passes (it does not see the 5xx), chat-api switches, the
				// queries after the switch fail, and chat-api switches back to v2.0's pods.
				badModelAborted(t, s)
				s.waitSelects("chat-api", chatV2)
				waitImages(t, s, map[string]int32{chatV2: 3, chatBadModel: 0})
			}
			if p := series.problems(); len(p) > 0 {
				t.Errorf("the stand-in was scraped wrongly (the scrape config's relabelling): %v", p)
			}
		})
	}

	t.Run("make deploy-chat", func(t *testing.T) {
		t.Parallel()
		testDeployChat(t, env, c, prom)
	})
}

// applyExample applies every Kubernetes file of the example (the folder's *.yaml, then
// rollouts/STRATEGY.yaml) into namespace ns, as they are but for: the namespace's name, the
// AnalysisTemplates' Prometheus address (the test's), and their waits (1m to seconds).
func applyExample(t *testing.T, env *k8senv.Env, ns, prom, strategy string) {
	t.Helper()
	entries, err := os.ReadDir(exampleDir)
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, e := range entries {
		if !e.IsDir() && strings.HasSuffix(e.Name(), ".yaml") {
			files = append(files, filepath.Join(exampleDir, e.Name()))
		}
	}
	files = append(files, filepath.Join(exampleDir, "rollouts", strategy+".yaml"))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		text := mustReplace(t, f, string(data), "carepath-demo", ns)
		if filepath.Base(f) == "30-analysis.yaml" {
			text = mustReplace(t, f, text, "address: "+shippedProm, "address: "+prom)
			text = mustReplace(t, f, text, "initialDelay: 1m", "initialDelay: 3s")
			text = mustReplace(t, f, text, "interval: 1m", "interval: 2s")
		}
		if _, err := env.Apply(ctx, []byte(text)); err != nil {
			t.Fatalf("apply %s: %v", f, err)
		}
	}
}

// mustReplace replaces old with new in text, failing when the file has no old: the test
// must not silently stop changing what it means to.
func mustReplace(t *testing.T, file, text, old, new string) string {
	t.Helper()
	if !strings.Contains(text, old) {
		t.Fatalf("%s has no %q", file, old)
	}
	return strings.ReplaceAll(text, old, new)
}

func exerciseRolling(t *testing.T, s *scenario) {
	// The Deployment starts one new pod and holds there while the queries judge it.
	eventually(t, 60*time.Second, "the update held at its pause point", func(ctx context.Context) error {
		ro, err := s.rollout(ctx)
		if err != nil {
			return err
		}
		running := slices.ContainsFunc(ro.Status.Analysis, func(a v1alpha1.AnalysisRunStatus) bool {
			return a.Revision == 2 && a.Phase == v1alpha1.AnalysisRunning
		})
		if ro.Status.CurrentRevision != 2 || !running {
			return fmt.Errorf("phase %s current %d analysis %+v: %s", ro.Status.Phase, ro.Status.CurrentRevision, ro.Status.Analysis, ro.Status.Message)
		}
		d, err := s.deployment(ctx)
		if err != nil {
			return err
		}
		if !d.Spec.Paused {
			return errors.New("deployment not paused while the analysis runs")
		}
		return nil
	})
	s.waitPhase(v1alpha1.PhaseHealthy, 2, 120*time.Second)
	s.waitReplicas(map[string]int32{chatV2: 3}, 60*time.Second)
}

func exerciseCanary(t *testing.T, s *scenario) {
	// At 5% the rollout waits for a human, and testers reach the new model with
	// x-version: canary.
	s.waitPhase(v1alpha1.PhasePaused, 1, 90*time.Second)
	eventually(t, 30*time.Second, "the x-version route and 5% on the VirtualService", func(ctx context.Context) error {
		vs, err := exampleVirtualService(ctx, s)
		if err != nil {
			return err
		}
		if vs.canaryWeight != 5 || vs.stableWeight != 95 {
			return fmt.Errorf("primary route weights stable %d canary %d; want 95/5", vs.stableWeight, vs.canaryWeight)
		}
		if len(vs.headerRoutes) != 1 || vs.headerRoutes[0] != "x-version exact canary -> chat-api-canary" {
			return fmt.Errorf("header routes %q; want the x-version route to chat-api-canary", vs.headerRoutes)
		}
		if vs.first != "x-version" {
			return fmt.Errorf("the first http route is %q; the header route must come before the weights", vs.first)
		}
		return nil
	})
	s.waitSelects("chat-api-canary", chatV2)
	s.waitSelects("chat-api-stable", chatV1)

	// When the testers are content and promote, the analysis steps and weights run on to the
	// promotion, and the header route goes.
	if out, err := ramp(t, true, "--kubeconfig", s.env.Kubeconfig, "-n", s.ns, "promote", "chat-api"); err != nil {
		t.Fatalf("kubectl ramp promote: %v\n%s", err, out)
	}
	s.waitPhase(v1alpha1.PhaseHealthy, 2, 150*time.Second)
	eventually(t, 30*time.Second, "the VirtualService back to one route, all to stable", func(ctx context.Context) error {
		vs, err := exampleVirtualService(ctx, s)
		if err != nil {
			return err
		}
		if vs.canaryWeight != 0 || vs.stableWeight != 100 || len(vs.headerRoutes) != 0 {
			return fmt.Errorf("stable %d canary %d header routes %q", vs.stableWeight, vs.canaryWeight, vs.headerRoutes)
		}
		return nil
	})
	s.waitSelects("chat-api-stable", chatV2)
}

func exerciseBlueGreen(t *testing.T, s *scenario) {
	// The test suite runs as a Job from the template's full JobSpec, against the preview.
	var job *batchv1.Job
	eventually(t, 60*time.Second, "the test-suite Job", func(ctx context.Context) error {
		var l batchv1.JobList
		if err := s.c.List(ctx, &l, client.InNamespace(s.ns), client.MatchingLabels{kube.LabelRollout: "chat-api"}); err != nil {
			return err
		}
		if len(l.Items) != 1 {
			return fmt.Errorf("%d jobs", len(l.Items))
		}
		job = &l.Items[0]
		return nil
	})
	pod := job.Spec.Template
	var problems []string
	if job.Labels["app.kubernetes.io/name"] != "chat-api-tests" {
		problems = append(problems, fmt.Sprintf("job labels %v", job.Labels))
	}
	if pod.Spec.ServiceAccountName != "chat-api-tests" {
		problems = append(problems, "service account "+pod.Spec.ServiceAccountName)
	}
	if pod.Annotations["sidecar.istio.io/inject"] != "false" {
		problems = append(problems, fmt.Sprintf("pod annotations %v", pod.Annotations))
	}
	ctr := pod.Spec.Containers[0]
	if ctr.Image != "123456789012.dkr.ecr.us-east-1.amazonaws.com/carepath-chat-api-tests:v1.0" {
		problems = append(problems, "image "+ctr.Image)
	}
	if want := []string{"--base-url=http://chat-api-preview." + s.ns, "--suite=triage"}; !slices.Equal(ctr.Args, want) {
		problems = append(problems, fmt.Sprintf("args %q, want %q", ctr.Args, want))
	}
	if ctr.Resources.Requests.Cpu().String() != "250m" || ctr.Resources.Limits.Memory().String() != "512Mi" {
		problems = append(problems, fmt.Sprintf("resources %+v", ctr.Resources))
	}
	envs := map[string]string{}
	for _, e := range ctr.Env {
		envs[e.Name] = e.Value
	}
	if envs["RAMP_SERVICE"] != "chat-api-preview" || envs["RAMP_ROLE"] != "preview" || envs["RAMP_REVISION"] != "2" {
		problems = append(problems, fmt.Sprintf("env %v", envs))
	}
	if job.Spec.ActiveDeadlineSeconds == nil || *job.Spec.ActiveDeadlineSeconds != 900 {
		problems = append(problems, fmt.Sprintf("activeDeadlineSeconds %v; want the 15m timeout", job.Spec.ActiveDeadlineSeconds))
	}
	if len(problems) > 0 {
		t.Errorf("the test-suite Job is not the template's: %s", strings.Join(problems, "; "))
	}
	s.waitSelects("chat-api-preview", chatV2)

	// The Job completes (kwok), chat-api switches to the new pods, and the note's queries
	// watch them after the switch (postPromotionAnalysis).
	s.waitPhase(v1alpha1.PhaseHealthy, 2, 150*time.Second)
	s.waitSelects("chat-api", chatV2)
	// The old model stays warm after the switch (the watch window, 5 minutes), for a switch
	// back without starting pods.
	waitImages(t, s, map[string]int32{chatV1: 3, chatV2: 3})
	ro, err := s.rollout(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	suite := false
	for _, a := range ro.Status.Analysis {
		if a.Kind == v1alpha1.AnalysisKindPrePromote && a.Phase == v1alpha1.AnalysisSuccessful {
			suite = true
		}
	}
	if !suite {
		t.Errorf("no successful prePromotion run (the test suite) in %+v", ro.Status.Analysis)
	}
}

// waitImages waits until each listed image runs with its replica count; other images may run
// (the previous model, warm in the watch window after a promotion).
func waitImages(t *testing.T, s *scenario, want map[string]int32) {
	t.Helper()
	eventually(t, 90*time.Second, fmt.Sprintf("replicas %v in %s", want, s.ns), func(ctx context.Context) error {
		got, _, err := s.replicaSets(ctx)
		if err != nil {
			return err
		}
		for img, n := range want {
			if got[img] != n {
				return fmt.Errorf("replicas by image %v", got)
			}
		}
		return nil
	})
}

// badModelAborted waits until the bad model's rollout (revision 3) is aborted with v2.0
// stable, by a failed error-rate measurement of the bad model's 30% 5xx.
func badModelAborted(t *testing.T, s *scenario) {
	t.Helper()
	ro := s.waitPhase(v1alpha1.PhaseDegraded, 2, 120*time.Second)
	failed := failedMetric(ro, "error-rate")
	if failed == nil {
		t.Fatalf("no failed error-rate measurement in %+v (message %s)", ro.Status.Analysis, ro.Status.Message)
	}
	if v, err := strconv.ParseFloat(failed.Value, 64); err != nil || math.Abs(v-0.3) > 1e-6 {
		t.Errorf("failed error-rate measurement %q; want the bad model's 0.3", failed.Value)
	}
	if ro.Status.CurrentRevision != 3 {
		t.Errorf("current revision %d; want the bad model's 3", ro.Status.CurrentRevision)
	}
}

// checkNoteQueries checks that the note's three queries each measured revision rev, image
// img, with what the stand-in serves for it: 0.5% 5xx, a p95 of 2s and no restarts.
func checkNoteQueries(t *testing.T, s *scenario, rev int64, img string) {
	t.Helper()
	ro, err := s.rollout(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{"error-rate": 0.005, "latency-p95": 2, "restarts": 0}
	got := map[string][]string{}
	for _, a := range ro.Status.Analysis {
		if a.Revision != rev {
			continue
		}
		for _, m := range a.Metrics {
			if _, ok := want[m.Name]; !ok {
				continue
			}
			if m.Phase != v1alpha1.AnalysisSuccessful {
				t.Errorf("%s run %s: metric %s %s: %s", a.Kind, a.Name, m.Name, m.Phase, m.Message)
			}
			for _, ms := range m.Measurements {
				// A look before the new pods' series were scraped twice is taken again
				// ("no data"); the successful ones decided.
				if ms.Phase == v1alpha1.AnalysisSuccessful {
					got[m.Name] = append(got[m.Name], ms.Value)
				}
			}
		}
	}
	for name, w := range want {
		if len(got[name]) == 0 {
			t.Errorf("no successful measurement of %s for revision %d (%s): analysis %+v", name, rev, img, ro.Status.Analysis)
		}
		for _, v := range got[name] {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil || math.Abs(f-w) > 1e-6 {
				t.Errorf("%s measured %q for revision %d; want %v (what the stand-in serves for %s)", name, v, rev, w, img)
			}
		}
	}
}

// failedMetric returns the last failed measurement of the metric name.
func failedMetric(ro *v1alpha1.Rollout, name string) *v1alpha1.Measurement {
	var found *v1alpha1.Measurement
	for _, a := range ro.Status.Analysis {
		for _, m := range a.Metrics {
			for i := range m.Measurements {
				if m.Name == name && m.Measurements[i].Phase == v1alpha1.AnalysisFailed {
					found = &m.Measurements[i]
				}
			}
		}
	}
	return found
}

// exampleVS is what the canary test reads off the VirtualService chat-api.
type exampleVS struct {
	stableWeight, canaryWeight int64
	// headerRoutes are the other http routes: "HEADER MATCH VALUE -> HOST".
	headerRoutes []string
	first        string
}

func exampleVirtualService(ctx context.Context, s *scenario) (*exampleVS, error) {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(virtualServiceGVK)
	if err := s.c.Get(ctx, client.ObjectKey{Namespace: s.ns, Name: "chat-api"}, u); err != nil {
		return nil, err
	}
	out := &exampleVS{}
	routes, _, _ := unstructured.NestedSlice(u.Object, "spec", "http")
	for i, r := range routes {
		m := r.(map[string]any)
		if i == 0 {
			out.first = fmt.Sprint(m["name"])
		}
		dests, _, _ := unstructured.NestedSlice(m, "route")
		if m["name"] == "primary" {
			out.stableWeight = weightOf(dests, "chat-api-stable", "destination", "host")
			out.canaryWeight = weightOf(dests, "chat-api-canary", "destination", "host")
			continue
		}
		matches, _, _ := unstructured.NestedSlice(m, "match")
		var desc []string
		for _, mt := range matches {
			headers, _, _ := unstructured.NestedMap(mt.(map[string]any), "headers")
			for h, v := range headers {
				for op, val := range v.(map[string]any) {
					desc = append(desc, fmt.Sprintf("%s %s %v", h, op, val))
				}
			}
		}
		var hosts []string
		for _, d := range dests {
			host, _, _ := unstructured.NestedString(d.(map[string]any), "destination", "host")
			hosts = append(hosts, host)
		}
		out.headerRoutes = append(out.headerRoutes, strings.Join(desc, ",")+" -> "+strings.Join(hosts, ","))
	}
	return out, nil
}

// checkTerraformIgnores checks, after a promotion, that every field ramp changed on the
// Deployment and on the Services — every difference between the live object and the file
// Terraform would apply again (10-chat-api.yaml with image img, 20-services.yaml), the
// provider's own kubernetes.io annotations aside — is in an ignore_changes of
// terraform/chat-api.tf; and that ramp changed neither replicas nor the pod template.
func checkTerraformIgnores(t *testing.T, s *scenario, img, strategy string) {
	t.Helper()
	ignores := terraformIgnores(t)
	covered := func(resource, field string) bool {
		for _, ig := range ignores[resource] {
			if ig == field || strings.HasPrefix(field, ig+"[") {
				return true
			}
		}
		return false
	}
	ctx := context.Background()
	var want appsv1.Deployment
	var svcs []corev1.Service
	for _, f := range []string{"10-chat-api.yaml", "20-services.yaml"} {
		data, err := os.ReadFile(filepath.Join(exampleDir, f))
		if err != nil {
			t.Fatal(err)
		}
		for _, doc := range strings.Split(string(data), "\n---\n") {
			var meta metav1.TypeMeta
			if err := yaml.Unmarshal([]byte(doc), &meta); err != nil {
				t.Fatal(err)
			}
			switch meta.Kind {
			case "Deployment":
				if err := yaml.UnmarshalStrict([]byte(doc), &want); err != nil {
					t.Fatal(err)
				}
			case "Service":
				var svc corev1.Service
				if err := yaml.UnmarshalStrict([]byte(doc), &svc); err != nil {
					t.Fatal(err)
				}
				svcs = append(svcs, svc)
			}
		}
	}
	d, err := s.deployment(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var drift []string
	if d.Spec.Paused != want.Spec.Paused {
		drift = append(drift, "spec[0].paused")
	}
	for k := range d.Annotations {
		if _, ok := want.Annotations[k]; !ok && !strings.HasSuffix(strings.SplitN(k, "/", 2)[0], "kubernetes.io") {
			drift = append(drift, fmt.Sprintf("metadata[0].annotations[%q]", k))
		}
	}
	if *d.Spec.Replicas != *want.Spec.Replicas {
		t.Errorf("ramp changed the Deployment's replicas: %d, the file %d", *d.Spec.Replicas, *want.Spec.Replicas)
	}
	if got := d.Spec.Template.Spec.Containers[0].Image; got != img {
		t.Errorf("the Deployment's image is %s after the promotion; want %s", got, img)
	}
	if !equalStrings(d.Spec.Template.Labels, want.Spec.Template.Labels) || !equalStrings(d.Spec.Template.Annotations, want.Spec.Template.Annotations) {
		t.Errorf("ramp changed the pod template's metadata: labels %v annotations %v", d.Spec.Template.Labels, d.Spec.Template.Annotations)
	}
	if ru := d.Spec.Strategy.RollingUpdate; ru == nil || ru.MaxSurge.String() != "1" || ru.MaxUnavailable.String() != "0" {
		t.Errorf("ramp changed the Deployment's strategy: %+v", d.Spec.Strategy)
	}
	// Between rollouts ramp keeps a canary's or blue-green's Deployment paused. A gated rolling
	// update's may still be unpaused right after the promotion: ramp lets it roll until it runs
	// the promoted revision fully, then holds it (TestSettledRolloutsStayStill); it is annotated
	// all the same.
	if (strategy != "rolling" && !slices.Contains(drift, "spec[0].paused")) || !slices.ContainsFunc(drift, func(f string) bool { return strings.Contains(f, kube.AnnotationPausedBy) }) {
		t.Errorf("the Deployment is not held by ramp after the promotion (drift %v): the check would check nothing", drift)
	}
	for _, f := range drift {
		if !covered("kubernetes_deployment_v1", f) {
			t.Errorf("ramp changed the Deployment's %s, which terraform/chat-api.tf does not ignore: terraform apply would undo it", f)
		}
	}
	selected := 0
	for _, want := range svcs {
		svc := &corev1.Service{}
		if err := s.c.Get(ctx, client.ObjectKey{Namespace: s.ns, Name: want.Name}, svc); err != nil {
			t.Fatal(err)
		}
		for k, v := range svc.Spec.Selector {
			if want.Spec.Selector[k] == v {
				continue
			}
			selected++
			if f := fmt.Sprintf("spec[0].selector[%q]", k); !covered("kubernetes_service_v1", f) {
				t.Errorf("ramp changed Service %s's %s, which terraform/chat-api.tf does not ignore", want.Name, f)
			}
		}
	}
	if strategy != "rolling" && selected == 0 {
		t.Errorf("no Service selector changed by ramp in the %s: the check would check nothing", strategy)
	}
}

func equalStrings(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || v != w {
			return false
		}
	}
	return true
}

// terraformIgnores reads the ignore_changes entries of terraform/chat-api.tf, by resource
// type.
func terraformIgnores(t *testing.T) map[string][]string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(exampleDir, "terraform", "chat-api.tf"))
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, l := range strings.Split(string(data), "\n") {
		if i := strings.Index(l, "#"); i >= 0 {
			l = l[:i]
		}
		lines = append(lines, l)
	}
	text := strings.Join(lines, "\n")
	out := map[string][]string{}
	resources := regexp.MustCompile(`(?m)^resource "([a-z0-9_]+)"`).FindAllStringSubmatchIndex(text, -1)
	for i, r := range resources {
		end := len(text)
		if i+1 < len(resources) {
			end = resources[i+1][0]
		}
		typ := text[r[2]:r[3]]
		for _, m := range regexp.MustCompile(`ignore_changes\s*=\s*\[((?s:.*?))\n\s*\]`).FindAllStringSubmatch(text[r[0]:end], -1) {
			for _, e := range regexp.MustCompile(`[a-z_]+\[0\]\.[a-z_]+(?:\["[^"]*"\])?`).FindAllString(m[1], -1) {
				out[typ] = append(out[typ], e)
			}
		}
	}
	if len(out["kubernetes_deployment_v1"]) == 0 || len(out["kubernetes_service_v1"]) == 0 {
		t.Fatalf("terraform/chat-api.tf: no ignore_changes read for the Deployment and the Services: %v", out)
	}
	return out
}

// testDeployChat runs deploy-chat.sh (what make deploy-chat runs) against the control plane,
// as kubectl's current context: a first deploy, a new model with CHAT_IMAGE, and a deploy
// again without it, which must not roll the model back.
func testDeployChat(t *testing.T, env *k8senv.Env, c client.Client, prom string) {
	bin, err := rampBinary()
	if err != nil {
		t.Fatal(err)
	}
	run := func(vars ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, filepath.Join(exampleDir, "deploy-chat.sh"))
		cmd.Env = append(os.Environ(), "KUBECONFIG="+env.Kubeconfig, "KUBECTL="+filepath.Join(env.BinDir, "kubectl"), "RAMP="+bin,
			"PROMETHEUS="+prom)
		cmd.Env = append(cmd.Env, vars...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	s := &scenario{t: t, env: env, c: c, ns: "carepath-demo"}
	// The first deploy: v1.0 from the file becomes the stable revision; the script waits for
	// it and shows it.
	out, err := run("WAIT=2m")
	if err != nil || !regexp.MustCompile(`(?m)^chat-api\s+rollingUpdate\s+Healthy\b`).MatchString(out) {
		t.Fatalf("deploy-chat.sh: %v\n%s", err, out)
	}
	s.waitReplicas(map[string]int32{chatV1: 3}, 30*time.Second)
	// The AnalysisTemplates got the PROMETHEUS address.
	at := &v1alpha1.AnalysisTemplate{}
	if err := c.Get(context.Background(), client.ObjectKey{Namespace: "carepath-demo", Name: "chat-api-error-rate"}, at); err != nil {
		t.Fatal(err)
	}
	if a := at.Spec.Metrics[0].Provider.Prometheus.Address; a != prom {
		t.Errorf("chat-api-error-rate's address %s; want PROMETHEUS %s", a, prom)
	}

	// A new model: the script sets the image, ramp starts revision 2 (its analysis waits a
	// minute first, as shipped), and the team promotes it by hand.
	out, err = run("CHAT_IMAGE="+chatV2, "WAIT=0")
	if err != nil || !regexp.MustCompile(`(?m)^chat-api\s+rollingUpdate\s`).MatchString(out) {
		t.Fatalf("deploy-chat.sh CHAT_IMAGE=v2.0: %v\n%s", err, out)
	}
	eventually(t, 30*time.Second, "revision 2 rolling out", func(ctx context.Context) error {
		ro, err := s.rollout(ctx)
		if err != nil {
			return err
		}
		if ro.Status.CurrentRevision != 2 || ro.Status.Phase == v1alpha1.PhaseHealthy {
			return fmt.Errorf("phase %s current %d", ro.Status.Phase, ro.Status.CurrentRevision)
		}
		return nil
	})
	if out, err := ramp(t, false, "--kubeconfig", env.Kubeconfig, "-n", "carepath-demo", "promote", "--full", "chat-api"); err != nil {
		t.Fatalf("ramp promote --full: %v\n%s", err, out)
	}
	s.waitPhase(v1alpha1.PhaseHealthy, 2, 90*time.Second)

	// Deploying again without CHAT_IMAGE keeps the model running: no new revision.
	out, err = run("WAIT=1m")
	if err != nil || !regexp.MustCompile(`(?m)^chat-api\s+rollingUpdate\s+Healthy\b`).MatchString(out) {
		t.Fatalf("deploy-chat.sh again: %v\n%s", err, out)
	}
	ro, err := s.rollout(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	d, err := s.deployment(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if img := d.Spec.Template.Spec.Containers[0].Image; img != chatV2 || ro.Status.CurrentRevision != 2 {
		t.Errorf("after deploying again: image %s, current revision %d; want v2.0 and revision 2\n%s", img, ro.Status.CurrentRevision, out)
	}

	// An unknown strategy is refused before anything is applied.
	if out, err := run("STRATEGY=recreate"); err == nil || !strings.Contains(out, "STRATEGY=recreate") {
		t.Errorf("deploy-chat.sh STRATEGY=recreate: %v\n%s", err, out)
	}
}

// chatSeries stands in for chat-api's pods' /metrics and for kube-state-metrics. Prometheus
// reaches it through the scrape config's relabelling: each chat-api pod's target is
// rewritten to it with the pod's namespace and name as parameters (and the address the
// config made, to check its port).
type chatSeries struct {
	*httptest.Server
	c       client.Client
	mu      sync.Mutex
	scrapes map[string]int64
	images  map[string]string
	bad     []string
}

func newChatSeries(t *testing.T, c client.Client) *chatSeries {
	s := &chatSeries{c: c, scrapes: map[string]int64{}, images: map[string]string{}}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

func (s *chatSeries) problem(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.bad) < 20 {
		s.bad = append(s.bad, fmt.Sprintf(format, args...))
	}
}

func (s *chatSeries) problems() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.bad)
}

func (s *chatSeries) serve(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/metrics":
		s.servePod(w, r)
	case "/kube-state-metrics":
		s.serveKSM(w, r)
	default:
		s.problem("scraped %s, not the path of the prometheus.io/path annotation", r.URL)
		http.NotFound(w, r)
	}
}

// servePod serves a pod's http_requests_total and http_request_duration_seconds, as
// counters that grow at every scrape: 200 answers, 1 of them 5xx (60 for the bad model),
// with a p95 of 2s.
func (s *chatSeries) servePod(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	ns, pod := q.Get("namespace"), q.Get("pod")
	if ns == "" || pod == "" || !strings.HasSuffix(q.Get("address"), ":8000") {
		s.problem("pod scrape %s: want namespace, pod and an address on the prometheus.io/port annotation's 8000", r.URL)
		http.Error(w, "bad target", http.StatusBadRequest)
		return
	}
	key := ns + "/" + pod
	s.mu.Lock()
	img, ok := s.images[key]
	s.mu.Unlock()
	if !ok {
		p := &corev1.Pod{}
		if err := s.c.Get(r.Context(), client.ObjectKey{Namespace: ns, Name: pod}, p); err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		img = p.Spec.Containers[0].Image
	}
	s.mu.Lock()
	s.images[key] = img
	s.scrapes[key]++
	n := s.scrapes[key]
	s.mu.Unlock()
	errs := int64(1)
	if img == chatBadModel {
		errs = 60
	}
	b := &strings.Builder{}
	b.WriteString("# TYPE http_requests_total counter\n")
	fmt.Fprintf(b, "http_requests_total{method=\"POST\",status=\"200\"} %d\n", (200-errs)*n)
	fmt.Fprintf(b, "http_requests_total{method=\"POST\",status=\"500\"} %d\n", errs*n)
	b.WriteString("# TYPE http_request_duration_seconds histogram\n")
	for _, bk := range []struct {
		le    string
		count int64
	}{{"0.5", 20}, {"1", 100}, {"2", 190}, {"5", 200}, {"+Inf", 200}} {
		fmt.Fprintf(b, "http_request_duration_seconds_bucket{le=%q} %d\n", bk.le, bk.count*n)
	}
	fmt.Fprintf(b, "http_request_duration_seconds_sum %d\nhttp_request_duration_seconds_count %d\n", 280*n, 200*n)
	_, _ = w.Write([]byte(b.String()))
}

// serveKSM serves kube_pod_container_status_restarts_total of every chat-api pod, as
// kube-state-metrics does (its own namespace and pod labels): no restarts.
func (s *chatSeries) serveKSM(w http.ResponseWriter, r *http.Request) {
	var pods corev1.PodList
	if err := s.c.List(r.Context(), &pods, client.MatchingLabels{"app": "chat-api"}); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	b := &strings.Builder{}
	b.WriteString("# TYPE kube_pod_container_status_restarts_total counter\n")
	for _, p := range pods.Items {
		fmt.Fprintf(b, "kube_pod_container_status_restarts_total{namespace=%q,pod=%q,container=\"chat-api\",uid=%q} 0\n", p.Namespace, p.Name, p.UID)
	}
	_, _ = w.Write([]byte(b.String()))
}

// startExamplePrometheus runs a real Prometheus with the scrape jobs of
// prometheus/scrape-config.yaml. Debian's Prometheus is built without Kubernetes service
// discovery, so the test stands in for it: it writes, for file_sd, the targets and
// __meta_kubernetes_* labels Prometheus's pod and service roles make of the cluster's pods and
// Services (in the job's namespaces: the test's), and Prometheus applies the file's
// relabel_configs to them as written. The test only appends rules that send each kept target
// to the stand-in.
func startExamplePrometheus(t *testing.T, env *k8senv.Env, c client.Client, series *chatSeries) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(exampleDir, "prometheus", "scrape-config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var shipped struct {
		ScrapeConfigs []map[string]any `json:"scrape_configs"`
	}
	if err := yaml.UnmarshalStrict(data, &shipped); err != nil {
		t.Fatalf("prometheus/scrape-config.yaml: %v", err)
	}
	standIn := strings.TrimPrefix(series.URL, "http://")
	dir := t.TempDir()
	var discoveries []func(context.Context) ([]targetGroup, error)
	var files []string
	for i, job := range shipped.ScrapeConfigs {
		name := fmt.Sprint(job["job_name"])
		sds, _ := job["kubernetes_sd_configs"].([]any)
		if len(sds) != 1 {
			t.Fatalf("scrape job %s: %d kubernetes_sd_configs; the test stands in for exactly one", name, len(sds))
		}
		sd := sds[0].(map[string]any)
		var namespaces []string
		if nsm, ok := sd["namespaces"].(map[string]any); ok {
			names, _ := nsm["names"].([]any)
			if len(names) != 1 || names[0] != "carepath-demo" {
				t.Fatalf("scrape job %s: namespaces %v; want carepath-demo", name, names)
			}
			namespaces = exampleNamespaces
		}
		file := filepath.Join(dir, fmt.Sprintf("sd-%d.json", i))
		files = append(files, file)
		delete(job, "kubernetes_sd_configs")
		job["file_sd_configs"] = []any{map[string]any{"files": []any{file}, "refresh_interval": "1s"}}
		relabels, _ := job["relabel_configs"].([]any)
		switch sd["role"] {
		case "pod":
			discoveries = append(discoveries, func(ctx context.Context) ([]targetGroup, error) { return podTargets(ctx, c, namespaces) })
			relabels = append(relabels,
				map[string]any{"source_labels": []any{"__address__"}, "target_label": "__param_address"},
				map[string]any{"source_labels": []any{"namespace"}, "target_label": "__param_namespace"},
				map[string]any{"source_labels": []any{"pod"}, "target_label": "__param_pod"},
				map[string]any{"target_label": "__address__", "replacement": standIn})
		case "service":
			discoveries = append(discoveries, func(ctx context.Context) ([]targetGroup, error) { return serviceTargets(ctx, c) })
			relabels = append(relabels,
				map[string]any{"target_label": "__address__", "replacement": standIn},
				map[string]any{"target_label": "__metrics_path__", "replacement": "/kube-state-metrics"})
		default:
			t.Fatalf("scrape job %s: role %v; the test stands in for pod and service", name, sd["role"])
		}
		job["relabel_configs"] = relabels
	}
	// kube-state-metrics as its chart installs it: a Service in kube-system.
	ksm := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "kube-state-metrics", Namespace: "kube-system", Labels: map[string]string{"app.kubernetes.io/name": "kube-state-metrics"}},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app.kubernetes.io/name": "kube-state-metrics"},
			Ports:    []corev1.ServicePort{{Name: "http-metrics", Port: 8080}, {Name: "telemetry", Port: 8081}},
		},
	}
	if err := c.Create(context.Background(), ksm); err != nil {
		t.Fatal(err)
	}

	// Discovery: every 300 ms, as the Kubernetes SD's watch would see changes.
	write := func(ctx context.Context) error {
		for i, discover := range discoveries {
			groups, err := discover(ctx)
			if err != nil {
				return err
			}
			b, err := json.Marshal(groups)
			if err != nil {
				return err
			}
			tmp := files[i] + ".tmp"
			if err := os.WriteFile(tmp, b, 0o600); err != nil {
				return err
			}
			if err := os.Rename(tmp, files[i]); err != nil {
				return err
			}
		}
		return nil
	}
	if err := write(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(300 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				_ = write(ctx) // the next tick tries again
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done })

	// promenv adds the global section (a scrape and an evaluation every second).
	config, err := yaml.Marshal(map[string]any{"scrape_configs": shipped.ScrapeConfigs})
	if err != nil {
		t.Fatal(err)
	}
	return promenv.StartConfig(t, promenv.Binary(t), string(config))
}

// targetGroup is one group of a file_sd file.
type targetGroup struct {
	Targets []string          `json:"targets"`
	Labels  map[string]string `json:"labels"`
}

var invalidLabelChars = regexp.MustCompile(`[^a-zA-Z0-9_]`)

// sanitize makes a Kubernetes label or annotation name a Prometheus label name, as
// Prometheus's Kubernetes discovery does.
func sanitize(s string) string { return invalidLabelChars.ReplaceAllString(s, "_") }

// podTargets are the targets of Prometheus's Kubernetes discovery, role pod, in namespaces:
// one per declared container port of each pod with an IP, at podIP:port (podIP for a
// container without ports), with the role's __meta_kubernetes_pod_* labels.
func podTargets(ctx context.Context, c client.Client, namespaces []string) ([]targetGroup, error) {
	var groups []targetGroup
	for _, ns := range namespaces {
		var pods corev1.PodList
		if err := c.List(ctx, &pods, client.InNamespace(ns)); err != nil {
			return nil, err
		}
		for _, p := range pods.Items {
			if p.Status.PodIP == "" {
				continue
			}
			base := map[string]string{
				"__meta_kubernetes_namespace":           p.Namespace,
				"__meta_kubernetes_pod_name":            p.Name,
				"__meta_kubernetes_pod_ip":              p.Status.PodIP,
				"__meta_kubernetes_pod_node_name":       p.Spec.NodeName,
				"__meta_kubernetes_pod_host_ip":         p.Status.HostIP,
				"__meta_kubernetes_pod_uid":             string(p.UID),
				"__meta_kubernetes_pod_phase":           string(p.Status.Phase),
				"__meta_kubernetes_pod_ready":           "false",
				"__meta_kubernetes_pod_controller_kind": "",
				"__meta_kubernetes_pod_controller_name": "",
			}
			for _, cond := range p.Status.Conditions {
				if cond.Type == corev1.PodReady && cond.Status == corev1.ConditionTrue {
					base["__meta_kubernetes_pod_ready"] = "true"
				}
			}
			if ref := metav1.GetControllerOf(&p); ref != nil {
				base["__meta_kubernetes_pod_controller_kind"] = ref.Kind
				base["__meta_kubernetes_pod_controller_name"] = ref.Name
			}
			for k, v := range p.Labels {
				base["__meta_kubernetes_pod_label_"+sanitize(k)] = v
				base["__meta_kubernetes_pod_labelpresent_"+sanitize(k)] = "true"
			}
			for k, v := range p.Annotations {
				base["__meta_kubernetes_pod_annotation_"+sanitize(k)] = v
				base["__meta_kubernetes_pod_annotationpresent_"+sanitize(k)] = "true"
			}
			for _, ctr := range p.Spec.Containers {
				labels := map[string]string{
					"__meta_kubernetes_pod_container_name":  ctr.Name,
					"__meta_kubernetes_pod_container_image": ctr.Image,
					"__meta_kubernetes_pod_container_init":  "false",
				}
				if len(ctr.Ports) == 0 {
					groups = append(groups, targetGroup{Targets: []string{p.Status.PodIP}, Labels: merge(base, labels)})
					continue
				}
				for _, port := range ctr.Ports {
					l := merge(base, labels)
					l["__meta_kubernetes_pod_container_port_name"] = port.Name
					l["__meta_kubernetes_pod_container_port_number"] = strconv.Itoa(int(port.ContainerPort))
					l["__meta_kubernetes_pod_container_port_protocol"] = string(port.Protocol)
					groups = append(groups, targetGroup{Targets: []string{net.JoinHostPort(p.Status.PodIP, strconv.Itoa(int(port.ContainerPort)))}, Labels: l})
				}
			}
		}
	}
	return groups, nil
}

// serviceTargets are the targets of Prometheus's Kubernetes discovery, role service, in every
// namespace: one per port of each Service, at NAME.NAMESPACE.svc:PORT.
func serviceTargets(ctx context.Context, c client.Client) ([]targetGroup, error) {
	var svcs corev1.ServiceList
	if err := c.List(ctx, &svcs); err != nil {
		return nil, err
	}
	var groups []targetGroup
	for _, svc := range svcs.Items {
		base := map[string]string{
			"__meta_kubernetes_namespace":          svc.Namespace,
			"__meta_kubernetes_service_name":       svc.Name,
			"__meta_kubernetes_service_type":       string(svc.Spec.Type),
			"__meta_kubernetes_service_cluster_ip": svc.Spec.ClusterIP,
		}
		for k, v := range svc.Labels {
			base["__meta_kubernetes_service_label_"+sanitize(k)] = v
			base["__meta_kubernetes_service_labelpresent_"+sanitize(k)] = "true"
		}
		for k, v := range svc.Annotations {
			base["__meta_kubernetes_service_annotation_"+sanitize(k)] = v
			base["__meta_kubernetes_service_annotationpresent_"+sanitize(k)] = "true"
		}
		for _, port := range svc.Spec.Ports {
			l := merge(base, map[string]string{
				"__meta_kubernetes_service_port_name":     port.Name,
				"__meta_kubernetes_service_port_number":   strconv.Itoa(int(port.Port)),
				"__meta_kubernetes_service_port_protocol": string(port.Protocol),
			})
			groups = append(groups, targetGroup{Targets: []string{fmt.Sprintf("%s.%s.svc:%d", svc.Name, svc.Namespace, port.Port)}, Labels: l})
		}
	}
	return groups, nil
}

func merge(a, b map[string]string) map[string]string {
	out := make(map[string]string, len(a)+len(b))
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}
