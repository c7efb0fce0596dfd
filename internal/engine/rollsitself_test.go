package engine

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/intstr"

	"ramp.dev/ramp/api/v1alpha1"
)

// gateOf decides the gate of a rolling update of 3 instances that holds at 1 new instance,
// with stable revision 1, revision rev asked for, status st and the workload as observed.
func gateOf(t *testing.T, rev int64, st v1alpha1.RolloutStatus, paused bool, wl Workload) (*WorkloadGate, Output) {
	t.Helper()
	spec := rollingSpec(&v1alpha1.RollingUpdatePause{Updated: intstr.FromInt32(1)})
	spec.Replicas, spec.Paused = ptr(int32(3)), paused
	r := &v1alpha1.Rollout{Spec: spec, Status: st}
	r.Name = "chat-api"
	d := &decision{in: Input{Rollout: r, Revision: rev, Capabilities: Capabilities{RollsItself: true}, Workload: &wl},
		spec: &r.Spec, st: st, newRev: rev, replicas: 3, wanted: map[string]bool{}}
	d.out.Scale = map[int64]int32{}
	d.gateWorkload()
	d.out.Status = d.st
	return d.out.Workload, d.out
}

// The gate of a workload that rolls itself (it was kube's mayRoll): whether it may roll, and
// towards which template.
func TestWorkloadGate(t *testing.T) {
	rolling := func() v1alpha1.RolloutStatus {
		return v1alpha1.RolloutStatus{StableRevision: 1, CurrentRevision: 2, CanaryRevision: 2, CurrentStepIndex: ptr(int32(0))}
	}
	aborted := func() v1alpha1.RolloutStatus {
		st := rolling()
		st.Abort, st.AbortedRevision, st.Phase, st.Message = true, 2, v1alpha1.PhaseDegraded, "undone: by user"
		return st
	}
	steady := v1alpha1.RolloutStatus{StableRevision: 1, CurrentRevision: 1, CurrentStepIndex: ptr(int32(0))}
	for _, tc := range []struct {
		name   string
		rev    int64
		st     v1alpha1.RolloutStatus
		paused bool
		wl     Workload
		want   WorkloadGate
	}{
		{name: "before the pause point", rev: 2, st: rolling(), wl: Workload{Revision: 2, Updated: 0}, want: WorkloadGate{2, true}},
		{name: "at the pause point", rev: 2, st: rolling(), wl: Workload{Revision: 2, Updated: 1}, want: WorkloadGate{2, false}},
		{name: "past the pause point", rev: 2, st: func() v1alpha1.RolloutStatus { s := rolling(); s.CurrentStepIndex = ptr(int32(1)); return s }(),
			wl: Workload{Revision: 2, Updated: 2}, want: WorkloadGate{2, true}},
		{name: "held by the engine", rev: 2, st: func() v1alpha1.RolloutStatus {
			s := rolling()
			s.PauseConditions = []v1alpha1.PauseCondition{{Reason: v1alpha1.PauseReasonInconclusive}}
			return s
		}(), wl: Workload{Revision: 2}, want: WorkloadGate{2, false}},
		{name: "paused by the user", rev: 2, st: rolling(), paused: true, wl: Workload{Revision: 2}, want: WorkloadGate{2, false}},
		// A retry after an undo: the workload gets the revision's template back and rolls,
		// whatever it ran of stable's.
		{name: "retry after an undo", rev: 2, st: rolling(), wl: Workload{Revision: 1, Updated: 3, Complete: true}, want: WorkloadGate{2, true}},
		{name: "undoing", rev: 2, st: aborted(), wl: Workload{Revision: 2, Updated: 1}, want: WorkloadGate{1, true}},
		{name: "rolling back", rev: 2, st: aborted(), wl: Workload{Revision: 1, Updated: 1}, want: WorkloadGate{1, true}},
		{name: "rolled back", rev: 2, st: aborted(), wl: Workload{Revision: 1, Updated: 3, Complete: true}, want: WorkloadGate{1, false}},
		// A hold bumps the workload's generation before its controller sees it: the workload
		// stays held (it used to be let go, held again, ... forever).
		{name: "rolled back and just held", rev: 2, st: aborted(), wl: Workload{Revision: 1, Updated: 3, Stale: true, Held: true}, want: WorkloadGate{1, false}},
		{name: "rolling back, not yet seen", rev: 2, st: aborted(), wl: Workload{Revision: 1, Updated: 1, Stale: true}, want: WorkloadGate{1, true}},
		{name: "steady and just held", rev: 1, st: steady, wl: Workload{Revision: 1, Updated: 3, Stale: true, Held: true}, want: WorkloadGate{1, false}},
		{name: "steady", rev: 1, st: steady, wl: Workload{Revision: 1, Updated: 3, Complete: true}, want: WorkloadGate{1, false}},
		{name: "steady, not yet complete", rev: 1, st: steady, wl: Workload{Revision: 1, Updated: 2}, want: WorkloadGate{1, true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, _ := gateOf(t, tc.rev, tc.st, tc.paused, tc.wl)
			if got == nil || *got != tc.want {
				t.Errorf("gate %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestNoGateWithoutAWorkloadThatRollsItself(t *testing.T) {
	w := newWorld(t, rollingSpec(nil))
	w.apply(2)
	if w.out.Workload != nil {
		t.Fatalf("gate %+v without Capabilities.RollsItself", w.out.Workload)
	}
	w = newWorld(t, canarySpec(v1alpha1.CanaryStep{SetWeight: ptr(int32(50))}, v1alpha1.CanaryStep{Pause: &v1alpha1.RolloutPause{}}))
	w.rollsItself = true
	w.apply(2)
	if w.out.Workload != nil {
		t.Fatalf("gate %+v for a canary (ramp runs its ReplicaSets)", w.out.Workload)
	}
	// The first revision: the workload deploys it by itself.
	r := &v1alpha1.Rollout{Spec: rollingSpec(nil)}
	out := Decide(Input{Rollout: r, Revision: 1, Capabilities: Capabilities{RollsItself: true}, Workload: &Workload{Revision: 1}})
	if out.Workload != nil {
		t.Fatalf("gate %+v before a stable revision exists", out.Workload)
	}
}

// The workload's own progress deadline (a Deployment's ProgressDeadlineExceeded) aborts the
// revision under way, once, and only when it judged that revision's template after seeing it;
// the abort undoes the update.
func TestWorkloadDeadlineAbortsAndUndoes(t *testing.T) {
	w := newWorld(t, rollingSpec(&v1alpha1.RollingUpdatePause{Updated: intstr.FromInt32(2)}))
	w.rollsItself = true
	w.workload = &Workload{Name: "deployment chat-api", Revision: 1, Updated: 4, Complete: true}
	w.settle()
	if g := w.out.Workload; g == nil || *g != (WorkloadGate{1, false}) {
		t.Fatalf("steady gate %+v, want revision 1 held", g)
	}

	w.workload = &Workload{Name: "deployment chat-api", Revision: 2}
	w.apply(2)
	w.wantPhase(v1alpha1.PhasePaused, "holds at 2/4 new instances")
	if g := w.out.Workload; g == nil || *g != (WorkloadGate{2, false}) {
		t.Fatalf("gate at the pause point %+v, want revision 2 held", g)
	}

	why := `ReplicaSet "chat-api-x" has timed out progressing.`
	// Not a verdict on revision 2's template, nor one its controller gave before seeing it.
	w.workload.DeadlineExceeded = why
	w.workload.Revision, w.workload.Stale = 1, false
	w.settle()
	w.workload.Revision, w.workload.Stale = 2, true
	w.settle()
	if w.r.Status.Abort {
		t.Fatalf("aborted on a verdict that is not revision 2's: %s", w.r.Status.Message)
	}

	w.workload.Stale = false
	w.settle()
	w.wantPhase(v1alpha1.PhaseDegraded, "undone: deployment chat-api exceeded its progress deadline: "+why+
		"; deployment chat-api is back on the template of revision 1 (`ramp retry chat-api` runs revision 2 again)")
	if g := w.out.Workload; g == nil || *g != (WorkloadGate{1, true}) {
		t.Fatalf("gate after the abort %+v, want stable's template, rolling", g)
	}
	if n := w.countEvents("RolloutAborted"); n != 1 {
		t.Fatalf("%d RolloutAborted events, want 1", n)
	}
	if n := w.countEvents("RolloutUndone"); n != 1 {
		t.Fatalf("%d RolloutUndone events, want 1", n)
	}

	// The workload runs stable's template again: it is held, and the rollout stays undone.
	w.workload = &Workload{Name: "deployment chat-api", Revision: 1, Updated: 4, Complete: true}
	w.settle()
	w.wantPhase(v1alpha1.PhaseDegraded, "undone: deployment chat-api exceeded")
	if g := w.out.Workload; g == nil || *g != (WorkloadGate{1, false}) {
		t.Fatalf("gate once rolled back %+v, want revision 1 held", g)
	}
	if n := w.countEvents("RolloutUndone"); n != 1 {
		t.Fatalf("%d RolloutUndone events after the roll back, want 1", n)
	}

	// Retry gives the workload revision 2's template again.
	if err := Retry(w.r, w.now); err != nil {
		t.Fatal(err)
	}
	w.decide()
	if g := w.out.Workload; g == nil || *g != (WorkloadGate{2, true}) {
		t.Fatalf("gate after retry %+v, want revision 2 rolling", g)
	}
}

// An abort by the user undoes the update the same way, and says so once.
func TestUserAbortUndoesAWorkloadThatRollsItself(t *testing.T) {
	w := newWorld(t, rollingSpec(&v1alpha1.RollingUpdatePause{Updated: intstr.FromInt32(2)}))
	w.rollsItself = true
	w.workload = &Workload{Name: "deployment chat-api", Revision: 2}
	w.apply(2)
	if err := Abort(w.r); err != nil {
		t.Fatal(err)
	}
	w.settle()
	w.wantPhase(v1alpha1.PhaseDegraded, "undone: by user; deployment chat-api is back on the template of revision 1")
	var undone []string
	for _, e := range w.events {
		if e.Reason == "RolloutUndone" {
			undone = append(undone, e.Message)
		}
	}
	if len(undone) != 1 || !strings.Contains(undone[0], "revision 2 undone: deployment chat-api has the template of revision 1 again") || !strings.HasSuffix(undone[0], "(by user)") {
		t.Fatalf("RolloutUndone events %q", undone)
	}
}

// The strategy's fixed addresses (Kubernetes mode's Services) follow the decision: stable and
// canary, or active and preview.
func TestAddresses(t *testing.T) {
	addr := func(w *world) [3]int64 {
		return [3]int64{w.out.Routes.Stable, w.out.Routes.Canary, w.out.Routes.Preview}
	}
	w := newWorld(t, canarySpec(v1alpha1.CanaryStep{SetWeight: ptr(int32(25))}, v1alpha1.CanaryStep{Pause: &v1alpha1.RolloutPause{}}))
	if got := addr(w); got != [3]int64{1, 1, 0} {
		t.Fatalf("canary steady: stable, canary, preview %v", got)
	}
	w.apply(2)
	if got := addr(w); got != [3]int64{1, 2, 0} {
		t.Fatalf("canary under way: %v", got)
	}
	if err := Abort(w.r); err != nil {
		t.Fatal(err)
	}
	w.settle()
	if got := addr(w); got != [3]int64{1, 1, 0} {
		t.Fatalf("canary aborted: %v", got)
	}
	if err := Retry(w.r, w.now); err != nil {
		t.Fatal(err)
	}
	w.settle()
	if err := Promote(w.r, true); err != nil {
		t.Fatal(err)
	}
	w.settle()
	if got := addr(w); got != [3]int64{2, 2, 0} {
		t.Fatalf("canary promoted: %v", got)
	}

	w = newWorld(t, blueGreenSpec(v1alpha1.BlueGreenStrategy{AutoPromotionEnabled: ptr(false)}))
	w.apply(2)
	if got := addr(w); got != [3]int64{1, 0, 2} {
		t.Fatalf("blue-green preview: %v", got)
	}
	if err := Promote(w.r, false); err != nil {
		t.Fatal(err)
	}
	w.settle()
	if got := addr(w); got != [3]int64{2, 0, 0} {
		t.Fatalf("blue-green switched: %v", got)
	}
}
