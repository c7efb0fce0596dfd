package k8s

import (
	"context"
	"maps"
	"testing"
	"time"

	"k8s.io/client-go/rest"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/kube"
	"ramp.dev/ramp/test/k8senv"
)

// testWatchWindow: after a canary's promotion the previous revision's ReplicaSet keeps its
// pods for scaleDownDelaySeconds; `ramp abort` inside that window points the stable Service
// back at those same pods at once, with no pod created.
func testWatchWindow(t *testing.T, env *k8senv.Env, cfg *rest.Config, metrics *metricsServer) {
	startController(t, cfg, "watch", metrics, kube.Options{})
	s := newScenario(t, env, "watch-window", "chat-api-stable", "chat-api-canary")
	s.createRollout(v1alpha1.Strategy{Canary: &v1alpha1.CanaryStrategy{
		StableService: "chat-api-stable", CanaryService: "chat-api-canary", ScaleDownDelaySeconds: ptr(int32(120)),
		Steps: []v1alpha1.CanaryStep{{SetWeight: ptr(int32(34))}, {Pause: &v1alpha1.RolloutPause{}}},
	}})
	s.waitPhase(v1alpha1.PhaseHealthy, 1, 90*time.Second)
	s.setImage(v2)
	s.waitPhase(v1alpha1.PhasePaused, 1, 60*time.Second)
	cmds := &kube.Commands{Client: s.c, Namespace: s.ns}
	if _, err := cmds.Promote(context.Background(), "chat-api", true); err != nil {
		t.Fatal(err)
	}
	ro := s.waitPhase(v1alpha1.PhaseHealthy, 2, 60*time.Second)
	if w := ro.Status.Watch; w == nil || w.PreviousRevision != 1 {
		t.Fatalf("no watch window after the promotion: %+v (%s)", w, ro.Status.Message)
	}
	s.waitReplicas(map[string]int32{v1: 3, v2: 3}, 60*time.Second)
	s.waitSelects("chat-api-stable", v2)
	before := s.podNames(v1)
	if len(before) != 3 {
		t.Fatalf("revision 1 runs %d pods in the window; want 3", len(before))
	}

	start := time.Now()
	if _, err := cmds.Abort(context.Background(), "chat-api"); err != nil {
		t.Fatalf("abort in the watch window: %v", err)
	}
	s.waitSelects("chat-api-stable", v1)
	t.Logf("stable Service back on revision 1's pods %s after the abort", time.Since(start).Round(time.Millisecond))
	ro = s.waitPhase(v1alpha1.PhaseDegraded, 1, 30*time.Second)
	if ro.Status.AbortedRevision != 2 {
		t.Errorf("aborted revision %d; want 2 (%s)", ro.Status.AbortedRevision, ro.Status.Message)
	}
	if after := s.podNames(v1); !maps.Equal(before, after) {
		t.Errorf("revision 1's pods changed: before %v, after %v", before, after)
	}
	s.waitReplicas(map[string]int32{v1: 3, v2: 0}, 60*time.Second)
}
