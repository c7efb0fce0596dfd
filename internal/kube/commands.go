package kube

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/control"
	"ramp.dev/ramp/internal/engine"
)

// Commands are Kubernetes mode's side of the control contract (control.Control), which the
// CLI calls against a cluster: each command changes the Rollout (its status through
// the status subresource, or spec.paused) as local mode's backend changes its stored rollout,
// and the controller acts on it at its next decision. Undo writes an older revision's pod
// template into the Deployment, as `kubectl rollout undo` does.
type Commands struct {
	// Client reads and writes the cluster.
	Client client.Client
	// Namespace holds the rollouts.
	Namespace string
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
}

func (c *Commands) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

// ErrApplyWithKubectl is the answer to `ramp apply` in Kubernetes mode.
var ErrApplyWithKubectl = errors.New("in Kubernetes mode rollouts are applied with kubectl apply -f (or your Terraform); ramp apply is for local mode")

func (c *Commands) key(name string) types.NamespacedName {
	return types.NamespacedName{Namespace: c.Namespace, Name: name}
}

// List returns the namespace's rollouts; every namespace's when Namespace is empty.
func (c *Commands) List(ctx context.Context) ([]v1alpha1.Rollout, error) {
	var l v1alpha1.RolloutList
	if err := c.Client.List(ctx, &l, client.InNamespace(c.Namespace)); err != nil {
		where := "namespace " + c.Namespace
		if c.Namespace == "" {
			where = "all namespaces"
		}
		return nil, fmt.Errorf("list rollouts in %s: %w", where, err)
	}
	slices.SortFunc(l.Items, func(a, b v1alpha1.Rollout) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	return l.Items, nil
}

// Get returns one rollout; a missing one is control.ErrNotFound.
func (c *Commands) Get(ctx context.Context, name string) (*v1alpha1.Rollout, error) {
	ro := &v1alpha1.Rollout{}
	if err := c.Client.Get(ctx, c.key(name), ro); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("rollout %s in namespace %s: %w", name, c.Namespace, control.ErrNotFound)
		}
		return nil, fmt.Errorf("get rollout %s: %w", name, err)
	}
	return ro, nil
}

// Apply is refused: see ErrApplyWithKubectl.
func (c *Commands) Apply(ctx context.Context, yaml []byte) ([]string, error) {
	return nil, ErrApplyWithKubectl
}

// updateStatus runs fn on the rollout's status and writes it, again on a write conflict.
func (c *Commands) updateStatus(ctx context.Context, name string, fn func(ro *v1alpha1.Rollout) error) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		ro, err := c.Get(ctx, name)
		if err != nil {
			return err
		}
		if err := fn(ro); err != nil {
			return err
		}
		return c.Client.Status().Update(ctx, ro)
	})
}

// setPaused sets spec.paused.
func (c *Commands) setPaused(ctx context.Context, name string, paused bool) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		ro, err := c.Get(ctx, name)
		if err != nil || ro.Spec.Paused == paused {
			return err
		}
		ro.Spec.Paused = paused
		return c.Client.Update(ctx, ro)
	})
}

// promoteWait bounds how long a promote that comes right after a change of the Deployment's
// pod template waits for the controller to start rolling it out.
const promoteWait = 15 * time.Second

// Promote ends the current step or pause; full skips every remaining step and analysis. A
// promote that comes before the controller has seen a new pod template of the Deployment (a
// pipeline that applies, then promotes at once) waits for it, up to promoteWait, instead of
// failing with "no revision is rolling out".
func (c *Commands) Promote(ctx context.Context, name string, full bool) (string, error) {
	deadline := time.Now().Add(promoteWait)
	for {
		err := c.updateStatus(ctx, name, func(ro *v1alpha1.Rollout) error { return engine.Promote(ro, full) })
		if err == nil {
			break
		}
		if !errors.Is(err, engine.ErrNotInProgress) || time.Now().After(deadline) || !c.templatePending(ctx, name) {
			return "", err
		}
		select {
		case <-ctx.Done():
			return "", err
		case <-time.After(250 * time.Millisecond):
		}
	}
	if full {
		return fmt.Sprintf("rollout/%s promoted (full)", name), nil
	}
	return fmt.Sprintf("rollout/%s promoted", name), nil
}

// Pause holds the rollout where it is.
func (c *Commands) Pause(ctx context.Context, name string) (string, error) {
	if err := c.setPaused(ctx, name, true); err != nil {
		return "", err
	}
	return fmt.Sprintf("rollout/%s paused", name), nil
}

// Resume clears a pause and runs inconclusive analysis again.
func (c *Commands) Resume(ctx context.Context, name string) (string, error) {
	if err := c.updateStatus(ctx, name, func(ro *v1alpha1.Rollout) error { engine.Resume(ro); return nil }); err != nil {
		return "", err
	}
	if err := c.setPaused(ctx, name, false); err != nil {
		return "", err
	}
	return fmt.Sprintf("rollout/%s resumed", name), nil
}

// Abort sends all traffic to stable and stops the new revision.
func (c *Commands) Abort(ctx context.Context, name string) (string, error) {
	if err := c.updateStatus(ctx, name, engine.Abort); err != nil {
		return "", err
	}
	return fmt.Sprintf("rollout/%s aborted", name), nil
}

// Retry runs an aborted revision again from its first step.
func (c *Commands) Retry(ctx context.Context, name string) (string, error) {
	if err := c.updateStatus(ctx, name, func(ro *v1alpha1.Rollout) error { return engine.Retry(ro, c.now()) }); err != nil {
		return "", err
	}
	return fmt.Sprintf("rollout/%s retrying", name), nil
}

// templatePending reports whether the Deployment of rollout name has a pod template that
// the controller has not made the rollout's current revision yet. Any error reads as false:
// the caller then reports what it had.
func (c *Commands) templatePending(ctx context.Context, name string) bool {
	ro, err := c.Get(ctx, name)
	if err != nil || ro.Spec.WorkloadRef == nil {
		return false
	}
	var d appsv1.Deployment
	if err := c.Client.Get(ctx, types.NamespacedName{Namespace: c.Namespace, Name: ro.Spec.WorkloadRef.Name}, &d); err != nil {
		return false
	}
	crs, err := c.revisions(ctx, ro)
	if err != nil {
		return false
	}
	hash := TemplateHash(&d.Spec.Template)
	for _, cr := range crs {
		if cr.Labels[LabelTemplateHash] == hash {
			return cr.Revision != ro.Status.CurrentRevision
		}
	}
	return true // no revision of this template yet
}

// revisions returns the rollout's ControllerRevisions, oldest first.
func (c *Commands) revisions(ctx context.Context, ro *v1alpha1.Rollout) ([]appsv1.ControllerRevision, error) {
	var l appsv1.ControllerRevisionList
	if err := c.Client.List(ctx, &l, client.InNamespace(c.Namespace), client.MatchingLabels{LabelRollout: ro.Name}); err != nil {
		return nil, fmt.Errorf("list revisions of %s: %w", ro.Name, err)
	}
	out := slices.DeleteFunc(l.Items, func(cr appsv1.ControllerRevision) bool { return !ownedBy(&cr, ro.UID) })
	slices.SortFunc(out, func(a, b appsv1.ControllerRevision) int { return cmp.Compare(a.Revision, b.Revision) })
	return out, nil
}

// History lists the rollout's revisions, oldest first.
func (c *Commands) History(ctx context.Context, name string) ([]control.Revision, error) {
	ro, err := c.Get(ctx, name)
	if err != nil {
		return nil, err
	}
	crs, err := c.revisions(ctx, ro)
	if err != nil {
		return nil, err
	}
	out := make([]control.Revision, 0, len(crs))
	for _, cr := range crs {
		out = append(out, control.Revision{
			Rollout: name, Number: cr.Revision, Hash: cr.Labels[LabelTemplateHash],
			CreatedAt: cr.CreationTimestamp.Time, Cause: cr.Annotations[AnnotationCause],
		})
	}
	return out, nil
}

// Restart asks for new pods of the stable revision (spec.restartAt; see engine.Restart): the
// controller evicts the pods started before it, maxUnavailable at a time, and the
// Deployment's ReplicaSet replaces them.
func (c *Commands) Restart(ctx context.Context, name string) (string, error) {
	var msg string
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		ro, err := c.Get(ctx, name)
		if err != nil {
			return err
		}
		if msg, err = engine.Restart(ro, c.now()); err != nil {
			return err
		}
		return c.Client.Update(ctx, ro)
	})
	if err != nil {
		return "", err
	}
	return msg, nil
}

// Undo writes revision toRevision's pod template (0: the newest before the current) into the
// Deployment. A template other than the stable one becomes a new revision, which rolls out
// with the rollout's strategy; the Deployment then carries the undo's cause in
// kubernetes.io/change-cause (which it copies to the ReplicaSet of that template, so that
// `kubectl rollout history` shows it) and ramp.dev/change-cause-template, which lets the
// controller take the cause off again once the template changes, so that it never shows on
// later revisions.
func (c *Commands) Undo(ctx context.Context, name string, toRevision int64) (control.UndoResult, error) {
	ro, err := c.Get(ctx, name)
	if err != nil {
		return control.UndoResult{}, err
	}
	if ro.Spec.WorkloadRef == nil {
		return control.UndoResult{}, fmt.Errorf("undo %s: the rollout has no spec.workloadRef", name)
	}
	crs, err := c.revisions(ctx, ro)
	if err != nil {
		return control.UndoResult{}, err
	}
	var target *appsv1.ControllerRevision
	current := ro.Status.CurrentRevision
	for i := len(crs) - 1; i >= 0; i-- {
		cr := &crs[i]
		if toRevision == 0 && cr.Revision < current || toRevision != 0 && cr.Revision == toRevision {
			target = cr
			break
		}
	}
	switch {
	case target == nil && toRevision == 0:
		return control.UndoResult{}, fmt.Errorf("undo %s: no revision before %d", name, current)
	case target == nil:
		return control.UndoResult{}, fmt.Errorf("undo %s: revision %d: %w", name, toRevision, control.ErrNotFound)
	case target.Revision == current:
		return control.UndoResult{}, fmt.Errorf("undo %s: revision %d is already the current revision", name, target.Revision)
	}
	var tmpl corev1.PodTemplateSpec
	if err := json.Unmarshal(target.Data.Raw, &tmpl); err != nil {
		return control.UndoResult{}, fmt.Errorf("undo %s: decode revision %d: %w", name, target.Revision, err)
	}
	stable := target.Revision == ro.Status.StableRevision
	hash := TemplateHash(&tmpl)
	var deployRev string
	var revErr error
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		d := &appsv1.Deployment{}
		if err := c.Client.Get(ctx, c.key(ro.Spec.WorkloadRef.Name), d); err != nil {
			return err
		}
		// Without the right to list ReplicaSets the undo goes on, naming ramp's number only.
		deployRev, revErr = c.deploymentRevision(ctx, d, hash)
		d.Spec.Template = tmpl
		if d.Annotations == nil {
			d.Annotations = map[string]string{}
		}
		switch {
		case !stable:
			d.Annotations[annChangeCause] = undoCause(target.Revision, deployRev, revErr == nil)
			d.Annotations[AnnotationChangeCauseTemplate] = hash
		case staleUndoCause(d): // (d has the new template already)
			// Back to stable, whose ReplicaSet keeps the cause it has: an earlier undo's
			// cause must not reach it (the Deployment copies its change-cause onto the
			// ReplicaSet of its template at once, paused or not).
			if strings.HasPrefix(d.Annotations[annChangeCause], undoCausePrefix) {
				delete(d.Annotations, annChangeCause)
			}
			delete(d.Annotations, AnnotationChangeCauseTemplate)
		}
		return c.Client.Update(ctx, d)
	})
	if err != nil {
		return control.UndoResult{}, fmt.Errorf("undo %s: write the template of revision %d into deployment %s: %w", name, target.Revision, ro.Spec.WorkloadRef.Name, err)
	}
	res := control.UndoResult{Target: target.Revision, Revision: target.Revision}
	switch {
	case revErr != nil:
		res.Note = fmt.Sprintf("its number in kubectl rollout history is not known: %s", revErr.Error())
	case deployRev != "":
		res.Note = fmt.Sprintf("ramp revision %d is revision %s in kubectl rollout history deployment/%s", target.Revision, deployRev, ro.Spec.WorkloadRef.Name)
	}
	if stable {
		return res, nil
	}
	highest := max(current, ro.Status.StableRevision)
	for _, cr := range crs {
		highest = max(highest, cr.Revision)
	}
	res.Revision, res.New = highest+1, true
	return res, nil
}

// undoCause is the change-cause of an undo to ramp revision n, which the Deployment knows as
// deployRev (empty: it never ran it; known false: its number could not be read).
func undoCause(n int64, deployRev string, known bool) string {
	if !known {
		return fmt.Sprintf("%sramp revision %d", undoCausePrefix, n)
	}
	if deployRev == "" {
		return fmt.Sprintf("%sramp revision %d (never run by the deployment before)", undoCausePrefix, n)
	}
	return fmt.Sprintf("%sramp revision %d (deployment revision %s)", undoCausePrefix, n, deployRev)
}

// deploymentRevision is the Deployment's revision number (deployment.kubernetes.io/revision,
// as kubectl rollout history shows it) of its ReplicaSet with the template of ramp's hash;
// empty when it has none.
func (c *Commands) deploymentRevision(ctx context.Context, d *appsv1.Deployment, hash string) (string, error) {
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil {
		return "", fmt.Errorf("deployment %s: selector: %w", d.Name, err)
	}
	var sets appsv1.ReplicaSetList
	if err := c.Client.List(ctx, &sets, client.InNamespace(d.Namespace), client.MatchingLabelsSelector{Selector: sel}); err != nil {
		return "", fmt.Errorf("list replicasets of %s: %w", d.Name, err)
	}
	for i := range sets.Items {
		rs := &sets.Items[i]
		if v := rs.Annotations[annDeploymentRevision]; v != "" && TemplateHash(&rs.Spec.Template) == hash {
			return v, nil
		}
	}
	return "", nil
}

// Events lists the events recorded on the rollout, oldest first; afterSeq skips the first
// ones.
func (c *Commands) Events(ctx context.Context, name string, afterSeq uint64) ([]control.Event, error) {
	ro, err := c.Get(ctx, name)
	if err != nil {
		return nil, err
	}
	var l corev1.EventList
	if err := c.Client.List(ctx, &l, client.InNamespace(c.Namespace)); err != nil {
		return nil, fmt.Errorf("list events of %s: %w", name, err)
	}
	var out []control.Event
	for _, e := range l.Items {
		if e.InvolvedObject.UID != ro.UID {
			continue
		}
		t := e.EventTime.Time
		if t.IsZero() {
			t = e.LastTimestamp.Time
		}
		if t.IsZero() {
			t = e.CreationTimestamp.Time
		}
		out = append(out, control.Event{Time: t, Rollout: name, Type: e.Type, Reason: e.Reason, Message: e.Message})
	}
	slices.SortStableFunc(out, func(a, b control.Event) int { return a.Time.Compare(b.Time) })
	for i := range out {
		out[i].Seq = uint64(i + 1)
	}
	if afterSeq >= uint64(len(out)) {
		return nil, nil
	}
	return out[afterSeq:], nil
}

var _ control.Control = (*Commands)(nil)
