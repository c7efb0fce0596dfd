package k8s

import (
	"context"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/rest"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/kube"
	"ramp.dev/ramp/test/k8senv"
)

// testTrafficTruth checks that the status tells where traffic goes: a canary does not step
// past a router that fails, and weights carried by pod counts are shown as they are.
func testTrafficTruth(t *testing.T, env *k8senv.Env, cfg *rest.Config, metrics *metricsServer) {
	env.ApplyFiles(t, filepath.Join(repoRoot, "test/k8s/crds"), filepath.Join(repoRoot, "internal/kube/testdata/crds"))
	startController(t, cfg, "traffictruth", metrics, kube.Options{})
	t.Run("missing-objects", func(t *testing.T) {
		t.Parallel()
		testMissingRoutingObjects(t, env)
	})
	t.Run("replica-weights", func(t *testing.T) {
		t.Parallel()
		testReplicaWeights(t, env)
	})
}

// testMissingRoutingObjects rolls out an Istio canary whose VirtualService and canary Service
// do not exist: the Rollout is flagged when applied, no step completes, promote --full does not
// promote or hand over, the status says why, and the rollout aborts at its (short) progress
// deadline. Once the missing objects exist, a retry goes through every step.
func testMissingRoutingObjects(t *testing.T, env *k8senv.Env) {
	const ns = "trafficfail"
	ctx := context.Background()
	s := newScenario(t, env, ns, "chat-api-stable")
	cmds := &kube.Commands{Client: s.c, Namespace: ns}
	kubeArgs := []string{"--kubeconfig", env.Kubeconfig, "-n", ns}

	// Given a canary through an Istio VirtualService that, like the canary Service, does not
	// exist yet, and a progress deadline of 20 s.
	deadline := int32(20)
	ro := &v1alpha1.Rollout{
		ObjectMeta: metav1.ObjectMeta{Name: "chat-api", Namespace: ns},
		Spec: v1alpha1.RolloutSpec{
			WorkloadRef: &v1alpha1.WorkloadRef{Name: "chat-api"}, ProgressDeadlineSeconds: &deadline,
			Strategy: v1alpha1.Strategy{Canary: &v1alpha1.CanaryStrategy{
				StableService: "chat-api-stable", CanaryService: "chat-api-canary",
				TrafficRouting: &v1alpha1.TrafficRouting{Istio: &v1alpha1.IstioTrafficRouting{VirtualService: v1alpha1.IstioVirtualService{Name: "chat-api", Routes: []string{"primary"}}}},
				Steps:          []v1alpha1.CanaryStep{{SetWeight: ptr(int32(20))}, {Pause: &v1alpha1.RolloutPause{}}, {SetWeight: ptr(int32(50))}},
			}},
		},
	}
	noWatch(&ro.Spec.Strategy)
	if err := s.c.Create(ctx, ro); err != nil {
		t.Fatal(err)
	}
	s.waitPhase(v1alpha1.PhaseHealthy, 1, 90*time.Second)

	// Then the applied Rollout is flagged, naming what is missing.
	eventually(t, 30*time.Second, "ReferencesFound=False naming the missing objects", func(ctx context.Context) error {
		ro, err := s.rollout(ctx)
		if err != nil {
			return err
		}
		c := meta.FindStatusCondition(ro.Status.Conditions, v1alpha1.ConditionReferencesFound)
		if c == nil || c.Status != metav1.ConditionFalse || !strings.Contains(c.Message, "Service chat-api-canary") || !strings.Contains(c.Message, "istio router's VirtualService chat-api") {
			return fmt.Errorf("ReferencesFound condition %+v", c)
		}
		return hasEvent(ctx, cmds, "MissingReferences", "Service chat-api-canary")
	})

	// When the image changes, then the canary waits at its first step and says why.
	s.setImage(v2)
	eventually(t, 60*time.Second, "the canary waits on the missing objects", func(ctx context.Context) error {
		ro, err := s.rollout(ctx)
		if err != nil {
			return err
		}
		msg := ro.Status.Message
		if ro.Status.CanaryRevision != 2 || ro.Status.Phase != v1alpha1.PhaseProgressing || !strings.Contains(msg, "step 1/3 (setWeight 20) waits") ||
			!strings.Contains(msg, "aborts at") {
			return fmt.Errorf("phase %s canary %d: %s", ro.Status.Phase, ro.Status.CanaryRevision, msg)
		}
		if !strings.Contains(msg, `virtualservices.networking.istio.io "chat-api" not found`) && !strings.Contains(msg, `services "chat-api-canary" not found`) {
			return fmt.Errorf("message does not name the missing object: %s", msg)
		}
		return nil
	})
	started := time.Now()
	// When the user promotes past every step, then nothing is promoted or handed over.
	if out, err := ramp(t, true, append(kubeArgs, "promote", "--full", "chat-api")...); err != nil {
		t.Fatalf("kubectl-ramp promote --full: %v\n%s", err, out)
	}

	// Then it aborts at the deadline, never having completed a step.
	aborted := s.waitPhase(v1alpha1.PhaseDegraded, 1, 60*time.Second)
	if took := time.Since(started); took > 40*time.Second {
		t.Errorf("aborted %s after the promote; want about the 20 s deadline", took.Round(time.Second))
	}
	if !strings.Contains(aborted.Status.Message, "traffic could not be routed for 20s") {
		t.Errorf("abort message %q does not say the traffic could not be routed", aborted.Status.Message)
	}
	for _, reason := range []string{"StepCompleted", "HandedOver", "PromotedFull"} {
		if got, err := eventsOf(ctx, cmds, reason); err != nil || len(got) != 0 {
			t.Errorf("%s events while the VirtualService and canary Service are missing: %q (%v)", reason, got, err)
		}
	}
	if got, err := eventsOf(ctx, cmds, "RolloutCompleted"); err != nil || len(got) != 1 {
		t.Errorf("RolloutCompleted events %q (%v); want only revision 1's", got, err)
	}
	s.waitReplicas(map[string]int32{v1: 3}, 60*time.Second)

	// When the missing objects are created and the rollout retried, then it goes on: step 1
	// completes once the VirtualService holds 20%, and a promote finishes it.
	if err := s.c.Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "chat-api-canary", Namespace: ns},
		Spec:       corev1.ServiceSpec{Selector: map[string]string{"app": "chat-api"}, Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}}},
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.c.Create(ctx, object(virtualServiceGVK, ns, "chat-api", map[string]any{"hosts": []any{"chat-api"}, "http": []any{map[string]any{
		"name":  "primary",
		"route": []any{map[string]any{"destination": map[string]any{"host": "chat-api-stable"}, "weight": int64(100)}},
	}}})); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "ReferencesFound=True", func(ctx context.Context) error {
		ro, err := s.rollout(ctx)
		if err != nil {
			return err
		}
		if c := meta.FindStatusCondition(ro.Status.Conditions, v1alpha1.ConditionReferencesFound); c == nil || c.Status != metav1.ConditionTrue {
			return fmt.Errorf("ReferencesFound condition %+v", c)
		}
		return nil
	})
	if out, err := ramp(t, true, append(kubeArgs, "retry", "chat-api")...); err != nil {
		t.Fatalf("kubectl-ramp retry: %v\n%s", err, out)
	}
	eventually(t, 60*time.Second, "paused at step 2/3 with the VirtualService at 20%", func(ctx context.Context) error {
		ro, err := s.rollout(ctx)
		if err != nil {
			return err
		}
		if ro.Status.Phase != v1alpha1.PhasePaused || ro.Status.Step != "2/3" || ro.Status.ObservedWeight == nil || *ro.Status.ObservedWeight != 20 {
			return fmt.Errorf("phase %s step %q observed weight %v: %s", ro.Status.Phase, ro.Status.Step, ptrString(ro.Status.ObservedWeight), ro.Status.Message)
		}
		return hasEvent(ctx, cmds, "StepCompleted", "step 1/3 completed")
	})
	if out, err := ramp(t, true, append(kubeArgs, "promote", "chat-api")...); err != nil {
		t.Fatalf("kubectl-ramp promote: %v\n%s", err, out)
	}
	s.waitPhase(v1alpha1.PhaseHealthy, 2, 90*time.Second)
	s.waitReplicas(map[string]int32{v1: 0, v2: 3}, 60*time.Second)
}

// testReplicaWeights rolls out a canary on the team's plain Service (no trafficRouting) with
// setWeight 5 and 50 on 3 replicas: the applied spec is flagged (5% cannot be carried by pod
// counts), at 5% one canary pod runs beside three and the status says 25% and why, and at 50%
// the desired counts are the real ones (3 and 3).
func testReplicaWeights(t *testing.T, env *k8senv.Env) {
	const ns = "replicaweights"
	s := newScenario(t, env, ns)
	cmds := &kube.Commands{Client: s.c, Namespace: ns}
	kubeArgs := []string{"--kubeconfig", env.Kubeconfig, "-n", ns}
	s.createRollout(v1alpha1.Strategy{Canary: &v1alpha1.CanaryStrategy{Steps: []v1alpha1.CanaryStep{
		{SetWeight: ptr(int32(5))}, {Pause: &v1alpha1.RolloutPause{}}, {SetWeight: ptr(int32(50))}, {Pause: &v1alpha1.RolloutPause{}},
	}}})
	s.waitPhase(v1alpha1.PhaseHealthy, 1, 90*time.Second)
	eventually(t, 30*time.Second, "the applied spec's approximation is flagged", func(ctx context.Context) error {
		return hasEvent(ctx, cmds, "WeightApproximated", "spec.strategy.canary.steps[0].setWeight 5 runs 1 canary pod(s) beside 3 stable: 25%")
	})

	// wantRevisions checks the status's revisions against the ReplicaSets' pods.
	wantRevisions := func(ro *v1alpha1.Rollout, stable, canary int32) error {
		for _, r := range ro.Status.Revisions {
			want := map[int64]int32{1: stable, 2: canary}[r.Revision]
			if r.Desired != want || r.Ready != want {
				return fmt.Errorf("revision %d desired %d ready %d; want %d", r.Revision, r.Desired, r.Ready, want)
			}
		}
		got, _, err := s.replicaSets(context.Background())
		if err != nil {
			return err
		}
		if got[v1] != stable || got[v2] != canary {
			return fmt.Errorf("replicas by image %v; want %s: %d, %s: %d", got, v1, stable, v2, canary)
		}
		return nil
	}

	s.setImage(v2)
	note := "Service router: weight approximated by replicas, 1 of 4 ready pods = 25% for setWeight 5"
	eventually(t, 60*time.Second, "paused at 5% with the real 25% named", func(ctx context.Context) error {
		ro, err := s.rollout(ctx)
		if err != nil {
			return err
		}
		if ro.Status.Phase != v1alpha1.PhasePaused || ro.Status.Step != "2/4" || ro.Status.CanaryWeight != 5 ||
			ro.Status.ObservedWeight == nil || *ro.Status.ObservedWeight != 25 || !strings.Contains(ro.Status.Message, note) {
			return fmt.Errorf("phase %s step %q weight %d observed %s: %s", ro.Status.Phase, ro.Status.Step, ro.Status.CanaryWeight, ptrString(ro.Status.ObservedWeight), ro.Status.Message)
		}
		if err := wantRevisions(ro, 3, 1); err != nil {
			return err
		}
		return hasEvent(ctx, cmds, "WeightApproximated", "step 1/4: "+note)
	})
	if out, err := ramp(t, true, append(kubeArgs, "get", "chat-api")...); err != nil || !strings.Contains(out, "25% (set 5%)") {
		t.Errorf("kubectl ramp get shows no real weight: %v\n%s", err, out)
	}
	// kubectl shows the step as kubectl ramp does, and the real weight; its explain text of
	// progressDeadlineSeconds says what Kubernetes mode does; get -A lists every namespace.
	kctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := env.Kubectl(kctx, "-n", ns, "get", "rollouts")
	if lines := strings.Split(strings.TrimSpace(string(out)), "\n"); err != nil || len(lines) != 2 ||
		!regexp.MustCompile(`^NAME\s+PHASE\s+STEP\s+WEIGHT\s+REAL-WEIGHT\s`).MatchString(lines[0]) ||
		!regexp.MustCompile(`^chat-api\s+Paused\s+2/4\s+5\s+25\s`).MatchString(lines[1]) {
		t.Errorf("kubectl get rollouts: %v\n%s", err, out)
	}
	if out, err := env.Kubectl(kctx, "explain", "rollouts.spec.progressDeadlineSeconds"); err != nil || !strings.Contains(strings.Join(strings.Fields(string(out)), " "), "in Kubernetes mode, the Deployment's spec.progressDeadlineSeconds") {
		t.Errorf("kubectl explain rollouts.spec.progressDeadlineSeconds: %v\n%s", err, out)
	}
	if out, err := ramp(t, true, "--kubeconfig", env.Kubeconfig, "get", "-A"); err != nil ||
		!regexp.MustCompile(`(?m)^NAMESPACE\s+NAME\s`).MatchString(out) || !regexp.MustCompile(`(?m)^replicaweights\s+chat-api\s+canary\s+Paused\s+2/4\s+25% \(set 5%\)`).MatchString(out) {
		t.Errorf("kubectl ramp get -A: %v\n%s", err, out)
	}

	if out, err := ramp(t, true, append(kubeArgs, "promote", "chat-api")...); err != nil {
		t.Fatalf("kubectl-ramp promote: %v\n%s", err, out)
	}
	eventually(t, 60*time.Second, "paused at 50% with 3 canary pods beside 3, as the status says", func(ctx context.Context) error {
		ro, err := s.rollout(ctx)
		if err != nil {
			return err
		}
		if ro.Status.Phase != v1alpha1.PhasePaused || ro.Status.Step != "4/4" || ro.Status.ObservedWeight == nil || *ro.Status.ObservedWeight != 50 ||
			strings.Contains(ro.Status.Message, "approximated") {
			return fmt.Errorf("phase %s step %q observed %s: %s", ro.Status.Phase, ro.Status.Step, ptrString(ro.Status.ObservedWeight), ro.Status.Message)
		}
		return wantRevisions(ro, 3, 3)
	})
	if out, err := ramp(t, true, append(kubeArgs, "promote", "chat-api")...); err != nil {
		t.Fatalf("kubectl-ramp promote: %v\n%s", err, out)
	}
	s.waitPhase(v1alpha1.PhaseHealthy, 2, 90*time.Second)
	s.waitReplicas(map[string]int32{v1: 0, v2: 3}, 60*time.Second)
}
