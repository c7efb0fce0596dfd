package engine

import (
	"strings"
	"testing"
	"time"

	"ramp.dev/ramp/api/v1alpha1"
)

const vsMissing = `set routes with istio router: set routes on virtualservice carepath-demo/chat-api: virtualservices.networking.istio.io "chat-api" not found`

func (w *world) countEvents(reason string) int {
	n := 0
	for _, e := range w.events {
		if e.Reason == reason {
			n++
		}
	}
	return n
}

// Given an Istio canary whose VirtualService does not exist, no step completes, promote and
// promote --full do not promote, the status says why and when it gives up, and the rollout
// aborts once the failure has lasted the progress deadline.
func TestCanaryWaitsWhileTrafficFailsThenAbortsAtTheDeadline(t *testing.T) {
	w := newWorld(t, canarySpec(
		v1alpha1.CanaryStep{SetWeight: ptr(int32(20))},
		v1alpha1.CanaryStep{Pause: &v1alpha1.RolloutPause{}},
		v1alpha1.CanaryStep{SetWeight: ptr(int32(50))},
	))
	w.traffic = &Traffic{Error: vsMissing, FailingSince: w.now.Add(-time.Hour)}
	w.apply(2)
	w.wantStep(0)
	w.wantPhase(v1alpha1.PhaseProgressing, vsMissing)
	w.wantPhase(v1alpha1.PhaseProgressing, "aborts at 2026-11-27T08:01:00Z (progressDeadlineSeconds 60)")
	if n := w.countEvents("StepCompleted"); n != 0 {
		t.Fatalf("%d StepCompleted events while the router fails", n)
	}
	// The deadline counts from the step's start, not from when the router began failing.
	if !w.out.Requeue.Equal(w.now.Add(time.Minute)) {
		t.Fatalf("requeue %v, want the deadline %v", w.out.Requeue, w.now.Add(time.Minute))
	}

	if err := Promote(w.r, false); err != nil {
		t.Fatal(err)
	}
	w.advance(10 * time.Second)
	w.wantStep(0)
	if err := Promote(w.r, true); err != nil {
		t.Fatal(err)
	}
	w.advance(10 * time.Second)
	w.wantStep(0)
	if w.r.Status.StableRevision != 1 || w.r.Status.CanaryRevision != 2 {
		t.Fatalf("promoted while the router fails: %+v", w.r.Status)
	}
	if n := w.countEvents("StepCompleted") + w.countEvents("RolloutCompleted") + w.countEvents("PromotedFull"); n != 1 { // the first revision's RolloutCompleted
		t.Fatalf("steps or promotion recorded while the router fails: %+v", w.events)
	}

	w.advance(39 * time.Second)
	w.wantPhase(v1alpha1.PhaseProgressing, vsMissing)
	w.advance(time.Second)
	w.wantPhase(v1alpha1.PhaseDegraded, "traffic could not be routed for 1m0s")
	w.wantPhase(v1alpha1.PhaseDegraded, vsMissing)
	w.wantEvent("RolloutAborted")
	w.wantWeights(map[int64]int32{1: 100})
}

// A failure whose start is not known (a read of the routing object that fails) aborts at the
// deadline counted from the step's start.
func TestTrafficFailureOfUnknownStartCountsFromTheStep(t *testing.T) {
	w := newWorld(t, canarySpec(v1alpha1.CanaryStep{SetWeight: ptr(int32(20))}))
	w.traffic = &Traffic{Error: "read routes with istio router: http[0] sends 20% to the canary but http[1] 30%"}
	w.apply(2)
	w.advance(59 * time.Second)
	w.wantPhase(v1alpha1.PhaseProgressing, "aborts at 2026-11-27T08:01:00Z")
	w.advance(time.Second)
	w.wantPhase(v1alpha1.PhaseDegraded, "traffic could not be routed")
}

// When the failure clears, the rollout goes on from where it waited.
func TestCanaryGoesOnOnceTrafficIsRouted(t *testing.T) {
	w := newWorld(t, canarySpec(
		v1alpha1.CanaryStep{SetWeight: ptr(int32(20))},
		v1alpha1.CanaryStep{SetWeight: ptr(int32(50))},
	))
	w.traffic = &Traffic{Error: vsMissing, FailingSince: w.now}
	w.apply(2)
	w.advance(30 * time.Second)
	w.wantStep(0)
	w.traffic = nil
	w.settle()
	w.wantPhase(v1alpha1.PhaseHealthy, "revision 2 is stable")
	if n := w.countEvents("StepCompleted"); n != 2 {
		t.Fatalf("%d StepCompleted events, want 2", n)
	}
}

// A setWeight step completes only once the traffic layer is seen to hold its weight.
func TestSetWeightWaitsForTheLayerToHoldTheWeight(t *testing.T) {
	w := newWorld(t, canarySpec(
		v1alpha1.CanaryStep{SetWeight: ptr(int32(20))},
		v1alpha1.CanaryStep{Pause: &v1alpha1.RolloutPause{}},
	))
	w.traffic = &Traffic{CanaryWeight: ptr(int32(0))}
	w.apply(2)
	w.wantStep(0)
	w.wantWeights(map[int64]int32{1: 80, 2: 20})
	if !w.out.Requeue.Equal(w.now.Add(routeRecheck)) {
		t.Fatalf("requeue %v, want a recheck at %v", w.out.Requeue, w.now.Add(routeRecheck))
	}
	if ow := w.r.Status.ObservedWeight; ow == nil || *ow != 0 {
		t.Fatalf("observed weight %v, want 0", ow)
	}
	w.traffic.CanaryWeight = ptr(int32(20))
	w.settle()
	w.wantStep(1)
	w.wantPhase(v1alpha1.PhasePaused, "paused until `ramp promote`")
	if ow := w.r.Status.ObservedWeight; ow == nil || *ow != 20 {
		t.Fatalf("observed weight %v, want 20", ow)
	}
}

// A blue-green switch waits while the active Service cannot be set, and aborts at the deadline.
func TestBlueGreenDoesNotSwitchWhileTrafficFails(t *testing.T) {
	spec := blueGreenSpec(v1alpha1.BlueGreenStrategy{AutoPromotionEnabled: ptr(false)})
	spec.ProgressDeadlineSeconds = ptr(int32(60))
	w := newWorld(t, spec)
	w.traffic = &Traffic{Error: `service chat-api-active: services "chat-api-active" not found`, FailingSince: w.now}
	w.apply(2)
	if err := Promote(w.r, false); err != nil {
		t.Fatal(err)
	}
	w.advance(30 * time.Second)
	w.wantPhase(v1alpha1.PhaseProgressing, `the switch to revision 2 waits: service chat-api-active`)
	if w.r.Status.ActiveRevision != 1 || w.countEvents("Switched") != 0 {
		t.Fatalf("switched while the active Service fails: %+v", w.r.Status)
	}
	if w.r.Status.Step != "1/2" {
		t.Fatalf("step %q, want 1/2", w.r.Status.Step)
	}
	w.advance(30 * time.Second)
	w.wantPhase(v1alpha1.PhaseDegraded, "traffic could not be routed")
}

// With plain Services the canary's weight is carried by instance counts: the engine asks for
// the count that comes closest, the status shows the real share and names the approximation,
// and an event says when it differs from the step's weight.
func TestWeightByReplicas(t *testing.T) {
	spec := canarySpec(
		v1alpha1.CanaryStep{SetWeight: ptr(int32(5))},
		v1alpha1.CanaryStep{Pause: &v1alpha1.RolloutPause{}},
		v1alpha1.CanaryStep{SetWeight: ptr(int32(50))},
		v1alpha1.CanaryStep{Pause: &v1alpha1.RolloutPause{}},
	)
	spec.Replicas = ptr(int32(3))
	w := newWorld(t, spec)
	w.byReplicas = true
	w.apply(2)
	w.wantStep(1)
	w.wantScale(map[int64]int32{1: 3, 2: 1})
	if ow := w.r.Status.ObservedWeight; ow == nil || *ow != 25 {
		t.Fatalf("observed weight %v, want 25 (1 canary pod beside 3)", ow)
	}
	note := "Service router: weight approximated by replicas, 1 of 4 ready pods = 25% for setWeight 5"
	w.wantPhase(v1alpha1.PhasePaused, note)
	found := false
	for _, e := range w.events {
		if e.Reason == "WeightApproximated" && strings.Contains(e.Message, note) && e.Type == EventWarning {
			found = true
		}
	}
	if !found {
		t.Fatalf("no WeightApproximated warning %q in %+v", note, w.events)
	}
	wantRevs := func(canaryDesired, canaryWeight int32) {
		t.Helper()
		for _, r := range w.r.Status.Revisions {
			if r.Revision == 2 && (r.Desired != canaryDesired || r.Weight != canaryWeight || r.Ready != canaryDesired) {
				t.Fatalf("canary revision status %+v, want desired %d ready %d weight %d", r, canaryDesired, canaryDesired, canaryWeight)
			}
		}
	}
	wantRevs(1, 25)

	// At 50% the canary runs as many pods as stable, and the status says so.
	if err := Promote(w.r, false); err != nil {
		t.Fatal(err)
	}
	w.settle()
	w.wantStep(3)
	w.wantScale(map[int64]int32{1: 3, 2: 3})
	wantRevs(3, 50)
	if strings.Contains(w.r.Status.Message, "approximated") {
		t.Fatalf("message %q names an approximation where the weight is exact", w.r.Status.Message)
	}
	if n := w.countEvents("WeightApproximated"); n != 1 {
		t.Fatalf("%d WeightApproximated events, want 1", n)
	}
}

func TestReplicasForWeight(t *testing.T) {
	for _, tc := range []struct{ w, n, want int32 }{
		{0, 3, 0}, {5, 3, 1}, {20, 4, 1}, {25, 3, 1}, {34, 3, 2}, {49, 3, 3}, {50, 3, 3}, {67, 3, 3}, {100, 3, 3}, {10, 0, 0},
	} {
		if got := ReplicasForWeight(tc.w, tc.n); got != tc.want {
			t.Errorf("ReplicasForWeight(%d, %d) = %d, want %d", tc.w, tc.n, got, tc.want)
		}
	}
}

// status.step is what `ramp get` and the STEP printer column show.
func TestStepText(t *testing.T) {
	w := newWorld(t, canarySpec(
		v1alpha1.CanaryStep{SetWeight: ptr(int32(20))},
		v1alpha1.CanaryStep{Pause: &v1alpha1.RolloutPause{}},
	))
	if w.r.Status.Step != "2/2" {
		t.Fatalf("stable canary step %q, want 2/2", w.r.Status.Step)
	}
	w.apply(2)
	if w.r.Status.Step != "2/2" || *w.r.Status.CurrentStepIndex != 1 {
		t.Fatalf("paused canary step %q, want 2/2", w.r.Status.Step)
	}

	bg := newWorld(t, blueGreenSpec(v1alpha1.BlueGreenStrategy{AutoPromotionEnabled: ptr(false)}))
	if bg.r.Status.Step != "2/2" {
		t.Fatalf("stable blue-green step %q, want 2/2", bg.r.Status.Step)
	}
	bg.apply(2)
	if bg.r.Status.Step != "1/2" {
		t.Fatalf("blue-green preview step %q, want 1/2", bg.r.Status.Step)
	}
}
