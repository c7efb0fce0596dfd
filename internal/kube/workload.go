package kube

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/rand"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/engine"
)

// Labels and annotations ramp puts on the objects it manages.
const (
	// LabelRollout names the Rollout a ControllerRevision or ReplicaSet belongs to.
	LabelRollout = "ramp.dev/rollout"
	// LabelTemplateHash is ramp's hash of a pod template, on ControllerRevisions.
	LabelTemplateHash = "ramp.dev/template-hash"
	// AnnotationRevision is ramp's revision number, on the ReplicaSets ramp creates.
	AnnotationRevision = "ramp.dev/revision"
	// AnnotationCause says what made a revision (ControllerRevision): a changed template, an
	// undo.
	AnnotationCause = "ramp.dev/change-cause"
	// AnnotationPausedBy is set on a Deployment that ramp paused, with the Rollout's name;
	// deleting the Rollout resumes the Deployment only then.
	AnnotationPausedBy = "ramp.dev/paused-by"
	// AnnotationChangeCauseTemplate is set on the Deployment beside the kubernetes.io/change-cause
	// that `ramp undo` writes, with the TemplateHash of the template the cause describes. Once
	// the Deployment's template is another one, the controller removes both, so that the
	// Deployment does not copy the undo's cause to the ReplicaSets of later revisions.
	AnnotationChangeCauseTemplate = "ramp.dev/change-cause-template"
	// AnnotationManagedBy is set on the Deployment a Rollout manages, with the Rollout's name,
	// from its first decision on: a second Rollout of the same Deployment is refused.
	AnnotationManagedBy = "ramp.dev/managed-by"
	// FinalizerName lets ramp hand the Deployment back when its Rollout is deleted.
	FinalizerName = "ramp.dev/release-deployment"

	// The Deployment controller's annotations that decide whether it sees an adopted
	// ReplicaSet as saturated (k8s.io/kubernetes/pkg/controller/deployment/util).
	annDesiredReplicas = "deployment.kubernetes.io/desired-replicas"
	annMaxReplicas     = "deployment.kubernetes.io/max-replicas"
	annChangeCause     = "kubernetes.io/change-cause"
	// annDeploymentRevision is the Deployment controller's number of a ReplicaSet's revision,
	// which kubectl rollout history shows.
	annDeploymentRevision = "deployment.kubernetes.io/revision"
	// undoCausePrefix starts every change-cause that ramp undo writes.
	undoCausePrefix = "ramp undo to "
)

// TemplateHash is ramp's hash of a pod template: equal templates (apart from the
// pod-template-hash label that ReplicaSets add) have equal hashes. It names ramp's ReplicaSets
// (<deployment>-<hash>) and is their pod-template-hash label, which Services select.
func TemplateHash(t *corev1.PodTemplateSpec) string {
	c := t.DeepCopy()
	delete(c.Labels, appsv1.DefaultDeploymentUniqueLabelKey)
	if len(c.Labels) == 0 {
		c.Labels = nil
	}
	data, err := json.Marshal(c)
	if err != nil {
		panic(fmt.Sprintf("marshal pod template: %s", err)) // a PodTemplateSpec always marshals
	}
	h := fnv.New64a()
	h.Write(data)
	s := rand.SafeEncodeString(strconv.FormatUint(h.Sum64(), 10))
	return s[:10]
}

// revision is one revision of a rollout: its number, its pod template and where it runs.
type revision struct {
	number   int64
	hash     string
	template corev1.PodTemplateSpec
	// history is the ControllerRevision that records it.
	history *appsv1.ControllerRevision
	// sets are the ReplicaSets running this template: ramp's own and the Deployment's.
	sets []*appsv1.ReplicaSet
}

// world is what the reconciler observed of one rollout's workload.
type world struct {
	deploy *appsv1.Deployment
	// revisions by number, and by template hash.
	byNumber map[int64]*revision
	byHash   map[string]*revision
	// sets are every ReplicaSet that matches the Deployment's selector.
	sets []*appsv1.ReplicaSet
	pods []corev1.Pod
	// current is the revision of the Deployment's pod template.
	current *revision
	// events are what carrying out a decision did (a hand-over), recorded after the
	// decision's own events.
	events []engine.Event
}

// ownedBy reports whether o's controller is the object with uid.
func ownedBy(o metav1.Object, uid types.UID) bool {
	ref := metav1.GetControllerOf(o)
	return ref != nil && ref.UID == uid
}

// isOurs reports whether rs is a ReplicaSet that the rollout created and still owns.
func (w *world) isOurs(ro *v1alpha1.Rollout, rs *appsv1.ReplicaSet) bool { return ownedBy(rs, ro.UID) }

// deploymentOwns reports whether rs is the Deployment's (or an orphan it will adopt).
func (w *world) deploymentOwns(rs *appsv1.ReplicaSet) bool {
	ref := metav1.GetControllerOf(rs)
	return ref == nil || ref.UID == w.deploy.UID
}

// replicas is the Deployment's replica count: the rollout's size in Kubernetes mode.
func (w *world) replicas() int32 {
	if w.deploy.Spec.Replicas != nil {
		return *w.deploy.Spec.Replicas
	}
	return 1
}

// maxSurge is the Deployment's maxSurge as a count, as the Deployment controller computes it.
func (w *world) maxSurge() int32 {
	ru := w.deploy.Spec.Strategy.RollingUpdate
	if w.deploy.Spec.Strategy.Type == appsv1.RecreateDeploymentStrategyType {
		return 0
	}
	v := intstr.FromString("25%")
	if ru != nil && ru.MaxSurge != nil {
		v = *ru.MaxSurge
	}
	n, err := intstr.GetScaledValueFromIntOrPercent(&v, int(w.replicas()), true)
	if err != nil {
		return 0
	}
	return int32(n)
}

// podHash is the pod-template-hash label that selects rev's pods: the label of its ReplicaSet
// with the most replicas. Empty when rev runs nowhere.
func (r *revision) podHash() string {
	if r == nil {
		return ""
	}
	best := r.bestSet()
	if best == nil {
		return ""
	}
	return best.Labels[appsv1.DefaultDeploymentUniqueLabelKey]
}

func (r *revision) bestSet() *appsv1.ReplicaSet {
	var best *appsv1.ReplicaSet
	for _, rs := range r.sets {
		if best == nil || replicasOf(rs) > replicasOf(best) {
			best = rs
		}
	}
	return best
}

func replicasOf(rs *appsv1.ReplicaSet) int32 {
	if rs.Spec.Replicas == nil {
		return 1
	}
	return *rs.Spec.Replicas
}

// observe reads the Deployment, its ReplicaSets and pods, and the rollout's revision history,
// and makes sure the Deployment's template has a revision. It returns a nil world and no error
// when the Deployment does not exist.
func (r *Reconciler) observe(ctx context.Context, ro *v1alpha1.Rollout) (*world, error) {
	d := &appsv1.Deployment{}
	if err := r.client.Get(ctx, types.NamespacedName{Namespace: ro.Namespace, Name: ro.Spec.WorkloadRef.Name}, d); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("get deployment %s: %w", ro.Spec.WorkloadRef.Name, err)
	}
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil || sel.Empty() {
		return nil, fmt.Errorf("deployment %s: selector %v: %w", d.Name, d.Spec.Selector, cmp.Or(err, errEmptySelector))
	}
	w := &world{deploy: d, byNumber: map[int64]*revision{}, byHash: map[string]*revision{}}

	var crs appsv1.ControllerRevisionList
	if err := r.client.List(ctx, &crs, client.InNamespace(ro.Namespace), client.MatchingLabels{LabelRollout: ro.Name}); err != nil {
		return nil, fmt.Errorf("list revisions of %s: %w", ro.Name, err)
	}
	for i := range crs.Items {
		cr := &crs.Items[i]
		if !ownedBy(cr, ro.UID) {
			continue
		}
		var t corev1.PodTemplateSpec
		if err := json.Unmarshal(cr.Data.Raw, &t); err != nil {
			return nil, fmt.Errorf("revision %s: decode pod template: %w", cr.Name, err)
		}
		rev := &revision{number: cr.Revision, hash: cr.Labels[LabelTemplateHash], template: t, history: cr}
		w.byNumber[rev.number] = rev
		w.byHash[rev.hash] = rev
	}

	if w.current, err = r.currentRevision(ctx, ro, w); err != nil {
		return nil, err
	}

	var sets appsv1.ReplicaSetList
	if err := r.client.List(ctx, &sets, client.InNamespace(ro.Namespace), client.MatchingLabelsSelector{Selector: sel}); err != nil {
		return nil, fmt.Errorf("list replicasets of %s: %w", d.Name, err)
	}
	for i := range sets.Items {
		rs := &sets.Items[i]
		if rs.DeletionTimestamp != nil || !(w.deploymentOwns(rs) || w.isOurs(ro, rs)) {
			continue
		}
		w.sets = append(w.sets, rs)
		if rev := w.byHash[TemplateHash(&rs.Spec.Template)]; rev != nil {
			rev.sets = append(rev.sets, rs)
		}
	}
	var pods corev1.PodList
	if err := r.client.List(ctx, &pods, client.InNamespace(ro.Namespace), client.MatchingLabelsSelector{Selector: sel}); err != nil {
		return nil, fmt.Errorf("list pods of %s: %w", d.Name, err)
	}
	w.pods = pods.Items
	return w, nil
}

// currentRevision returns the revision of the Deployment's pod template, recording a new one
// when the template is new. A template equal to an older revision that is neither the current
// nor the stable one becomes a new revision (as `kubectl rollout undo` does).
func (r *Reconciler) currentRevision(ctx context.Context, ro *v1alpha1.Rollout, w *world) (*revision, error) {
	hash := TemplateHash(&w.deploy.Spec.Template)
	var highest int64
	for n := range w.byNumber {
		highest = max(highest, n)
	}
	highest = max(highest, ro.Status.CurrentRevision, ro.Status.StableRevision)
	cause := cmp.Or(deploymentCause(w.deploy), "pod template of deployment "+w.deploy.Name+" changed")
	if highest == 0 {
		cause = "pod template of deployment " + w.deploy.Name + " when the rollout began"
	}

	number, isNew := engine.RevisionNumber(hash, highest, ro.Status.CurrentRevision, ro.Status.StableRevision, func(n int64) string {
		if rev := w.byNumber[n]; rev != nil {
			return rev.hash
		}
		return ""
	})
	if !isNew {
		return w.byNumber[number], nil
	}
	if rev := w.byHash[hash]; rev != nil {
		// An older template again: it rolls out as a new revision.
		old := rev.number
		cr := rev.history.DeepCopy()
		cr.Revision = number
		if cr.Annotations == nil {
			cr.Annotations = map[string]string{}
		}
		cr.Annotations[AnnotationCause] = fmt.Sprintf("template of revision %d again: %s", old, cause)
		if err := r.client.Update(ctx, cr); err != nil {
			return nil, fmt.Errorf("renumber revision %d of %s: %w", old, ro.Name, err)
		}
		delete(w.byNumber, old)
		rev.number, rev.history = cr.Revision, cr
		w.byNumber[rev.number] = rev
		return rev, nil
	}

	data, err := json.Marshal(&w.deploy.Spec.Template)
	if err != nil {
		return nil, fmt.Errorf("encode pod template: %w", err)
	}
	cr := &appsv1.ControllerRevision{
		ObjectMeta: metav1.ObjectMeta{
			Name:        revisionName(ro.Name, hash),
			Namespace:   ro.Namespace,
			Labels:      map[string]string{LabelRollout: ro.Name, LabelTemplateHash: hash},
			Annotations: map[string]string{AnnotationCause: cause},
		},
		Data:     runtime.RawExtension{Raw: data},
		Revision: number,
	}
	if err := r.setOwner(ro, cr); err != nil {
		return nil, err
	}
	if err := r.client.Create(ctx, cr); err != nil {
		if apierrors.IsAlreadyExists(err) {
			return nil, errStale // made by an earlier decision that the cache does not show yet
		}
		return nil, fmt.Errorf("record revision %d of %s: %w", cr.Revision, ro.Name, err)
	}
	rev := &revision{number: cr.Revision, hash: hash, template: *w.deploy.Spec.Template.DeepCopy(), history: cr}
	w.byNumber[rev.number] = rev
	w.byHash[hash] = rev
	return rev, nil
}

// revisionName names a ControllerRevision, within the 253 characters of an object name.
func revisionName(rollout, hash string) string {
	name := rollout
	if len(name) > 240 {
		name = name[:240]
	}
	return name + "-" + hash
}

// replicaSetName names ramp's ReplicaSet of a revision: <deployment>-<hash>, as the
// Deployment controller names its own.
func replicaSetName(deploy, hash string) string {
	if len(deploy) > 240 {
		deploy = deploy[:240]
	}
	return deploy + "-" + hash
}

func (r *Reconciler) setOwner(ro *v1alpha1.Rollout, obj metav1.Object) error {
	gvk := v1alpha1.GroupVersion.WithKind(v1alpha1.KindRollout)
	obj.SetOwnerReferences(append(obj.GetOwnerReferences(), *metav1.NewControllerRef(ro, gvk)))
	return nil
}

// instances turns pods into the engine's instances, grouped by revision number.
func (w *world) instances() map[int64][]podInstance {
	byRS := map[string]int64{}
	for n, rev := range w.byNumber {
		for _, rs := range rev.sets {
			byRS[rs.Name] = n
		}
	}
	out := map[int64][]podInstance{}
	for i := range w.pods {
		p := &w.pods[i]
		ref := metav1.GetControllerOf(p)
		if ref == nil || ref.Kind != "ReplicaSet" {
			continue
		}
		n, ok := byRS[ref.Name]
		if !ok {
			continue
		}
		out[n] = append(out[n], podInstance{pod: p})
	}
	return out
}

// podInstance is one pod as the engine sees it.
type podInstance struct{ pod *corev1.Pod }

// selectorWith returns the Deployment's selector plus one pod-template-hash.
func selectorWith(sel *metav1.LabelSelector, hash string) *metav1.LabelSelector {
	out := sel.DeepCopy()
	if out.MatchLabels == nil {
		out.MatchLabels = map[string]string{}
	}
	out.MatchLabels[appsv1.DefaultDeploymentUniqueLabelKey] = hash
	return out
}

// newReplicaSet is ramp's ReplicaSet for rev: the revision's pod template with the
// pod-template-hash label, and nothing else added, so that the Deployment controller takes it
// as its own new ReplicaSet once ramp hands it over.
func (r *Reconciler) newReplicaSet(ro *v1alpha1.Rollout, w *world, rev *revision, replicas int32) *appsv1.ReplicaSet {
	t := rev.template.DeepCopy()
	t.Labels = labels.Merge(t.Labels, labels.Set{appsv1.DefaultDeploymentUniqueLabelKey: rev.hash})
	rs := &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{
			Name:      replicaSetName(w.deploy.Name, rev.hash),
			Namespace: ro.Namespace,
			Labels:    labels.Merge(t.Labels, labels.Set{LabelRollout: ro.Name}),
			Annotations: map[string]string{
				AnnotationRevision: strconv.FormatInt(rev.number, 10),
				annDesiredReplicas: strconv.Itoa(int(w.replicas())),
				annMaxReplicas:     strconv.Itoa(int(w.replicas() + w.maxSurge())),
			},
		},
		Spec: appsv1.ReplicaSetSpec{
			Replicas:        &replicas,
			MinReadySeconds: w.deploy.Spec.MinReadySeconds,
			Selector:        selectorWith(w.deploy.Spec.Selector, rev.hash),
			Template:        *t,
		},
	}
	_ = r.setOwner(ro, rs)
	return rs
}
