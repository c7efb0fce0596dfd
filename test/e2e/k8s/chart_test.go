package k8s

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/kube"
	"ramp.dev/ramp/test/k8senv"
)

// TestHelmChart installs charts/ramp with the pinned helm (hack/helm.sh) onto a fresh control
// plane, then runs the controller out of cluster under the chart's ServiceAccount (so with
// exactly the chart's ClusterRole) and rolls a canary out under it to Healthy.
func TestHelmChart(t *testing.T) {
	out, err := exec.Command(filepath.Join(repoRoot, "hack/helm.sh")).Output()
	if err != nil {
		t.Fatalf("hack/helm.sh: %v", err)
	}
	helm := strings.TrimSpace(string(out))
	env := k8senv.Start(t)

	// When the chart is installed (CRDs, RBAC, Deployment, PDB, Service) with helm install
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	install := exec.CommandContext(ctx, helm, "install", "ramp", filepath.Join(repoRoot, "charts/ramp"),
		"--kubeconfig", env.Kubeconfig, "--namespace", "ramp-system", "--create-namespace",
		"--set", "image.repository=example.com/ramp,controller.logLevel=debug")
	if b, err := install.CombinedOutput(); err != nil {
		t.Fatalf("helm install: %v\n%s", err, b)
	}
	c := rampClient(t, env)
	eventually(t, time.Minute, "the chart's CRDs established", func(ctx context.Context) error {
		var l v1alpha1.RolloutList
		return c.List(ctx, &l)
	})
	// Then its Deployment and PodDisruptionBudget are there as the chart renders them
	var dep appsv1.Deployment
	if err := c.Get(ctx, client.ObjectKey{Namespace: "ramp-system", Name: "ramp"}, &dep); err != nil {
		t.Fatalf("the chart's Deployment: %v", err)
	}
	if *dep.Spec.Replicas != 2 || dep.Spec.Template.Spec.ServiceAccountName != "ramp" ||
		!strings.Contains(strings.Join(dep.Spec.Template.Spec.Containers[0].Args, " "), "--log-level=debug") {
		t.Errorf("Deployment replicas %d, service account %q, args %v", *dep.Spec.Replicas, dep.Spec.Template.Spec.ServiceAccountName, dep.Spec.Template.Spec.Containers[0].Args)
	}
	var pdb policyv1.PodDisruptionBudget
	if err := c.Get(ctx, client.ObjectKey{Namespace: "ramp-system", Name: "ramp"}, &pdb); err != nil {
		t.Fatalf("the chart's PodDisruptionBudget: %v", err)
	}

	// And a controller run under the chart's ServiceAccount (its pods on kwok's nodes run no
	// process) drives a canary to Healthy
	saCfg, _ := env.ServiceAccountConfig(t, "ramp-system", "ramp")
	sac, err := client.New(saCfg, client.Options{Scheme: kube.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, "the chart's ServiceAccount may list Rollouts", func(ctx context.Context) error {
		var l v1alpha1.RolloutList
		return sac.List(ctx, &l)
	})
	metrics := newMetricsServer(t)
	startController(t, saCfg, "chart", metrics, kube.Options{})
	s := newScenario(t, env, "chart-canary", "chat-api-stable", "chat-api-canary")
	s.createRollout(v1alpha1.Strategy{Canary: &v1alpha1.CanaryStrategy{
		StableService: "chat-api-stable", CanaryService: "chat-api-canary",
		Steps: []v1alpha1.CanaryStep{{SetWeight: ptr(int32(50))}},
	}})
	s.waitPhase(v1alpha1.PhaseHealthy, 1, 90*time.Second)
	s.setImage(v2)
	s.waitPhase(v1alpha1.PhaseHealthy, 2, 120*time.Second)
	s.waitReplicas(map[string]int32{v1: 0, v2: 3}, 60*time.Second)
	s.waitSelects("chat-api-stable", v2)
}
