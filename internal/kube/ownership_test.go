package kube

import (
	"context"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"

	"ramp.dev/ramp/api/v1alpha1"
)

func (f *fixture) reconcileNamed(name string) {
	f.t.Helper()
	if _, err := f.r.Reconcile(context.Background(), ctrl.Request{NamespacedName: types.NamespacedName{Namespace: ns, Name: name}}); err != nil {
		f.t.Fatalf("reconcile %s: %s", name, err)
	}
	f.drainEvents()
}

// A second Rollout of a Deployment that one already manages is refused: Valid and Reconciled
// False, Degraded rather than Healthy, and an event naming the Rollout that manages it.
func TestSecondRolloutOfADeploymentIsRefused(t *testing.T) {
	f := newFixture(t, canaryRollout(v1alpha1.CanaryStep{SetWeight: ptr(int32(25))}))
	f.settle()
	second := canaryRollout(v1alpha1.CanaryStep{SetWeight: ptr(int32(50))})
	second.Name, second.UID = "chat-api-b", "ro-b-uid"
	if err := f.c.Create(context.Background(), second); err != nil {
		t.Fatal(err)
	}
	f.reconcileNamed("chat-api-b")
	ro := &v1alpha1.Rollout{}
	if err := f.c.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: "chat-api-b"}, ro); err != nil {
		t.Fatal(err)
	}
	if ro.Status.Phase == v1alpha1.PhaseHealthy || ro.Status.Phase != v1alpha1.PhaseDegraded {
		t.Errorf("phase %q; want Degraded", ro.Status.Phase)
	}
	for _, typ := range []string{v1alpha1.ConditionValid, v1alpha1.ConditionReconciled, v1alpha1.ConditionHealthy} {
		if c := meta.FindStatusCondition(ro.Status.Conditions, typ); c == nil || c.Status != metav1.ConditionFalse {
			t.Errorf("condition %s = %+v; want False", typ, c)
		}
	}
	f.wantEvent("DeploymentInUse")
	if !strings.Contains(ro.Status.Message, "managed by rollout chat-api") {
		t.Errorf("message %q does not name the rollout that manages the deployment", ro.Status.Message)
	}
	if d := f.deployment(); d.Annotations[AnnotationManagedBy] != "chat-api" {
		t.Errorf("deployment managed-by %q; want chat-api", d.Annotations[AnnotationManagedBy])
	}
	// The first one goes on unharmed.
	f.settle()
	if ro := f.rollout(); ro.Status.Phase != v1alpha1.PhaseHealthy {
		t.Errorf("first rollout: phase %s: %s", ro.Status.Phase, ro.Status.Message)
	}
}

// Deleting a Rollout mid-canary does not promote the canary: the Deployment gets the stable
// template back, the canary's ReplicaSet goes, and the Deployment is resumed.
func TestDeletingARolloutMidCanaryKeepsStable(t *testing.T) {
	f := newFixture(t, canaryRollout(v1alpha1.CanaryStep{SetWeight: ptr(int32(25))}, v1alpha1.CanaryStep{Pause: &v1alpha1.RolloutPause{}}))
	f.settle()
	f.setImage("chat-api:v2")
	f.settle()
	if ro := f.rollout(); ro.Status.Phase != v1alpha1.PhasePaused || ro.Status.CanaryRevision != 2 {
		t.Fatalf("before: phase %s canary %d", ro.Status.Phase, ro.Status.CanaryRevision)
	}
	if err := f.c.Delete(context.Background(), f.rollout()); err != nil {
		t.Fatal(err)
	}
	f.reconcile()
	d := f.deployment()
	if img := d.Spec.Template.Spec.Containers[0].Image; img != "chat-api:v1" {
		t.Errorf("deployment image %s after deleting the rollout mid-canary; want the stable chat-api:v1", img)
	}
	if d.Spec.Paused || d.Annotations[AnnotationPausedBy] != "" || d.Annotations[AnnotationManagedBy] != "" {
		t.Errorf("deployment paused=%v annotations %v; want resumed, ramp's annotations gone", d.Spec.Paused, d.Annotations)
	}
	f.wantEvent("RolloutDeleted")
	sets := f.replicaSets()
	for name, rs := range sets {
		if name != "chat-api-v1hash" {
			t.Errorf("replicaset %s (%d replicas) left after deleting the rollout", name, replicasOf(rs))
		}
	}
	if rs := sets["chat-api-v1hash"]; rs == nil || replicasOf(rs) != 3 {
		t.Errorf("stable replicaset %v; want 3 replicas", rs)
	}
}

// A Deployment deleted mid-canary: the rollout says so and is aborted, not Paused at the
// step's weight; made again with its stable revision gone, the rollout starts over from it.
func TestDeploymentDeletedAndMadeAgainMidCanary(t *testing.T) {
	f := newFixture(t, canaryRollout(v1alpha1.CanaryStep{SetWeight: ptr(int32(25))}, v1alpha1.CanaryStep{Pause: &v1alpha1.RolloutPause{}}))
	f.settle()
	f.setImage("chat-api:v2")
	f.settle()
	ctx := context.Background()
	d := f.deployment()
	if err := f.c.Delete(ctx, d); err != nil {
		t.Fatal(err)
	}
	// The garbage collector takes the Deployment's ReplicaSet; ramp's stays.
	if err := f.c.Delete(ctx, f.replicaSets()["chat-api-v1hash"]); err != nil {
		t.Fatal(err)
	}
	f.kubelet()
	f.reconcile()
	ro := f.rollout()
	if ro.Status.Phase != v1alpha1.PhaseDegraded || !ro.Status.Abort || !strings.Contains(ro.Status.Message, "deployment chat-api not found") || !strings.Contains(ro.Status.Message, "deleted") {
		t.Errorf("after the deployment was deleted: phase %s abort %v: %q", ro.Status.Phase, ro.Status.Abort, ro.Status.Message)
	}
	if ro.Status.CanaryWeight != 0 {
		t.Errorf("canary weight %d; want 0", ro.Status.CanaryWeight)
	}
	for _, rs := range ro.Status.Revisions {
		if rs.Ready != 0 && rs.Revision == ro.Status.StableRevision {
			t.Errorf("status says stable revision has %d ready pods; it has none", rs.Ready)
		}
	}
	if c := meta.FindStatusCondition(ro.Status.Conditions, v1alpha1.ConditionReconciled); c == nil || c.Reason != "WorkloadNotFound" {
		t.Errorf("Reconciled %+v; want WorkloadNotFound", c)
	}
	if n := len(f.replicaSets()); n != 0 {
		t.Errorf("%d replicasets left; want the canary's gone", n)
	}

	// When the team makes it again with the new image, then the Deployment deploys it by
	// itself and ramp starts over with it as stable.
	d2 := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "chat-api", Namespace: ns, UID: "d2-uid"}, Spec: d.Spec}
	d2.Spec.Paused = false
	if err := f.c.Create(ctx, d2); err != nil {
		t.Fatal(err)
	}
	d2 = f.deployment()
	t2 := d2.Spec.Template.DeepCopy()
	t2.Labels["pod-template-hash"] = "v2own"
	rs := &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: "chat-api-v2own", Namespace: ns, Labels: t2.Labels,
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(d2, appsv1.SchemeGroupVersion.WithKind("Deployment"))}},
		Spec: appsv1.ReplicaSetSpec{Replicas: ptr(int32(3)), Selector: &metav1.LabelSelector{MatchLabels: t2.Labels}, Template: *t2},
	}
	if err := f.c.Create(ctx, rs); err != nil {
		t.Fatal(err)
	}
	f.settle()
	ro = f.rollout()
	if ro.Status.Phase != v1alpha1.PhaseHealthy || ro.Status.StableRevision != 2 || ro.Status.Abort {
		t.Errorf("after the deployment came back: phase %s stable %d abort %v: %s", ro.Status.Phase, ro.Status.StableRevision, ro.Status.Abort, ro.Status.Message)
	}
	f.wantEvent("DeploymentRecreated")
	for name, rs := range f.replicaSets() {
		if name != "chat-api-v2own" && replicasOf(rs) > 0 {
			t.Errorf("replicaset %s runs %d pods beside the Deployment's", name, replicasOf(rs))
		}
	}
}
