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
// maxUnavailable (the Rollout's, when it sets them), and ramp gates it with spec.paused:
//
//   - between rollouts, and while the update holds (at rollingUpdate.pause, on `ramp pause`,
//     on inconclusive analysis), the Deployment is paused;
//   - while a revision rolls out and may go on, it is not;
//   - when the revision is aborted (analysis failed, the progress deadline passed — the
//     Rollout's, or the Deployment's own ProgressDeadlineExceeded — or `ramp abort`), ramp
//     writes the stable revision's pod template back into the Deployment and lets it roll
//     back, as `kubectl rollout undo` would; once the Deployment runs it fully it is paused
//     again. The rollout stays Degraded, and `kubectl rollout status` succeeds on the old
//     template.
//
// engine.Output.Scale is not carried out: the engine's own count of the new revision's
// instances only decides the phase, the pause point and the progress deadline, from the pods
// the Deployment controller runs.

// isRolling reports whether ro uses the Deployment's own rolling update.
func isRolling(ro *v1alpha1.Rollout) bool { return ro.Spec.Strategy.RollingUpdate != nil }

// observeRolling completes what observe saw for a rolling update: while the Deployment keeps
// the template ramp wrote back in an undo, the undone revision is still the current one; and
// the Deployment's own ProgressDeadlineExceeded aborts the revision under way.
func (r *Reconciler) observeRolling(ro *v1alpha1.Rollout, w *world) {
	if !isRolling(ro) {
		return
	}
	st := &ro.Status
	stable := w.byNumber[st.StableRevision]
	if v := w.deploy.Annotations[AnnotationUndoneRevision]; v != "" && stable != nil && w.current == stable {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil && n != stable.number && w.byNumber[n] != nil {
			w.current = w.byNumber[n]
		}
	}
	rev := w.current.number
	if st.StableRevision == 0 || rev == st.StableRevision || st.Abort && st.AbortedRevision == rev {
		return
	}
	d := w.deploy
	c := progressingCondition(d)
	if c == nil || c.Reason != reasonTimedOut || strings.HasPrefix(c.Message, abortPrefix) ||
		d.Status.ObservedGeneration < d.Generation || TemplateHash(&d.Spec.Template) != w.current.hash {
		return
	}
	why := fmt.Sprintf("deployment %s exceeded its progress deadline: %s", d.Name, c.Message)
	st.Abort, st.AbortedRevision, st.Message = true, rev, "aborted: "+why
	w.events = append(w.events, engine.Event{Type: engine.EventWarning, Reason: "RolloutAborted", Revision: rev,
		Message: fmt.Sprintf("revision %d aborted: %s", rev, why)})
}

func progressingCondition(d *appsv1.Deployment) *appsv1.DeploymentCondition {
	for i := range d.Status.Conditions {
		if d.Status.Conditions[i].Type == appsv1.DeploymentProgressing {
			return &d.Status.Conditions[i]
		}
	}
	return nil
}

// carryOutRolling makes the Deployment match the decision of a rolling update: its template
// (the stable one again after an abort), its maxSurge and maxUnavailable, and whether the
// Deployment controller may roll now.
func (r *Reconciler) carryOutRolling(ctx context.Context, ro *v1alpha1.Rollout, w *world) error {
	st := &ro.Status
	d := w.deploy
	if by := d.Annotations[AnnotationPausedBy]; by != "" && by != ro.Name {
		return fmt.Errorf("deployment %s is managed by rollout %s", d.Name, by)
	}
	if st.StableRevision == 0 {
		return nil // the first revision: the Deployment deploys it by itself
	}
	stable := w.byNumber[st.StableRevision]
	if stable == nil {
		return fmt.Errorf("stable revision %d of %s has no recorded template", st.StableRevision, ro.Name)
	}
	cur := w.current
	undo := st.Abort && st.AbortedRevision == cur.number && cur != stable

	orig := d.DeepCopy()
	if d.Annotations == nil {
		d.Annotations = map[string]string{}
	}
	d.Annotations[AnnotationPausedBy] = ro.Name
	hash := TemplateHash(&d.Spec.Template)
	rewritten := false
	switch {
	case undo && hash != stable.hash:
		d.Spec.Template = *stable.template.DeepCopy()
		d.Annotations[AnnotationUndoneRevision] = strconv.FormatInt(cur.number, 10)
		rewritten = true
		w.events = append(w.events, engine.Event{Type: engine.EventWarning, Reason: "RolloutUndone", Revision: cur.number,
			Message: fmt.Sprintf("revision %d undone: deployment %s has the template of revision %d again and rolls back to it, as `kubectl rollout undo` would (%s)",
				cur.number, d.Name, stable.number, strings.TrimPrefix(st.Message, "aborted: "))})
	case !undo && hash != cur.hash:
		// A retry after an undo: the undone revision's template again.
		d.Spec.Template = *cur.template.DeepCopy()
		delete(d.Annotations, AnnotationUndoneRevision)
		rewritten = true
	case !undo:
		delete(d.Annotations, AnnotationUndoneRevision)
	}
	if undo && strings.HasPrefix(st.Message, "aborted: ") {
		st.Message = fmt.Sprintf("undone: %s; deployment %s is back on the template of revision %d (`ramp retry %s` runs revision %d again)",
			strings.TrimPrefix(st.Message, "aborted: "), d.Name, stable.number, ro.Name, cur.number)
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
	d.Spec.Paused = !mayRoll(ro, w, undo, rewritten)
	// The patch always says spec.paused: a hold decided on a stale copy (the cache still
	// showing an earlier pause while the Deployment rolls) would otherwise differ in nothing
	// and send no pause at all, and the Deployment controller would roll on past the pause
	// point. (Not a resource-version check instead: while the Deployment rolls, its status
	// changes faster than the cache follows, and every pause would conflict until it is done.)
	orig.Spec.Paused = !d.Spec.Paused
	if err := r.client.Patch(ctx, d, client.MergeFrom(orig)); err != nil {
		if undo && rewritten {
			w.events = w.events[:len(w.events)-1]
		}
		return fmt.Errorf("update deployment %s: %w", d.Name, err)
	}
	return nil
}

// mayRoll reports whether the Deployment controller may roll the Deployment now: towards the
// revision under way unless the update holds, or back to stable until it runs it fully.
func mayRoll(ro *v1alpha1.Rollout, w *world, undo, rewritten bool) bool {
	st := &ro.Status
	if undo || w.current.number == st.StableRevision {
		d := w.deploy
		if rewritten {
			return true
		}
		if d.Status.ObservedGeneration < d.Generation {
			// The Deployment controller has not seen the last change yet — often ramp's own
			// pause, which bumps the generation too: keep the Deployment as it is, or every
			// pause would look like an unfinished rollout and be undone at once.
			return !d.Spec.Paused
		}
		return !deploymentComplete(d)
	}
	if ro.Spec.Paused || len(st.PauseConditions) > 0 {
		return false
	}
	p := ro.Spec.Strategy.RollingUpdate.Pause
	if p != nil && st.CurrentStepIndex != nil && *st.CurrentStepIndex == 0 && !rewritten {
		return updatedReplicas(w) < engine.PausePoint(p, w.replicas())
	}
	return true
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
