package kube

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/engine"
)

// AnnotationUndoneRevision is set on a Deployment whose pod template ramp wrote back to the
// stable revision's, undoing a rolling update as `kubectl rollout undo` does, with the number
// of the revision it undid. While the Deployment keeps that template, the rollout still
// treats the undone revision as the one asked for (aborted: `ramp retry` writes its template
// back and runs it again); any other change of the template is a new revision.
const AnnotationUndoneRevision = "ramp.dev/undone-revision"

// A rolling update (spec.strategy.rollingUpdate) in Kubernetes mode is the Deployment's own:
// ramp creates no ReplicaSet, the Deployment controller rolls the pods with its maxSurge and
// maxUnavailable (the Rollout's, when it sets them), and ramp gates it with spec.paused and,
// after an abort, with the stable revision's pod template written back (an undo, as `kubectl
// rollout undo` would). The engine decides both (engine.Capabilities.RollsItself): this file
// tells it what the Deployment does (observeWorkload) and carries out its
// engine.Output.Workload (carryOutRolling). Output.Scale is not carried out: the Deployment
// controller sizes the revisions itself.

// isRolling reports whether ro uses the Deployment's own rolling update.
func isRolling(ro *v1alpha1.Rollout) bool { return ro.Spec.Strategy.RollingUpdate != nil }

// observeRolling completes what observe saw for a rolling update: while the Deployment keeps
// the template ramp wrote back in an undo, the undone revision is still the current one.
func (r *Reconciler) observeRolling(ro *v1alpha1.Rollout, w *world) {
	if !isRolling(ro) {
		return
	}
	stable := w.byNumber[ro.Status.StableRevision]
	if v := w.deploy.Annotations[AnnotationUndoneRevision]; v != "" && stable != nil && w.current == stable {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil && n != stable.number && w.byNumber[n] != nil {
			w.current = w.byNumber[n]
		}
	}
}

// observeWorkload is what the engine needs to know of the Deployment when it rolls itself:
// the revision of its template, how far its controller rolled it, and the controller's own
// ProgressDeadlineExceeded (not the one ramp writes on an abort: see reportOnDeployment).
func observeWorkload(w *world) *engine.Workload {
	d := w.deploy
	ow := &engine.Workload{
		Name:     "deployment " + d.Name,
		Updated:  updatedReplicas(w),
		Complete: deploymentComplete(d),
		Stale:    d.Status.ObservedGeneration < d.Generation,
		Held:     d.Spec.Paused,
	}
	if rev := w.byHash[TemplateHash(&d.Spec.Template)]; rev != nil {
		ow.Revision = rev.number
	}
	if c := progressingCondition(d); c != nil && c.Reason == reasonTimedOut && !strings.HasPrefix(c.Message, abortPrefix) {
		ow.DeadlineExceeded = c.Message
	}
	return ow
}

func progressingCondition(d *appsv1.Deployment) *appsv1.DeploymentCondition {
	for i := range d.Status.Conditions {
		if d.Status.Conditions[i].Type == appsv1.DeploymentProgressing {
			return &d.Status.Conditions[i]
		}
	}
	return nil
}

// carryOutRolling makes the Deployment match the decision of a rolling update (gate): the
// template of the revision it should hold (stable's again after an abort), its maxSurge and
// maxUnavailable, and whether the Deployment controller may roll now. A nil gate (no stable
// revision yet: the Deployment deploys the first one by itself) leaves it alone.
func (r *Reconciler) carryOutRolling(ctx context.Context, ro *v1alpha1.Rollout, w *world, gate *engine.WorkloadGate) error {
	d := w.deploy
	if by := d.Annotations[AnnotationPausedBy]; by != "" && by != ro.Name {
		return fmt.Errorf("deployment %s is managed by rollout %s", d.Name, by)
	}
	if gate == nil {
		return nil
	}
	target := w.byNumber[gate.Revision]
	if target == nil {
		return fmt.Errorf("revision %d of %s has no recorded template", gate.Revision, ro.Name)
	}

	orig := d.DeepCopy()
	if d.Annotations == nil {
		d.Annotations = map[string]string{}
	}
	d.Annotations[AnnotationPausedBy] = ro.Name
	if TemplateHash(&d.Spec.Template) != target.hash {
		d.Spec.Template = *target.template.DeepCopy()
	}
	if cur := w.current; cur != target {
		// An undo: the Deployment holds stable's template, and the annotation keeps the
		// undone revision the one asked for (observeRolling).
		d.Annotations[AnnotationUndoneRevision] = strconv.FormatInt(cur.number, 10)
	} else {
		delete(d.Annotations, AnnotationUndoneRevision)
	}

	if ru := ro.Spec.Strategy.RollingUpdate; ru.MaxSurge != nil || ru.MaxUnavailable != nil {
		d.Spec.Strategy.Type = appsv1.RollingUpdateDeploymentStrategyType
		if d.Spec.Strategy.RollingUpdate == nil {
			d.Spec.Strategy.RollingUpdate = &appsv1.RollingUpdateDeployment{}
		}
		if ru.MaxSurge != nil {
			v := *ru.MaxSurge
			d.Spec.Strategy.RollingUpdate.MaxSurge = &v
		}
		if ru.MaxUnavailable != nil {
			v := *ru.MaxUnavailable
			d.Spec.Strategy.RollingUpdate.MaxUnavailable = &v
		}
	}
	d.Spec.Paused = !gate.Roll
	// The patch always says spec.paused: a hold decided on a stale copy (the cache still
	// showing an earlier pause while the Deployment rolls) would otherwise differ in nothing
	// and send no pause at all, and the Deployment controller would roll on past the pause
	// point. (Not a resource-version check instead: while the Deployment rolls, its status
	// changes faster than the cache follows, and every pause would conflict until it is done.)
	orig.Spec.Paused = !d.Spec.Paused
	if err := r.client.Patch(ctx, d, client.MergeFrom(orig)); err != nil {
		return fmt.Errorf("update deployment %s: %w", d.Name, err)
	}
	return nil
}

// deploymentComplete reports whether the Deployment runs its template fully and nothing else,
// as `kubectl rollout status` judges it.
func deploymentComplete(d *appsv1.Deployment) bool {
	n := int32(1)
	if d.Spec.Replicas != nil {
		n = *d.Spec.Replicas
	}
	s := d.Status
	return s.ObservedGeneration >= d.Generation && s.UpdatedReplicas == n && s.Replicas == n && s.AvailableReplicas == n
}

// updatedReplicas is how many pods the Deployment controller wants of its template: the
// replicas of its ReplicaSets with the Deployment's template, or the Deployment status's
// updated pods when the cache shows more of them (its ReplicaSets and the Deployment are
// watched apart, and either may lag).
func updatedReplicas(w *world) int32 {
	hash := TemplateHash(&w.deploy.Spec.Template)
	var n int32
	for _, rs := range w.sets {
		if w.deploymentOwns(rs) && TemplateHash(&rs.Spec.Template) == hash {
			n += replicasOf(rs)
		}
	}
	if w.deploy.Status.ObservedGeneration >= w.deploy.Generation {
		n = max(n, w.deploy.Status.UpdatedReplicas)
	}
	return n
}
