package kube

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/engine"
	"ramp.dev/ramp/internal/spec"
)

// otherManager returns the name of another Rollout that manages Deployment d (its
// ramp.dev/managed-by annotation, or the ramp.dev/paused-by of earlier versions), or "" when
// none does: no claim, this Rollout's claim, or the claim of a Rollout that no longer exists
// or now names another Deployment.
func (r *Reconciler) otherManager(ctx context.Context, ro *v1alpha1.Rollout, d *appsv1.Deployment) (string, error) {
	by := cmp.Or(d.Annotations[AnnotationManagedBy], d.Annotations[AnnotationPausedBy])
	if by == "" || by == ro.Name {
		return "", nil
	}
	other := &v1alpha1.Rollout{}
	err := r.client.Get(ctx, types.NamespacedName{Namespace: ro.Namespace, Name: by}, other)
	switch {
	case apierrors.IsNotFound(err):
		return "", nil
	case err != nil:
		return "", fmt.Errorf("get rollout %s, which deployment %s names as its manager: %w", by, d.Name, err)
	case other.Spec.WorkloadRef == nil || other.Spec.WorkloadRef.Name != d.Name:
		return "", nil
	}
	return by, nil
}

// claim marks Deployment d as managed by ro. A first claim carries d's resource version, so
// that of two Rollouts claiming the same Deployment at once one gets a conflict, decides again
// and is refused. Marking again a Deployment the rollout already ran (the mark was taken off,
// as Terraform takes off annotations it does not know) does not: the Deployment may be
// rolling, its status changing faster than the cache follows, and every write would conflict
// until it is done, while ramp must pause it now.
func (r *Reconciler) claim(ctx context.Context, ro *v1alpha1.Rollout, d *appsv1.Deployment) error {
	if d.Annotations[AnnotationManagedBy] == ro.Name {
		return nil
	}
	patch := client.MergeFrom(d.DeepCopy())
	if ro.Status.StableRevision == 0 {
		patch = client.MergeFromWithOptions(d.DeepCopy(), client.MergeFromWithOptimisticLock{})
	}
	if d.Annotations == nil {
		d.Annotations = map[string]string{}
	}
	d.Annotations[AnnotationManagedBy] = ro.Name
	if err := r.client.Patch(ctx, d, patch); err != nil {
		return fmt.Errorf("mark deployment %s as managed by rollout %s: %w", d.Name, ro.Name, err)
	}
	return nil
}

// recreated reports whether the Deployment was deleted and made again since ramp last managed
// it (it lacks ramp's annotations) and runs nothing of the stable revision (its ReplicaSets
// went with the old Deployment): there is no stable revision to compare with any more.
func (r *Reconciler) recreated(ro *v1alpha1.Rollout, w *world) bool {
	st := &ro.Status
	if st.StableRevision == 0 || w.deploy.Annotations[AnnotationManagedBy] == ro.Name || w.deploy.Annotations[AnnotationPausedBy] == ro.Name {
		return false
	}
	stable := w.byNumber[st.StableRevision]
	return stable == nil || len(stable.sets) == 0
}

// workloadGone decides for a rollout whose Deployment was deleted: the revision under way is
// aborted (its traffic goes back to the stable Service, its ReplicaSet goes), and the status
// says that the Deployment is missing and that the stable revision runs nowhere, rather than
// keeping the last step's weights and counts. When the Deployment comes back, the next
// decision goes on from there (see recreated).
func (r *Reconciler) workloadGone(ctx context.Context, ro *v1alpha1.Rollout, before *v1alpha1.RolloutStatus) error {
	name := ro.Spec.WorkloadRef.Name
	missing := fmt.Sprintf("deployment %s not found in namespace %s", name, ro.Namespace)
	r.measure.Forget(ro.Namespace, ro.Name, nil)
	r.gates.Forget(ro.Namespace, ro.Name, nil)
	r.exits.forget(rolloutKey(ro))
	var events []engine.Event
	if rev := engine.InProgress(ro); engine.AbortFor(ro, fmt.Sprintf("deployment %s was deleted during the rollout of revision %d", name, rev)) {
		events = append(events, engine.Event{Type: engine.EventWarning, Reason: "RolloutAborted", Revision: rev,
			Message: fmt.Sprintf("revision %d aborted: deployment %s was deleted; traffic goes back to the stable Service", rev, name)})
	}
	in := ro.DeepCopy()
	n := int32(1)
	for _, rs := range ro.Status.Revisions {
		if rs.Revision == ro.Status.StableRevision && rs.Desired > 0 {
			n = rs.Desired
		}
	}
	in.Spec.Replicas = &n
	spec.SetDefaults(in)
	r.traffic.judgeDefaults(in)
	out := engine.Decide(engine.Input{Rollout: in, Revision: ro.Status.CurrentRevision, Now: r.now()})
	conditions := ro.Status.Conditions
	ro.Status = out.Status
	ro.Status.Conditions = conditions
	ro.Status.Analysis = nil
	ro.Status.Message = missing + ": " + ro.Status.Message
	if out.Status.Phase != v1alpha1.PhaseDegraded {
		ro.Status.Message = fmt.Sprintf("%s: stable revision %d runs nowhere; waiting for the Deployment", missing, ro.Status.StableRevision)
	}
	events = append(events, out.Events...)

	var errs []error
	if err := r.stopOwnSets(ctx, ro, out); err != nil {
		errs = append(errs, err)
	}
	// Nothing runs to copy requests to; what the last decision copied is not known here.
	if err := r.route(ctx, ro, before, out, mirrors{prevUnknown: true}); err != nil {
		errs = append(errs, err)
	}
	if r.setCondition(ro, v1alpha1.ConditionReconciled, false, "WorkloadNotFound", missing) {
		r.recorder.Eventf(ro, nil, corev1.EventTypeWarning, "WorkloadNotFound", "Observe", "%s", missing)
	}
	r.setPhaseConditions(ro)
	if err := r.writeStatus(ctx, ro, before); err != nil {
		return err
	}
	for _, e := range events {
		r.record(ro, e.Type, e.Reason, e.Message, e.Revision)
	}
	return errors.Join(errs...)
}

// stopOwnSets deletes ramp's ReplicaSets of the revisions out does not run, without a
// Deployment to observe.
func (r *Reconciler) stopOwnSets(ctx context.Context, ro *v1alpha1.Rollout, out engine.Output) error {
	templates, err := r.revisionTemplates(ctx, ro)
	if err != nil {
		return err
	}
	keep := map[string]bool{}
	for n, want := range out.Scale {
		if t, ok := templates[n]; ok && want > 0 {
			keep[TemplateHash(t)] = true
		}
	}
	var sets appsv1.ReplicaSetList
	if err := r.client.List(ctx, &sets, client.InNamespace(ro.Namespace), client.MatchingLabels{LabelRollout: ro.Name}); err != nil {
		return fmt.Errorf("list replicasets of %s: %w", ro.Name, err)
	}
	var errs []error
	for i := range sets.Items {
		rs := &sets.Items[i]
		if !ownedBy(rs, ro.UID) || keep[TemplateHash(&rs.Spec.Template)] {
			continue
		}
		if err := r.client.Delete(ctx, rs); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("delete replicaset %s: %w", rs.Name, err))
		}
	}
	return errors.Join(errs...)
}

// revisionTemplates reads the pod templates of ro's recorded revisions, by number.
func (r *Reconciler) revisionTemplates(ctx context.Context, ro *v1alpha1.Rollout) (map[int64]*corev1.PodTemplateSpec, error) {
	var crs appsv1.ControllerRevisionList
	if err := r.client.List(ctx, &crs, client.InNamespace(ro.Namespace), client.MatchingLabels{LabelRollout: ro.Name}); err != nil {
		return nil, fmt.Errorf("list revisions of %s: %w", ro.Name, err)
	}
	out := map[int64]*corev1.PodTemplateSpec{}
	for i := range crs.Items {
		cr := &crs.Items[i]
		if !ownedBy(cr, ro.UID) {
			continue
		}
		t := &corev1.PodTemplateSpec{}
		if err := json.Unmarshal(cr.Data.Raw, t); err != nil {
			return nil, fmt.Errorf("revision %s: decode pod template: %w", cr.Name, err)
		}
		out[cr.Revision] = t
	}
	return out, nil
}
