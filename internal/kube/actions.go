package kube

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/engine"
)

// carryOut makes the cluster match the decision out: the Deployment paused, ramp's ReplicaSets
// at their replica counts, a promoted ReplicaSet handed over to the Deployment, the Services'
// selectors and the router's routes. It goes on after an error and returns them all.
func (r *Reconciler) carryOut(ctx context.Context, ro *v1alpha1.Rollout, before *v1alpha1.RolloutStatus, w *world, out engine.Output) error {
	if isRolling(ro) {
		return r.carryOutRolling(ctx, ro, w, out.Workload)
	}
	var errs []error
	// The previous decision's mirror, as the canary's ReplicaSet was then: before scale makes
	// one.
	mirror := mirrors{prev: mirrorPercent(engine.MirrorOf(&ro.Spec, before), w)}
	if err := r.pauseDeployment(ctx, ro, w); err != nil {
		errs = append(errs, err)
	}
	if err := r.scale(ctx, ro, w, out); err != nil {
		errs = append(errs, err)
	}
	if err := r.reportOnDeployment(ctx, ro, w); err != nil {
		errs = append(errs, err)
	}
	// Copies stop before a selector moves: when the decision drops the mirror (a promotion,
	// an abort), the canary Service may next select stable's pods, which must get no copy.
	if ro.Spec.Strategy.Canary != nil && ro.Spec.Strategy.Canary.Mirror != nil && out.Routes.Mirror == nil {
		dropped, err := r.dropMirror(ctx, ro)
		if err != nil {
			errs = append(errs, err)
		} else if dropped {
			mirror.prev = 0
		}
	}
	if err := r.setSelectors(ctx, ro, w, out.Routes); err != nil {
		errs = append(errs, err)
	}
	mirror.want = mirrorPercent(out.Routes.Mirror, w)
	if err := r.route(ctx, ro, before, out, mirror); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// pauseDeployment pauses the Deployment once a stable revision exists, so that the Deployment
// controller does not roll out a changed template by itself. Before that, the Deployment
// deploys its first revision on its own: there is nothing to compare it with.
func (r *Reconciler) pauseDeployment(ctx context.Context, ro *v1alpha1.Rollout, w *world) error {
	d := w.deploy
	if by := d.Annotations[AnnotationPausedBy]; by != "" && by != ro.Name {
		return fmt.Errorf("deployment %s is managed by rollout %s", d.Name, by)
	}
	if ro.Status.StableRevision == 0 || d.Spec.Paused && d.Annotations[AnnotationPausedBy] == ro.Name {
		return nil
	}
	patch := client.MergeFrom(d.DeepCopy())
	d.Spec.Paused = true
	if d.Annotations == nil {
		d.Annotations = map[string]string{}
	}
	d.Annotations[AnnotationPausedBy] = ro.Name
	if err := r.client.Patch(ctx, d, patch); err != nil {
		return fmt.Errorf("pause deployment %s: %w", d.Name, err)
	}
	return nil
}

// Reasons of the Deployment's Progressing condition (k8s.io/kubernetes/pkg/controller/deployment/util).
const (
	reasonTimedOut = "ProgressDeadlineExceeded"
	reasonPaused   = "DeploymentPaused"
	// abortPrefix starts the message ramp writes, so that it can take it back.
	abortPrefix = "ramp aborted revision "
)

// reportOnDeployment tells the team's tools what happened to the Deployment's template: while
// ramp's abort of it stands, the Deployment's Progressing condition says
// ProgressDeadlineExceeded, so that `kubectl rollout status` stops waiting and fails as it does
// when a Deployment's own rollout fails. A new attempt takes the condition back.
func (r *Reconciler) reportOnDeployment(ctx context.Context, ro *v1alpha1.Rollout, w *world) error {
	d := w.deploy
	st := &ro.Status
	var cur *appsv1.DeploymentCondition
	for i := range d.Status.Conditions {
		if d.Status.Conditions[i].Type == appsv1.DeploymentProgressing {
			cur = &d.Status.Conditions[i]
		}
	}
	ours := cur != nil && cur.Reason == reasonTimedOut && strings.HasPrefix(cur.Message, abortPrefix)
	aborted := st.Abort && st.AbortedRevision == w.current.number && st.StableRevision != 0
	var want appsv1.DeploymentCondition
	switch {
	case aborted:
		want = appsv1.DeploymentCondition{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionFalse, Reason: reasonTimedOut,
			Message: fmt.Sprintf("%s%d: %s; traffic is on revision %d (ramp retry %s runs it again)", abortPrefix, st.AbortedRevision, strings.TrimPrefix(st.Message, "aborted: "), st.StableRevision, ro.Name)}
		if ours && cur.Message == want.Message {
			return nil
		}
	case ours:
		want = appsv1.DeploymentCondition{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionUnknown, Reason: reasonPaused, Message: "Deployment is paused"}
	default:
		return nil
	}
	now := metav1.NewTime(r.now())
	want.LastUpdateTime, want.LastTransitionTime = now, now
	patch := client.MergeFrom(d.DeepCopy())
	d.Status.Conditions = slices.DeleteFunc(d.Status.Conditions, func(c appsv1.DeploymentCondition) bool { return c.Type == appsv1.DeploymentProgressing })
	d.Status.Conditions = append(d.Status.Conditions, want)
	if err := r.client.Status().Patch(ctx, d, patch); err != nil {
		return fmt.Errorf("set progressing condition of deployment %s: %w", d.Name, err)
	}
	return nil
}

// keeper is the one ReplicaSet that should run the stable revision rev: of all its
// ReplicaSets (ramp's and the Deployment's), the one with the most available pods, then the
// most replicas, then the Deployment's. The others of its template are duplicates and go: the
// Deployment controller finds its new ReplicaSet by template, and two ReplicaSets of one
// template run the revision twice over. Nil when rev runs nowhere.
func (w *world) keeper(ro *v1alpha1.Rollout, rev *revision) *appsv1.ReplicaSet {
	if rev == nil {
		return nil
	}
	var best *appsv1.ReplicaSet
	for _, rs := range rev.sets {
		switch {
		case best == nil,
			rs.Status.AvailableReplicas > best.Status.AvailableReplicas,
			rs.Status.AvailableReplicas == best.Status.AvailableReplicas && replicasOf(rs) > replicasOf(best),
			rs.Status.AvailableReplicas == best.Status.AvailableReplicas && replicasOf(rs) == replicasOf(best) && w.deploymentOwns(rs) && !w.deploymentOwns(best):
			best = rs
		}
	}
	return best
}

// deploymentServes reports whether the Deployment runs rev: its keeper is the Deployment's.
func (w *world) deploymentServes(ro *v1alpha1.Rollout, rev *revision) bool {
	k := w.keeper(ro, rev)
	return k != nil && w.deploymentOwns(k)
}

// settled reports whether the Deployment controller leaves the Deployment's ReplicaSets as
// they are: the Deployment is paused and the controller has seen it (a paused Deployment is
// only scaled, never rolled, and gets no new ReplicaSet). Until then, a ReplicaSet of the
// Deployment that ramp deleted could be made again at once.
func (w *world) settled() bool {
	d := w.deploy
	return d.Spec.Paused && d.Status.ObservedGeneration >= d.Generation
}

// scale sets the replica counts of ramp's ReplicaSets from out.Scale, removes duplicates
// (never two ReplicaSets of one template), and hands a promoted one over to the Deployment.
func (r *Reconciler) scale(ctx context.Context, ro *v1alpha1.Rollout, w *world, out engine.Output) error {
	st := &ro.Status
	var errs []error
	if st.StableRevision == 0 {
		// The first revision: the Deployment deploys it by itself, and ramp runs nothing of
		// its own (after a re-created Deployment, what ramp ran of the old one goes).
		for _, rs := range w.sets {
			if w.isOurs(ro, rs) {
				if err := r.client.Delete(ctx, rs); err != nil && !apierrors.IsNotFound(err) {
					errs = append(errs, fmt.Errorf("delete replicaset %s: %w", rs.Name, err))
				}
			}
		}
		return errors.Join(errs...)
	}
	stable := w.byNumber[st.StableRevision]
	stableKeep := w.keeper(ro, stable)
	deployServesStable := stableKeep != nil && w.deploymentOwns(stableKeep)
	// The engine sizes the canary, also when plain Services carry its weight by pod counts
	// (Capabilities.WeightsByReplicas), so the status's desired counts are the real ones.
	want := func(n int64) int32 { return out.Scale[n] }
	// ramp runs rev in a ReplicaSet of its own (a canary, a preview, a promoted revision
	// before the hand-over): any ReplicaSet of the Deployment with its template is a
	// duplicate.
	rampRuns := func(rev *revision) bool {
		if rev == nil {
			return false
		}
		if rev == stable {
			return !deployServesStable
		}
		return want(rev.number) > 0 || slices.ContainsFunc(rev.sets, func(rs *appsv1.ReplicaSet) bool { return w.isOurs(ro, rs) })
	}
	settled := w.settled()

	for _, rs := range w.sets {
		hash := TemplateHash(&rs.Spec.Template)
		rev := w.byHash[hash]
		if w.deploymentOwns(rs) {
			if rs == stableKeep {
				continue
			}
			if rampRuns(rev) || rev != nil && rev == stable {
				// What the Deployment controller started of a template ramp runs itself (a
				// Terraform-style unpause with a new template), or a second ReplicaSet of
				// stable's. Once the Deployment is paused and the controller has seen it,
				// ramp adopts one that runs pods when it has no ReplicaSet of that revision
				// yet (they serve the canary or preview, none restarts); an empty one (the
				// Deployment's history of that template, as after an undo) is taken over
				// below and given back later, so the Deployment's history keeps it; any
				// other is a duplicate and goes.
				if !settled {
					continue
				}
				if rev != stable && !slices.ContainsFunc(rev.sets, func(rs *appsv1.ReplicaSet) bool { return w.isOurs(ro, rs) }) {
					if replicasOf(rs) == 0 {
						continue // taken over below
					}
					if err := r.adopt(ctx, ro, rev, rs, nil); err != nil {
						errs = append(errs, err)
					} else {
						r.log.Info("replicaset of the deployment adopted", keyRollout, ro.Name, "replicaset", rs.Name, keyRevision, rev.number)
					}
					continue
				}
				if err := r.client.Delete(ctx, rs); err != nil && !apierrors.IsNotFound(err) {
					errs = append(errs, fmt.Errorf("delete replicaset %s of deployment %s, a duplicate of revision %d: %w", rs.Name, w.deploy.Name, rev.number, err))
				} else {
					r.log.Info("duplicate replicaset deleted", keyRollout, ro.Name, "replicaset", rs.Name, keyRevision, rev.number)
				}
				continue
			}
			// The Deployment's other ReplicaSets (its history, or a rollout it began before
			// ramp paused it) stop, once the Deployment runs stable alone so that it does
			// not scale them back up.
			if replicasOf(rs) == 0 || !deployServesStable || !w.deploy.Spec.Paused {
				continue
			}
			if err := r.setReplicas(ctx, rs, 0); err != nil {
				errs = append(errs, err)
			}
			continue
		}
		if !w.isOurs(ro, rs) {
			continue
		}
		n := int64(0)
		if rev != nil {
			n = rev.number
		}
		target := want(n)
		if rev != nil && rev == stable && rs != stableKeep {
			target = 0 // the Deployment runs stable: ramp's copy is a duplicate
		}
		if target == 0 && (n != st.StableRevision && n != st.CurrentRevision || rev == stable && rs != stableKeep) {
			if ranByDeployment(rs) {
				// Taken over from the Deployment (its history, as for an undo) and no longer
				// run: it goes back to the Deployment, not away.
				if err := r.giveBack(ctx, ro, rs); err != nil {
					errs = append(errs, err)
				}
				continue
			}
			if err := r.client.Delete(ctx, rs); err != nil && !apierrors.IsNotFound(err) {
				errs = append(errs, fmt.Errorf("delete replicaset %s: %w", rs.Name, err))
			}
			continue
		}
		if err := r.setReplicas(ctx, rs, target); err != nil {
			errs = append(errs, err)
		}
	}

	// Revisions that should run and have no ReplicaSet of ramp's yet.
	for n := range out.Scale {
		target := want(n)
		rev := w.byNumber[n]
		if rev == nil || target == 0 || (rev == stable && deployServesStable) {
			continue
		}
		if slices.ContainsFunc(rev.sets, func(rs *appsv1.ReplicaSet) bool { return w.isOurs(ro, rs) }) {
			continue
		}
		// Not while the Deployment controller may still roll (it would make its own
		// ReplicaSet of this template beside ramp's). An old ReplicaSet of the Deployment with
		// this template (its history, as after an undo) would be taken for the Deployment's new
		// one on hand-over: ramp takes it over and runs the revision in it, so that the
		// Deployment's history keeps it (see undo.go); one with pods was adopted above.
		if !settled {
			continue
		}
		blocked := false
		for _, rs := range rev.sets {
			if !w.deploymentOwns(rs) {
				continue
			}
			blocked = true
			if replicasOf(rs) > 0 {
				break // adopted above, or on a later pass
			}
			if err := r.takeOver(ctx, ro, rs, rev, target); err != nil {
				errs = append(errs, err)
			}
			break
		}
		if blocked {
			continue
		}
		rs := r.newReplicaSet(ro, w, rev, target)
		if err := r.client.Create(ctx, rs); err != nil {
			if apierrors.IsAlreadyExists(err) {
				errs = append(errs, errStale) // created by an earlier decision; the cache lags
			} else {
				errs = append(errs, fmt.Errorf("create replicaset %s for revision %d: %w", rs.Name, n, err))
			}
			continue
		}
		rev.sets = append(rev.sets, rs)
		w.sets = append(w.sets, rs)
	}

	// Hand-over: the promoted revision runs in ramp's ReplicaSet at the Deployment's full size,
	// it is the only ReplicaSet of its template, and nothing else should run.
	if stableKeep != nil && w.isOurs(ro, stableKeep) && len(stable.sets) == 1 && len(out.Scale) == 1 &&
		TemplateHash(&w.deploy.Spec.Template) == stable.hash && saturated(stableKeep, w.replicas()) {
		rs := stableKeep
		if err := r.handOver(ctx, rs, w.deploy); err != nil {
			errs = append(errs, err)
		} else {
			w.events = append(w.events, engine.Event{Type: engine.EventNormal, Reason: "HandedOver", Revision: stable.number,
				Message: fmt.Sprintf("replicaset %s of revision %d now belongs to deployment %s", rs.Name, stable.number, w.deploy.Name)})
		}
	}
	return errors.Join(errs...)
}

// adopt takes rs, a ReplicaSet of the Deployment with rev's template, as ramp's ReplicaSet of
// rev, and sets its size when replicas is not nil. The write carries rs's resource version,
// so a change by the Deployment controller in between makes it decide again.
func (r *Reconciler) adopt(ctx context.Context, ro *v1alpha1.Rollout, rev *revision, rs *appsv1.ReplicaSet, replicas *int32) error {
	patch := client.MergeFromWithOptions(rs.DeepCopy(), client.MergeFromWithOptimisticLock{})
	rs.OwnerReferences = slices.DeleteFunc(rs.OwnerReferences, func(o metav1.OwnerReference) bool { return o.Controller != nil && *o.Controller })
	if err := r.setOwner(ro, rs); err != nil {
		return err
	}
	if rs.Labels == nil {
		rs.Labels = map[string]string{}
	}
	rs.Labels[LabelRollout] = ro.Name
	if rs.Annotations == nil {
		rs.Annotations = map[string]string{}
	}
	rs.Annotations[AnnotationRevision] = strconv.FormatInt(rev.number, 10)
	if replicas != nil {
		rs.Spec.Replicas = replicas
	}
	if err := r.client.Patch(ctx, rs, patch); err != nil {
		return fmt.Errorf("adopt replicaset %s of deployment %s for revision %d: %w", rs.Name, ro.Spec.WorkloadRef.Name, rev.number, err)
	}
	return nil
}

// saturated reports whether rs runs n available pods at its current spec.
func saturated(rs *appsv1.ReplicaSet, n int32) bool {
	return replicasOf(rs) == n && rs.Status.ObservedGeneration >= rs.Generation && rs.Status.AvailableReplicas >= n
}

func (r *Reconciler) setReplicas(ctx context.Context, rs *appsv1.ReplicaSet, n int32) error {
	if replicasOf(rs) == n {
		return nil
	}
	patch := client.MergeFrom(rs.DeepCopy())
	rs.Spec.Replicas = &n
	if err := r.client.Patch(ctx, rs, patch); err != nil {
		return fmt.Errorf("scale replicaset %s to %d: %w", rs.Name, n, err)
	}
	return nil
}

// handOver gives rs to Deployment d: without an owner, and with the replica annotations of a
// saturated new ReplicaSet, the Deployment controller adopts it as its new ReplicaSet and
// scales the old ones down.
func (r *Reconciler) handOver(ctx context.Context, rs *appsv1.ReplicaSet, d *appsv1.Deployment) error {
	n := int32(1)
	if d.Spec.Replicas != nil {
		n = *d.Spec.Replicas
	}
	w := &world{deploy: d}
	patch := client.MergeFrom(rs.DeepCopy())
	rs.OwnerReferences = slices.DeleteFunc(rs.OwnerReferences, func(o metav1.OwnerReference) bool {
		return o.APIVersion == v1alpha1.APIVersion && o.Kind == v1alpha1.KindRollout
	})
	if rs.Annotations == nil {
		rs.Annotations = map[string]string{}
	}
	rs.Annotations[annDesiredReplicas] = strconv.Itoa(int(n))
	rs.Annotations[annMaxReplicas] = strconv.Itoa(int(n + w.maxSurge()))
	if err := r.client.Patch(ctx, rs, patch); err != nil {
		return fmt.Errorf("hand replicaset %s over to deployment %s: %w", rs.Name, d.Name, err)
	}
	return nil
}

// setSelectors points the stable/canary (or active/preview) Services at the pods of the
// revisions the decision's routes give them. A Service whose revision runs nowhere yet (no
// ReplicaSet, so no pod-template-hash to select) selects the stable (or active) revision's
// pods; one with neither keeps its selector.
func (r *Reconciler) setSelectors(ctx context.Context, ro *v1alpha1.Rollout, w *world, routes engine.Routes) error {
	hashOf := func(n int64) string { return w.byNumber[n].podHash() }
	type target struct{ svc, hash string }
	var targets []target
	stable := hashOf(routes.Stable)
	other := func(n int64) string {
		if h := hashOf(n); n != 0 && h != "" {
			return h
		}
		return stable
	}
	if c := ro.Spec.Strategy.Canary; c != nil {
		targets = append(targets, target{c.StableService, stable}, target{c.CanaryService, other(routes.Canary)})
	}
	if bg := ro.Spec.Strategy.BlueGreen; bg != nil {
		targets = append(targets, target{bg.ActiveService, stable}, target{bg.PreviewService, other(routes.Preview)})
	}
	var errs []error
	for _, t := range targets {
		if t.svc == "" || t.hash == "" {
			continue
		}
		changed, err := SetServiceSelector(ctx, r.client, ro.Namespace, t.svc, t.hash)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if changed {
			r.log.Info("service selector set", keyRollout, ro.Name, "service", t.svc, "podTemplateHash", t.hash)
		}
	}
	return errors.Join(errs...)
}

// dropMirror takes the mirror off the canary's router when the routing object has one, and
// leaves its weights and header routes as they are; route then sets this decision's. It
// says whether it took one off.
func (r *Reconciler) dropMirror(ctx context.Context, ro *v1alpha1.Rollout) (bool, error) {
	name := RouterName(ro)
	if name == "" {
		return false, nil
	}
	router, err := NewRouter(name, r.client)
	if err != nil {
		return false, err
	}
	got, err := router.ObservedRoutes(ctx, ro)
	if err != nil || got.MirrorPercent == 0 {
		return false, nil // nothing to take off, or route reads and reports it
	}
	got.MirrorPercent = 0
	if err := router.SetRoutes(ctx, ro, got); err != nil {
		return false, fmt.Errorf("stop the mirror with %s router: %w", name, err)
	}
	return true, nil
}

// route gives the canary's router the decision's weight, header routes and mirror. Before it
// does, it reads back what the traffic layer does and reports drift from what the previous
// decision set (before), which SetRoutes then repairs.
func (r *Reconciler) route(ctx context.Context, ro *v1alpha1.Rollout, before *v1alpha1.RolloutStatus, out engine.Output, mirror mirrors) error {
	c := ro.Spec.Strategy.Canary
	if c == nil {
		return nil
	}
	name := RouterName(ro)
	if name == "" {
		name = "service"
	}
	router, err := NewRouter(name, r.client)
	if err != nil {
		return err
	}
	want := Routes{StableService: c.StableService, CanaryService: c.CanaryService}
	if rt := out.Routes; rt.Canary != 0 && rt.Canary != rt.Stable {
		want.CanaryWeight = rt.Weights[rt.Canary]
	}
	for _, hr := range out.Routes.HeaderRoutes {
		want.HeaderRoutes = append(want.HeaderRoutes, v1alpha1.SetHeaderRoute{Name: hr.Name, Match: hr.Match})
	}
	want.MirrorPercent = mirror.want
	if name != "service" && before.CanaryRevision != 0 {
		prev := Routes{StableService: c.StableService, CanaryService: c.CanaryService, CanaryWeight: before.CanaryWeight, HeaderRoutes: before.HeaderRoutes,
			MirrorPercent: mirror.prev}
		got, err := router.ObservedRoutes(ctx, ro)
		mirrorUnknown := mirror.prevUnknown || ro.Generation != before.ObservedGeneration
		if mirrorUnknown {
			prev.MirrorPercent = got.MirrorPercent // not known here (or set for an older spec)
		}
		if err == nil && r.live != nil && Drift(prev, got) != "" {
			// The cache may lag behind ramp's own last write: only a drift that the API
			// server itself shows is one.
			if live, lerr := NewRouter(name, liveReads{Client: r.client, live: r.live}); lerr == nil {
				got, err = live.ObservedRoutes(ctx, ro)
				if mirrorUnknown {
					prev.MirrorPercent = got.MirrorPercent
				}
			}
		}
		if err != nil {
			r.log.Warn("read back routes", keyRollout, ro.Name, "router", name, "err", err)
		} else if d := Drift(prev, got); d != "" && Drift(want, got) != "" {
			// A layer that already routes as this decision wants has nothing to repair: so a
			// decision from a cached Rollout older than the routes it set reports no drift.
			r.record(ro, corev1.EventTypeWarning, "TrafficDrift", fmt.Sprintf("%s router does not route as ramp set it (%s); setting it again", name, d), before.CanaryRevision)
		}
	}
	if err := router.SetRoutes(ctx, ro, want); err != nil {
		return fmt.Errorf("set routes with %s router: %w", name, err)
	}
	return nil
}

// liveReads is a client whose reads go to the API server (live) instead of the cache; its
// writes go through Client.
type liveReads struct {
	client.Client
	live client.Reader
}

func (l liveReads) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	return l.live.Get(ctx, key, obj, opts...)
}

func (l liveReads) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	return l.live.List(ctx, list, opts...)
}

// mirrors are the shares of requests copied to the canary Service (percent): prev by the
// previous decision (not known when prevUnknown), want by this one.
type mirrors struct {
	prev, want  int32
	prevUnknown bool
}

// mirrorPercent is the share of requests m copies to the canary Service: none unless the
// canary's ReplicaSet exists, for until then the canary Service selects stable's pods
// (setSelectors) and the copies would reach them.
func mirrorPercent(m *engine.Mirror, w *world) int32 {
	if m == nil || w == nil || w.byNumber[m.Revision].podHash() == "" {
		return 0
	}
	return m.Percent
}
