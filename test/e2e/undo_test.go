package e2e

import (
	"strings"
	"testing"
	"time"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/test/testkit"
)

func TestUndoAfterAnAbortSaysItIsBackOnStable(t *testing.T) {
	// Given revision 2 aborted mid-canary over stable revision 1
	s := spec{Listen: testkit.FreeAddr(t), Strategy: pausedCanary}
	r := startRamp(t, model(s, "v1"))
	r.apply(model(s, "v2"))
	r.waitPhase(v1alpha1.PhasePaused, 30*time.Second)
	r.must("abort", "chat-api")
	r.waitPhase(v1alpha1.PhaseDegraded, 10*time.Second)

	// When the team undoes, then ramp says the rollout is back on stable revision 1, with no
	// new revision, and it is Healthy on it
	out := r.must("undo", "chat-api")
	if strings.Contains(out, "new revision") || !strings.Contains(out, "rollout/chat-api back on stable revision 1") {
		t.Fatalf("undo after the abort said: %s", out)
	}
	ro := r.waitPhase(v1alpha1.PhaseHealthy, 30*time.Second)
	if ro.Status.StableRevision != 1 || ro.Status.CurrentRevision != 1 {
		t.Fatalf("after the undo: stable %d current %d", ro.Status.StableRevision, ro.Status.CurrentRevision)
	}
	if hist := r.must("history", "chat-api"); strings.Count(strings.TrimSpace(hist), "\n") != 2 {
		t.Errorf("history should list revisions 1 and 2 only:\n%s", hist)
	}
	if got := models(t, s.Listen, 10, nil); got["v1"] != 10 {
		t.Errorf("after the undo: %v, want all v1", got)
	}
}
