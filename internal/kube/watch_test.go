package kube

import (
	"testing"
	"time"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/engine"
)

// In the watch window after a promotion the previous revision's ReplicaSet keeps its pods and
// ramp keeps the Deployment; an abort inside the window points the stable Service back at
// them at once, with the same pods. Without one, the window ends, the promoted ReplicaSet is
// handed over and the old one scales down.
func TestWatchWindowKeepsTheOldReplicaSetAndAbortSwitchesBack(t *testing.T) {
	for _, abort := range []bool{true, false} {
		ro := canaryRollout(v1alpha1.CanaryStep{SetWeight: ptr(int32(25))}, v1alpha1.CanaryStep{Pause: &v1alpha1.RolloutPause{}})
		ro.Spec.Strategy.Canary.ScaleDownDelaySeconds = ptr(int32(60))
		f := newFixture(t, ro)
		f.settle()
		f.setImage("chat-api:v2")
		f.settle()
		h2 := TemplateHash(&f.deployment().Spec.Template)
		f.command(func(ro *v1alpha1.Rollout) error { return engine.Promote(ro, true) })
		f.settle()
		got := f.rollout()
		if got.Status.StableRevision != 2 || got.Status.Watch == nil || got.Status.Watch.PreviousRevision != 1 {
			t.Fatalf("after promote: stable %d watch %+v: %s", got.Status.StableRevision, got.Status.Watch, got.Status.Message)
		}
		sets := f.replicaSets()
		old := sets["chat-api-v1hash"]
		if replicasOf(old) != 3 || !ownedBy(old, "ro-uid") {
			t.Fatalf("old replicaset in the window: replicas %d owners %v; want 3, the rollout's", replicasOf(old), old.OwnerReferences)
		}
		if f.selector("chat-api-stable") != h2 {
			t.Fatalf("stable service selects %q in the window; want %s", f.selector("chat-api-stable"), h2)
		}
		if abort {
			f.command(engine.Abort)
			f.reconcile()
			got = f.rollout()
			if got.Status.Phase != v1alpha1.PhaseDegraded || got.Status.StableRevision != 1 {
				t.Fatalf("after abort in the window: phase %s stable %d: %s", got.Status.Phase, got.Status.StableRevision, got.Status.Message)
			}
			if s := f.selector("chat-api-stable"); s != "v1hash" {
				t.Fatalf("stable service selects %q after the switch back; want v1hash", s)
			}
			if rs := f.replicaSets()["chat-api-v1hash"]; rs.UID != old.UID || replicasOf(rs) != 3 {
				t.Fatalf("old replicaset after the switch back: uid %s replicas %d", rs.UID, replicasOf(rs))
			}
			continue
		}
		f.now = f.now.Add(61 * time.Second)
		f.settle()
		sets = f.replicaSets()
		if rs := sets["chat-api-"+h2]; !ownedBy(rs, "d-uid") {
			t.Errorf("after the window: promoted replicaset owners %v; want the deployment", rs.OwnerReferences)
		}
		if rs := sets["chat-api-v1hash"]; rs != nil && replicasOf(rs) != 0 {
			t.Errorf("after the window: old replicaset has %d replicas", replicasOf(rs))
		}
		f.wantEvent("WatchEnded")
		f.wantEvent("HandedOver")
	}
}
