package kube

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/engine"
)

// Given a canary whose canary Service does not exist, no step completes, promote does not
// hand over, the status says which Service is missing, and the rollout aborts at the progress
// deadline; a failing decision is retried at a steady pace so that the deadline is honoured.
func TestStepsWaitWhileAServiceActionFails(t *testing.T) {
	ro := canaryRollout(v1alpha1.CanaryStep{SetWeight: ptr(int32(25))}, v1alpha1.CanaryStep{SetWeight: ptr(int32(50))})
	ro.Spec.ProgressDeadlineSeconds = ptr(int32(60))
	f := newFixture(t, ro)
	f.settle()
	if ro := f.rollout(); ro.Status.Phase != v1alpha1.PhaseHealthy {
		t.Fatalf("first revision: %s: %s", ro.Status.Phase, ro.Status.Message)
	}
	if err := f.c.Delete(context.Background(), &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "chat-api-canary", Namespace: ns}}); err != nil {
		t.Fatal(err)
	}
	f.setImage("chat-api:v2")
	f.settle()
	res := f.reconcile()
	if res.RequeueAfter <= 0 || res.RequeueAfter > actionRetry {
		t.Errorf("requeue after %s while actions fail; want at most %s", res.RequeueAfter, actionRetry)
	}
	ro = f.rollout()
	if ro.Status.CanaryRevision != 2 || *ro.Status.CurrentStepIndex != 0 || !strings.Contains(ro.Status.Message, `service chat-api-canary: services "chat-api-canary" not found`) {
		t.Fatalf("step %d: %s", *ro.Status.CurrentStepIndex, ro.Status.Message)
	}
	if c := meta.FindStatusCondition(ro.Status.Conditions, v1alpha1.ConditionReconciled); c == nil || c.Reason != reasonActionFailed {
		t.Errorf("Reconciled condition %+v; want ActionFailed", c)
	}
	if c := meta.FindStatusCondition(ro.Status.Conditions, v1alpha1.ConditionReferencesFound); c == nil || c.Status != metav1.ConditionFalse || !strings.Contains(c.Message, "Service chat-api-canary not found in namespace team") {
		t.Errorf("ReferencesFound condition %+v; want False naming Service chat-api-canary", c)
	}
	f.wantEvent("MissingReferences")
	f.command(func(ro *v1alpha1.Rollout) error { return engine.Promote(ro, true) })
	f.now = f.now.Add(30 * time.Second)
	f.settle()
	ro = f.rollout()
	if ro.Status.StableRevision != 1 || ro.Status.Phase == v1alpha1.PhaseHealthy {
		t.Fatalf("promoted while the canary Service is missing: %s stable %d: %s", ro.Status.Phase, ro.Status.StableRevision, ro.Status.Message)
	}
	if slices.ContainsFunc(f.seen, func(e string) bool {
		return strings.Contains(e, " StepCompleted ") || strings.Contains(e, " HandedOver ")
	}) {
		t.Errorf("a step completed or a hand-over happened while the canary Service is missing: %q", f.seen)
	}
	f.now = f.now.Add(30 * time.Second)
	f.settle()
	ro = f.rollout()
	if ro.Status.Phase != v1alpha1.PhaseDegraded || !strings.Contains(ro.Status.Message, "traffic could not be routed for 1m0s") {
		t.Fatalf("after the deadline: %s: %s", ro.Status.Phase, ro.Status.Message)
	}
}

// A setWeight that pod counts cannot carry closely is named in a Warning event when the spec is
// first seen: 5% beside 3 stable pods is 1 pod, 25%.
func TestApproximatedWeightsAreFlagged(t *testing.T) {
	f := newFixture(t, canaryRollout(v1alpha1.CanaryStep{SetWeight: ptr(int32(5))}, v1alpha1.CanaryStep{SetWeight: ptr(int32(50))}))
	f.settle()
	want := "spec.strategy.canary.steps[0].setWeight 5 runs 1 canary pod(s) beside 3 stable: 25%"
	n := 0
	for _, e := range f.seen {
		if strings.Contains(e, " WeightApproximated ") {
			n++
			if !strings.Contains(e, want) || strings.Contains(e, "steps[1]") {
				t.Errorf("event %q; want it to name %q only", e, want)
			}
		}
	}
	if n != 1 {
		t.Errorf("%d WeightApproximated events; want 1 among %q", n, f.seen)
	}
	if c := meta.FindStatusCondition(f.rollout().Status.Conditions, v1alpha1.ConditionReferencesFound); c == nil || c.Status != metav1.ConditionTrue {
		t.Errorf("ReferencesFound condition %+v; want True", c)
	}
}
