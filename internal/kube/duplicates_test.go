package kube

import (
	"context"
	"fmt"
	"sort"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/engine"
)

// rollingController is the Deployment controller acting on an unpaused Deployment with a new
// template, as it does in the moment before ramp pauses it again (or on a view of the
// Deployment from before the pause): it makes its own ReplicaSet of the template, with
// maxSurge (1 of 3) replicas.
func (f *fixture) rollingController() {
	f.t.Helper()
	d := f.deployment()
	for _, rs := range f.replicaSets() {
		if ownedBy(rs, d.UID) && TemplateHash(&rs.Spec.Template) == TemplateHash(&d.Spec.Template) {
			return
		}
	}
	t := d.Spec.Template.DeepCopy()
	t.Labels["pod-template-hash"] = "deploy2"
	rs := &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{
			Name: "chat-api-deploy2", Namespace: ns, Labels: t.Labels,
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(d, appsv1.SchemeGroupVersion.WithKind("Deployment"))},
		},
		Spec: appsv1.ReplicaSetSpec{Replicas: ptr(int32(1)), Selector: &metav1.LabelSelector{MatchLabels: t.Labels}, Template: *t},
	}
	if err := f.c.Create(context.Background(), rs); err != nil {
		f.t.Fatal(err)
	}
}

// pausedController is the Deployment controller's sync of a paused Deployment
// (k8s.io/kubernetes/pkg/controller/deployment, sync and scale): it adopts orphans; its new
// ReplicaSet is the oldest one with the Deployment's template; when only one of its
// ReplicaSets runs pods it scales that one to the Deployment's replicas, and when none does,
// the new one (or else the newest); when the new one is saturated the others go to 0.
func (f *fixture) pausedController() {
	f.t.Helper()
	ctx := context.Background()
	d := f.deployment()
	var own []*appsv1.ReplicaSet
	for _, rs := range f.replicaSets() {
		if metav1.GetControllerOf(rs) == nil && rs.Labels["app"] == "chat-api" {
			rs.OwnerReferences = []metav1.OwnerReference{*metav1.NewControllerRef(d, appsv1.SchemeGroupVersion.WithKind("Deployment"))}
			if err := f.c.Update(ctx, rs); err != nil {
				f.t.Fatal(err)
			}
		}
		if ownedBy(rs, d.UID) {
			own = append(own, rs)
		}
	}
	// Oldest first: the fake client gives no creation times, so creation order is the
	// resource version's.
	sort.Slice(own, func(i, j int) bool { return rv(own[i]) < rv(own[j]) })
	var newRS *appsv1.ReplicaSet
	var active []*appsv1.ReplicaSet
	for _, rs := range own {
		if newRS == nil && TemplateHash(&rs.Spec.Template) == TemplateHash(&d.Spec.Template) {
			newRS = rs
		}
		if replicasOf(rs) > 0 {
			active = append(active, rs)
		}
	}
	n := *d.Spec.Replicas
	set := func(rs *appsv1.ReplicaSet, to int32) {
		if replicasOf(rs) == to {
			return
		}
		rs.Spec.Replicas = &to
		if err := f.c.Update(ctx, rs); err != nil {
			f.t.Fatal(err)
		}
	}
	switch {
	case len(active) == 1:
		set(active[0], n)
	case len(active) == 0 && newRS != nil:
		set(newRS, n)
	case len(active) == 0 && len(own) > 0:
		set(own[len(own)-1], n)
	case newRS != nil && replicasOf(newRS) == n && newRS.Status.AvailableReplicas == n && newRS.Annotations[annDesiredReplicas] == fmt.Sprint(n):
		for _, rs := range active {
			if rs != newRS {
				set(rs, 0)
			}
		}
	}
}

func rv(o metav1.Object) int {
	var n int
	fmt.Sscan(o.GetResourceVersion(), &n)
	return n
}

// settlePaused runs the kubelet, the paused Deployment's controller and the reconciler until
// nothing changes.
func (f *fixture) settlePaused() {
	f.t.Helper()
	for range 8 {
		f.kubelet()
		f.pausedController()
		f.kubelet()
		f.reconcile()
	}
}

// podsAndSets counts the pods per image (of their ReplicaSet's template), and the ReplicaSets per pod template.
func (f *fixture) podsAndSets() (pods map[string]int, sets map[string][]string) {
	f.t.Helper()
	var l corev1.PodList
	if err := f.c.List(context.Background(), &l, client.InNamespace(ns)); err != nil {
		f.t.Fatal(err)
	}
	all := f.replicaSets()
	pods = map[string]int{}
	for _, p := range l.Items {
		if ref := metav1.GetControllerOf(&p); ref != nil && all[ref.Name] != nil {
			pods[all[ref.Name].Spec.Template.Spec.Containers[0].Image]++
		}
	}
	sets = map[string][]string{}
	for name, rs := range all {
		h := TemplateHash(&rs.Spec.Template)
		sets[h] = append(sets[h], name)
	}
	return pods, sets
}

// TestNoDuplicateReplicaSetAfterUnpauseAndPromote: a Terraform-style patch (spec.paused false
// and a new image in one) lets the Deployment controller start its own ReplicaSet of the new
// template beside ramp's canary; a promote --full soon after must still end with one
// ReplicaSet per template, 3 pods, and the canary's ReplicaSet handed over.
func TestNoDuplicateReplicaSetAfterUnpauseAndPromote(t *testing.T) {
	t.Run("ramp first", func(t *testing.T) { noDuplicate(t, true) })
	t.Run("the Deployment controller first", func(t *testing.T) { noDuplicate(t, false) })
}

func noDuplicate(t *testing.T, rampFirst bool) {
	f := newFixture(t, canaryRollout(
		v1alpha1.CanaryStep{SetWeight: ptr(int32(20))},
		v1alpha1.CanaryStep{Pause: &v1alpha1.RolloutPause{}},
	))
	f.settlePaused()
	if ro := f.rollout(); ro.Status.Phase != v1alpha1.PhaseHealthy || ro.Status.StableRevision != 1 {
		t.Fatalf("before: phase %s stable %d: %s", ro.Status.Phase, ro.Status.StableRevision, ro.Status.Message)
	}

	// Given the team's pipeline patches the Deployment as Terraform does: unpaused, new image.
	d := f.deployment()
	d.Spec.Paused = false
	d.Spec.Template.Spec.Containers[0].Image = "chat-api:v2"
	if err := f.c.Update(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	// ramp sees it first and pauses it again, and the Deployment controller, on its view from
	// before the pause, starts its own ReplicaSet of the new template; or the other way round.
	if rampFirst {
		f.reconcile()
	}
	f.rollingController()
	f.kubelet()
	f.reconcile()
	f.kubelet()
	f.reconcile()

	// When the pipeline promotes at once, then the canary becomes stable in one ReplicaSet
	// that the Deployment takes over, and 3 pods run.
	f.command(func(ro *v1alpha1.Rollout) error { return engine.Promote(ro, true) })
	f.settlePaused()
	ro := f.rollout()
	if ro.Status.Phase != v1alpha1.PhaseHealthy || ro.Status.StableRevision != 2 {
		t.Fatalf("after promote: phase %s stable %d: %s", ro.Status.Phase, ro.Status.StableRevision, ro.Status.Message)
	}
	pods, sets := f.podsAndSets()
	if pods["chat-api:v2"] != 3 || pods["chat-api:v1"] != 0 {
		t.Errorf("pods by image %v; want 3 of chat-api:v2 alone", pods)
	}
	for h, names := range sets {
		if len(names) > 1 {
			t.Errorf("template %s has %d ReplicaSets: %v", h, len(names), names)
		}
	}
	for name, rs := range f.replicaSets() {
		if replicasOf(rs) > 0 && !ownedBy(rs, "d-uid") {
			t.Errorf("replicaset %s runs %d pods and is not the Deployment's: %v", name, replicasOf(rs), rs.OwnerReferences)
		}
	}
	f.wantEvent("HandedOver")
	if !rampFirst {
		// The ReplicaSet the Deployment controller started was adopted as the canary, not
		// replaced: its pods kept running.
		if rs := f.replicaSets()["chat-api-deploy2"]; rs == nil || !ownedBy(rs, "d-uid") || replicasOf(rs) != 3 {
			t.Errorf("the Deployment's own ReplicaSet of revision 2 was not adopted and handed back: %v", rs)
		}
	}
}
