package k8s

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/kube"
	"ramp.dev/ramp/test/k8senv"
)

// testPodRestarts: a canary whose pod restarts (the kubelet's restartCount and lastState, here
// written into the kwok pod's status as a kubelet would) is aborted with why in the status and
// an InstanceExited event, unless stable's pods restart as often per instance-time.
func testPodRestarts(t *testing.T, env *k8senv.Env, cfg *rest.Config, metrics *metricsServer) {
	startController(t, cfg, "exits", metrics, kube.Options{})
	strategy := v1alpha1.Strategy{Canary: &v1alpha1.CanaryStrategy{
		StableService: "chat-api-stable", CanaryService: "chat-api-canary",
		Steps: []v1alpha1.CanaryStep{{SetWeight: ptr(int32(34))}, {Pause: &v1alpha1.RolloutPause{}}},
	}}
	start := func(t *testing.T, ns string) *scenario {
		s := newScenario(t, env, ns, "chat-api-stable", "chat-api-canary")
		s.createRollout(strategy)
		s.waitPhase(v1alpha1.PhaseHealthy, 1, 90*time.Second)
		s.setImage(v2)
		s.waitPhase(v1alpha1.PhasePaused, 1, 60*time.Second)
		return s
	}

	t.Run("canary restarts, stable never", func(t *testing.T) {
		t.Parallel()
		s := start(t, "exits-canary")
		canary := s.pods(v2)
		if len(canary) == 0 {
			t.Fatal("no canary pod")
		}
		s.restartPod(canary[0], 1)

		ro := s.waitPhase(v1alpha1.PhaseDegraded, 1, 60*time.Second)
		want := "revision 2 exited unexpectedly: instance " + canary[0].Name + " container chat-api exited with status 137 (OOMKilled): out of memory"
		if !strings.Contains(ro.Status.Message, want) {
			t.Errorf("status message %q lacks %q", ro.Status.Message, want)
		}
		cmds := &kube.Commands{Client: s.c, Namespace: s.ns}
		eventually(t, 10*time.Second, "the InstanceExited event", func(ctx context.Context) error {
			return hasEvent(ctx, cmds, "InstanceExited", "pod "+canary[0].Name+" of revision 2: container chat-api exited with status 137 (OOMKilled)")
		})
		s.waitReplicas(map[string]int32{v1: 3, v2: 0}, 60*time.Second)
	})

	t.Run("stable restarts as often", func(t *testing.T) {
		t.Parallel()
		s := start(t, "exits-both")
		canary := s.pods(v2)
		if len(canary) == 0 {
			t.Fatal("no canary pod")
		}
		// Stable's pods are older: each gets as many restarts as the canary's one would have
		// over their instance-time, and one more, so that stable's rate stays above the
		// canary's from now on (the ratio of the ages only falls towards 1).
		now := time.Now()
		canaryAge := max(now.Sub(canary[0].CreationTimestamp.Time), 100*time.Millisecond)
		for _, p := range s.pods(v1) {
			s.restartPod(p, int32(math.Ceil(float64(now.Sub(p.CreationTimestamp.Time))/float64(canaryAge)))+1)
		}
		s.restartPod(canary[0], 1)

		cmds := &kube.Commands{Client: s.c, Namespace: s.ns}
		eventually(t, 30*time.Second, "the canary's InstanceExited event", func(ctx context.Context) error {
			return hasEvent(ctx, cmds, "InstanceExited", "pod "+canary[0].Name+" of revision 2: container chat-api exited with status 137 (OOMKilled)")
		})
		// Then the canary goes on: promoted, it becomes stable.
		if out, err := ramp(t, true, "--kubeconfig", env.Kubeconfig, "-n", s.ns, "promote", "chat-api"); err != nil {
			t.Fatalf("kubectl-ramp promote: %v\n%s", err, out)
		}
		s.waitPhase(v1alpha1.PhaseHealthy, 2, 60*time.Second)
	})
}

// pods lists image's pods that are not terminating.
func (s *scenario) pods(image string) []corev1.Pod {
	s.t.Helper()
	var pods corev1.PodList
	if err := s.c.List(context.Background(), &pods, client.InNamespace(s.ns)); err != nil {
		s.t.Fatal(err)
	}
	var out []corev1.Pod
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil && p.Spec.Containers[0].Image == image {
			out = append(out, p)
		}
	}
	return out
}

// restartPod writes into p's status what the kubelet reports after its container was killed
// for lack of memory and started again: restarts in all, the last one OOMKilled.
func (s *scenario) restartPod(p corev1.Pod, restarts int32) {
	s.t.Helper()
	now := time.Now()
	patch, err := json.Marshal(map[string]any{"status": map[string]any{"containerStatuses": []corev1.ContainerStatus{{
		Name: "chat-api", Image: p.Spec.Containers[0].Image, Ready: true, RestartCount: restarts,
		State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.NewTime(now)}},
		LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
			ExitCode: 137, Reason: "OOMKilled", Message: "out of memory",
			StartedAt: metav1.NewTime(now.Add(-time.Minute)), FinishedAt: metav1.NewTime(now),
		}},
	}}}})
	if err != nil {
		s.t.Fatal(err)
	}
	eventually(s.t, 10*time.Second, fmt.Sprintf("restarts in pod %s's status", p.Name), func(ctx context.Context) error {
		return s.c.Status().Patch(ctx, &p, client.RawPatch(types.StrategicMergePatchType, patch))
	})
}
