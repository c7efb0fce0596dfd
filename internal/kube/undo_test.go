package kube

import (
	"context"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/control"
	"ramp.dev/ramp/internal/engine"
)

func TestUndoKeepsTheDeploymentsReplicaSetAndItsCauseOnItsRevision(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, canaryRollout(v1alpha1.CanaryStep{SetWeight: ptr(int32(50))}, v1alpha1.CanaryStep{Pause: &v1alpha1.RolloutPause{}}))
	// The Deployment controller numbered its first ReplicaSet.
	v1Set := f.replicaSets()["chat-api-v1hash"]
	v1Set.Annotations = map[string]string{annDeploymentRevision: "1"}
	if err := f.c.Update(ctx, v1Set); err != nil {
		t.Fatal(err)
	}
	f.settle()
	promote := func(n int64) {
		t.Helper()
		f.command(func(ro *v1alpha1.Rollout) error { return engine.Promote(ro, true) })
		f.settle()
		if ro := f.rollout(); ro.Status.StableRevision != n || ro.Status.Phase != v1alpha1.PhaseHealthy {
			t.Fatalf("after promote: stable %d phase %s (%s); want %d Healthy", ro.Status.StableRevision, ro.Status.Phase, ro.Status.Message, n)
		}
	}
	f.setImage("chat-api:v2")
	f.settle()
	promote(2)
	cmds := &Commands{Client: f.c, Namespace: ns}

	// When the team undoes revision 2, then the Deployment carries the cause, naming both
	// revision numbers, and says for which template.
	res, err := cmds.Undo(ctx, "chat-api", 0)
	if err != nil {
		t.Fatal(err)
	}
	if res.Target != 1 || res.Revision != 3 || !res.New || !strings.Contains(res.Note, "ramp revision 1 is revision 1 in kubectl rollout history deployment/chat-api") {
		t.Errorf("undo: %+v", res)
	}
	d := f.deployment()
	const cause = "ramp undo to ramp revision 1 (deployment revision 1)"
	if d.Annotations[annChangeCause] != cause || d.Annotations[AnnotationChangeCauseTemplate] != TemplateHash(&d.Spec.Template) {
		t.Errorf("deployment annotations after undo: %v", d.Annotations)
	}
	// Then the canary runs in the Deployment's own old ReplicaSet of v1, taken over, not
	// deleted and replaced.
	f.settle()
	rs := f.replicaSets()["chat-api-v1hash"]
	if rs == nil || !ownedBy(rs, "ro-uid") || replicasOf(rs) == 0 {
		t.Fatalf("v1's ReplicaSet during the undo's canary: %+v", rs)
	}
	if len(f.replicaSets()) != 2 {
		t.Errorf("replicasets %v; want v1's and v2's only", keys(f.replicaSets()))
	}
	promote(3)
	if rs := f.replicaSets()["chat-api-v1hash"]; rs == nil || !ownedBy(rs, "d-uid") || replicasOf(rs) != 3 {
		t.Fatalf("v1's ReplicaSet after the promotion: %+v", rs)
	}

	// When the next change comes, then the undo's cause leaves the Deployment and the new
	// revision has its own.
	f.setImage("chat-api:v3")
	f.reconcile()
	d = f.deployment()
	if _, ok := d.Annotations[annChangeCause]; ok {
		t.Errorf("change-cause still on the deployment: %v", d.Annotations)
	}
	if _, ok := d.Annotations[AnnotationChangeCauseTemplate]; ok {
		t.Errorf("change-cause-template still on the deployment: %v", d.Annotations)
	}
	hist, err := cmds.History(ctx, "chat-api")
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range hist {
		if h.Number == 4 && strings.Contains(h.Cause, "undo") || h.Number == 3 && !strings.Contains(h.Cause, cause) {
			t.Errorf("ramp history: revision %d cause %q", h.Number, h.Cause)
		}
	}

	// When revision 4 is aborted and the team undoes, then the rollout goes back to stable
	// revision 3: nothing new.
	f.settle()
	f.command(engine.Abort)
	f.settle()
	res, err = cmds.Undo(ctx, "chat-api", 0)
	if err != nil {
		t.Fatal(err)
	}
	if res != (control.UndoResult{Target: 3, Revision: 3, Note: res.Note}) {
		t.Errorf("undo after abort: %+v; want target 3, not new", res)
	}
	f.settle()
	if ro := f.rollout(); ro.Status.Phase != v1alpha1.PhaseHealthy || ro.Status.CurrentRevision != 3 {
		t.Errorf("after the undo: phase %s current %d", ro.Status.Phase, ro.Status.CurrentRevision)
	}
}

func TestUndoThatIsDroppedGivesTheReplicaSetBack(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, canaryRollout(v1alpha1.CanaryStep{SetWeight: ptr(int32(50))}, v1alpha1.CanaryStep{Pause: &v1alpha1.RolloutPause{}}))
	v1Set := f.replicaSets()["chat-api-v1hash"]
	v1Set.Annotations = map[string]string{annDeploymentRevision: "1"}
	if err := f.c.Update(ctx, v1Set); err != nil {
		t.Fatal(err)
	}
	f.settle()
	f.setImage("chat-api:v2")
	f.settle()
	f.command(func(ro *v1alpha1.Rollout) error { return engine.Promote(ro, true) })
	f.settle()
	cmds := &Commands{Client: f.c, Namespace: ns}
	if _, err := cmds.Undo(ctx, "chat-api", 1); err != nil {
		t.Fatal(err)
	}
	f.settle()
	if rs := f.replicaSets()["chat-api-v1hash"]; !ownedBy(rs, "ro-uid") {
		t.Fatalf("v1's ReplicaSet not taken over: %+v", rs.OwnerReferences)
	}
	// The undo's canary is aborted, then the template changes again: v1's ReplicaSet goes
	// back to the Deployment, scaled to 0, not deleted.
	f.command(engine.Abort)
	f.settle()
	f.setImage("chat-api:v3")
	f.settle()
	rs := f.replicaSets()["chat-api-v1hash"]
	if rs == nil {
		t.Fatal("v1's ReplicaSet was deleted")
	}
	if !ownedBy(rs, "d-uid") || replicasOf(rs) != 0 || rs.Labels[LabelRollout] != "" {
		t.Errorf("v1's ReplicaSet: owners %v replicas %d labels %v; want the Deployment's, 0, no rollout label", rs.OwnerReferences, replicasOf(rs), rs.Labels)
	}
	if ref := metav1.GetControllerOf(rs); ref == nil || ref.Kind != "Deployment" {
		t.Errorf("controller %v", ref)
	}
}
