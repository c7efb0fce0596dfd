package kube

import (
	"context"
	"errors"
	"testing"
	"time"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/engine"
)

// TestPromoteRightAfterATemplateChangeWaitsForTheController: a pipeline that changes the
// Deployment's image and promotes at once must not fail because the controller has not seen
// the change yet; with nothing changed, promote still fails at once.
func TestPromoteRightAfterATemplateChangeWaitsForTheController(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, canaryRollout(v1alpha1.CanaryStep{SetWeight: ptr(int32(20))}, v1alpha1.CanaryStep{Pause: &v1alpha1.RolloutPause{}}))
	f.settle()
	cmds := &Commands{Client: f.c, Namespace: ns}

	start := time.Now()
	if _, err := cmds.Promote(ctx, "chat-api", true); !errors.Is(err, engine.ErrNotInProgress) {
		t.Fatalf("promote with nothing rolling out: %v, want %v", err, engine.ErrNotInProgress)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("promote with nothing rolling out took %v; it should fail at once", took)
	}

	f.setImage("chat-api:v2")
	done := make(chan error, 1)
	go func() {
		_, err := cmds.Promote(ctx, "chat-api", true)
		done <- err
	}()
	// The controller has not seen the change: promote waits for it rather than failing.
	select {
	case err := <-done:
		t.Fatalf("promote before the controller saw the new template returned %v; want it to wait", err)
	case <-time.After(600 * time.Millisecond):
	}
	f.reconcile() // the controller comes round: revision 2 starts as a canary
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("promote once revision 2 rolls out: %v", err)
		}
	case <-time.After(promoteWait):
		t.Fatal("promote did not return once revision 2 rolled out")
	}
	if ro := f.rollout(); !ro.Status.PromoteFull {
		t.Errorf("status after the promote: %+v; want promoteFull", ro.Status)
	}
	f.settle()
	if ro := f.rollout(); ro.Status.StableRevision != 2 || ro.Status.Phase != v1alpha1.PhaseHealthy {
		t.Errorf("after the promote: stable %d phase %s (%s); want 2 Healthy", ro.Status.StableRevision, ro.Status.Phase, ro.Status.Message)
	}
}
