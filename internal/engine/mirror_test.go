package engine

import (
	"testing"

	"ramp.dev/ramp/api/v1alpha1"
)

// wantMirror checks the last decision's mirror: none when rev is 0.
func (w *world) wantMirror(rev int64, percent int32) {
	w.t.Helper()
	m := w.out.Routes.Mirror
	switch {
	case rev == 0 && m != nil:
		w.t.Fatalf("mirror %+v, want none (%s: %s)", *m, w.r.Status.Phase, w.r.Status.Message)
	case rev != 0 && (m == nil || m.Revision != rev || m.Percent != percent):
		w.t.Fatalf("mirror %+v, want %d%% to revision %d (%s: %s)", m, percent, rev, w.r.Status.Phase, w.r.Status.Message)
	}
}

func mirrorSpec(percent int32) v1alpha1.RolloutSpec {
	s := canarySpec(
		v1alpha1.CanaryStep{Pause: &v1alpha1.RolloutPause{}},
		v1alpha1.CanaryStep{SetWeight: ptr(int32(25))},
		v1alpha1.CanaryStep{Pause: &v1alpha1.RolloutPause{}},
	)
	s.Strategy.Canary.Mirror = &v1alpha1.CanaryMirror{Percentage: percent}
	return s
}

// The canary gets its copies from its first step (at weight 0) until it is promoted; stable
// alone gets none.
func TestMirrorWhileTheCanaryRuns(t *testing.T) {
	w := newWorld(t, mirrorSpec(20))
	w.wantMirror(0, 0)
	w.apply(2)
	w.wantStep(0)
	w.wantWeights(map[int64]int32{1: 100})
	w.wantMirror(2, 20)
	if err := Promote(w.r, false); err != nil {
		t.Fatal(err)
	}
	w.settle()
	w.wantStep(2)
	w.wantWeights(map[int64]int32{1: 75, 2: 25})
	w.wantMirror(2, 20)
	if err := Promote(w.r, false); err != nil {
		t.Fatal(err)
	}
	w.settle()
	w.wantPhase(v1alpha1.PhaseHealthy, "revision 2 is stable")
	w.wantMirror(0, 0)
}

// An abort stops the copies with the canary; a retry starts them again.
func TestMirrorStopsAtAbort(t *testing.T) {
	w := newWorld(t, mirrorSpec(5))
	w.apply(2)
	w.wantMirror(2, 5)
	if err := Abort(w.r); err != nil {
		t.Fatal(err)
	}
	w.settle()
	w.wantPhase(v1alpha1.PhaseDegraded, "aborted")
	w.wantMirror(0, 0)
	if err := Retry(w.r, w.now); err != nil {
		t.Fatal(err)
	}
	w.settle()
	w.wantStep(0)
	w.wantMirror(2, 5)
	// The template back at stable ends the canary, and its copies.
	w.apply(1)
	w.wantPhase(v1alpha1.PhaseHealthy, "revision 1 is stable")
	w.wantMirror(0, 0)
}

// Without spec.strategy.canary.mirror nothing is copied.
func TestNoMirrorWithoutTheField(t *testing.T) {
	w := newWorld(t, mirrorSpec(5))
	w.r.Spec.Strategy.Canary.Mirror = nil
	w.apply(2)
	w.wantStep(0)
	w.wantMirror(0, 0)
}
