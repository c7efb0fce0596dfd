package kube

import (
	"context"
	"fmt"
	"slices"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"ramp.dev/ramp/api/v1alpha1"
)

// What `ramp undo` leaves in the Deployment's history (`kubectl rollout history`), which
// lists the Deployment's ReplicaSets with their deployment.kubernetes.io/revision and
// kubernetes.io/change-cause annotations, both copied from the Deployment by the Deployment
// controller onto the ReplicaSet of its current template:
//
//   - Undo writes the cause into the Deployment together with the template, and
//     ramp.dev/change-cause-template naming that template; once the template is another one
//     (the next `kubectl set image`), the controller removes both before the Deployment makes
//     or adopts the next ReplicaSet, so the cause stays on the undo's revision alone. A cause
//     the team writes itself is theirs: ramp leaves it.
//   - The Deployment's old ReplicaSet of the template undone to is not deleted: ramp takes it
//     over (the Rollout becomes its controller) and runs the undo's canary in it, then hands
//     it back on promotion; if the undo is dropped (aborted, then replaced) ramp gives it back
//     as it is. Its pods, name and history stay; the Deployment renumbers it, as it does on
//     `kubectl rollout undo`.

// staleUndoCause reports whether d's change-cause is one that ramp undo wrote for a template
// other than d's own.
func staleUndoCause(d *appsv1.Deployment) bool {
	of := d.Annotations[AnnotationChangeCauseTemplate]
	return of != "" && of != TemplateHash(&d.Spec.Template)
}

// deploymentCause is the cause of the Deployment's current template: its change-cause, unless
// that is a stale one of ramp undo's.
func deploymentCause(d *appsv1.Deployment) string {
	if staleUndoCause(d) && strings.HasPrefix(d.Annotations[annChangeCause], undoCausePrefix) {
		return ""
	}
	return d.Annotations[annChangeCause]
}

// forgetUndoCause removes ramp undo's change-cause from the Deployment once its template is no
// longer the one the cause describes.
func (r *Reconciler) forgetUndoCause(ctx context.Context, w *world) error {
	d := w.deploy
	if !staleUndoCause(d) {
		return nil
	}
	of, cause := d.Annotations[AnnotationChangeCauseTemplate], d.Annotations[annChangeCause]
	ours := strings.HasPrefix(cause, undoCausePrefix)
	if ours {
		// The Deployment may have copied it already onto a ReplicaSet of its new template
		// (an older template again, which it renumbers at once even while paused).
		for _, rs := range w.sets {
			if !w.deploymentOwns(rs) || rs.Annotations[annChangeCause] != cause || TemplateHash(&rs.Spec.Template) == of {
				continue
			}
			patch := client.MergeFrom(rs.DeepCopy())
			delete(rs.Annotations, annChangeCause)
			if err := r.client.Patch(ctx, rs, patch); err != nil {
				return fmt.Errorf("remove the undo's change-cause from replicaset %s: %w", rs.Name, err)
			}
		}
	}
	patch := client.MergeFrom(d.DeepCopy())
	delete(d.Annotations, AnnotationChangeCauseTemplate)
	if ours {
		delete(d.Annotations, annChangeCause)
	}
	if err := r.client.Patch(ctx, d, patch); err != nil {
		return fmt.Errorf("remove the undo's change-cause from deployment %s: %w", d.Name, err)
	}
	return nil
}

// ranByDeployment reports whether rs is (or was, before ramp took it over) one of the
// Deployment's ReplicaSets: the Deployment controller numbered it.
func ranByDeployment(rs *appsv1.ReplicaSet) bool {
	return rs.Annotations[annDeploymentRevision] != ""
}

// takeOver makes the rollout the controller of the Deployment's ReplicaSet rs, which has
// revision rev's template and no pods, so that ramp scales it as the revision's ReplicaSet.
func (r *Reconciler) takeOver(ctx context.Context, ro *v1alpha1.Rollout, rs *appsv1.ReplicaSet, rev *revision, replicas int32) error {
	return r.adopt(ctx, ro, rev, rs, &replicas)
}

// giveBack returns a ReplicaSet ramp took over from the Deployment, scaled to 0, without an
// owner: the Deployment adopts it again as one of its old ReplicaSets.
func (r *Reconciler) giveBack(ctx context.Context, ro *v1alpha1.Rollout, rs *appsv1.ReplicaSet) error {
	patch := client.MergeFrom(rs.DeepCopy())
	rs.OwnerReferences = slices.DeleteFunc(rs.OwnerReferences, func(o metav1.OwnerReference) bool {
		return o.APIVersion == v1alpha1.APIVersion && o.Kind == v1alpha1.KindRollout
	})
	delete(rs.Labels, LabelRollout)
	delete(rs.Annotations, AnnotationRevision)
	zero := int32(0)
	rs.Spec.Replicas = &zero
	if err := r.client.Patch(ctx, rs, patch); err != nil {
		return fmt.Errorf("give replicaset %s back to deployment %s: %w", rs.Name, ro.Spec.WorkloadRef.Name, err)
	}
	return nil
}
