package kube

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/analysis"
	"ramp.dev/ramp/internal/driver"
	"ramp.dev/ramp/internal/engine"
	"ramp.dev/ramp/internal/spec"
)

// mode is Kubernetes mode for the driver, for one reconcile of one Rollout: the Deployment,
// ramp's ReplicaSets and ControllerRevisions, the Services and the traffic router.
type mode struct {
	r   *Reconciler
	key types.NamespacedName
	// before is the Rollout's status as read, before the reconcile changed anything.
	before *v1alpha1.RolloutStatus
	// w is what Observe saw; nil until then.
	w *world
	// conditions are the status conditions as Observe left them: the engine does not set
	// them, CarryOut does.
	conditions []metav1.Condition
	// stopped is what Reconcile returns when Observe ended the reconcile (errStopped).
	stopped ctrl.Result
	stopErr error
	// actErr is the error of carrying out the decision; quietRetry says an error that calls
	// for a quiet retry was dropped.
	actErr     error
	quietRetry bool
	// persisted says the status changed and was written.
	persisted bool
}

var _ driver.Mode = (*mode)(nil)

// errStopped means Observe ended the reconcile before a decision: mode.stopped and
// mode.stopErr say what Reconcile returns.
var errStopped = errors.New("reconcile ended before a decision")

// stop ends the reconcile in Observe with res and err.
func (m *mode) stop(res ctrl.Result, err error) (engine.Input, error) {
	m.stopped, m.stopErr = res, err
	return engine.Input{}, errStopped
}

// Observe validates the spec, reads the Deployment, its ReplicaSets and pods and the
// revision history, claims the Deployment, and returns the engine's input: a copy of ro
// with the replicas and deadlines the Deployment has, and what the mode can do. A spec or
// world the engine cannot decide on ends the reconcile here, with the status saying why.
func (m *mode) Observe(ctx context.Context, ro *v1alpha1.Rollout) (engine.Input, error) {
	r, before := m.r, m.before
	if errs := append(append(Validate(ro), r.traffic.validate(ro)...), r.validateTemplates(ctx, ro)...); len(errs) > 0 {
		msg := errs.Error()
		if r.setCondition(ro, v1alpha1.ConditionValid, false, "InvalidSpec", msg) {
			r.recorder.Eventf(ro, nil, corev1.EventTypeWarning, "InvalidSpec", "Validate", "%s", msg)
		}
		ro.Status.Message = "invalid spec: " + msg
		return m.stop(ctrl.Result{}, r.writeStatus(ctx, ro, before))
	}
	r.setCondition(ro, v1alpha1.ConditionValid, true, "Valid", "the spec is valid")

	w, err := r.observe(ctx, ro)
	if transient(err) {
		return m.stop(ctrl.Result{RequeueAfter: retrySoon}, nil)
	}
	if w == nil && err == nil && ro.Status.StableRevision != 0 {
		return m.stop(ctrl.Result{}, r.workloadGone(ctx, ro, before))
	}
	if w == nil {
		reason, msg := "WorkloadNotFound", fmt.Sprintf("deployment %s not found in namespace %s", ro.Spec.WorkloadRef.Name, ro.Namespace)
		if err != nil {
			reason, msg = "ObserveFailed", err.Error()
		}
		if r.setCondition(ro, v1alpha1.ConditionReconciled, false, reason, msg) {
			r.recorder.Eventf(ro, nil, corev1.EventTypeWarning, reason, "Observe", "%s", msg)
		}
		if werr := r.writeStatus(ctx, ro, before); werr != nil {
			return m.stop(ctrl.Result{}, werr)
		}
		return m.stop(ctrl.Result{}, err) // a missing Deployment is watched for; an error retries
	}

	other, err := r.otherManager(ctx, ro, w.deploy)
	if err != nil {
		return m.stop(ctrl.Result{}, err)
	}
	if other != "" {
		// A second Rollout of a Deployment: refused, so that two rollouts never drive one
		// Deployment and this one never shows a health that is not its own.
		msg := fmt.Sprintf("deployment %s is already managed by rollout %s: this rollout leaves it alone (delete one of the two Rollouts)", w.deploy.Name, other)
		if r.setCondition(ro, v1alpha1.ConditionValid, false, "DeploymentInUse", msg) {
			r.recorder.Eventf(ro, nil, corev1.EventTypeWarning, "DeploymentInUse", "Observe", "%s", msg)
		}
		r.setCondition(ro, v1alpha1.ConditionReconciled, false, "DeploymentInUse", msg)
		ro.Status.Phase, ro.Status.Message = v1alpha1.PhaseDegraded, msg
		r.setPhaseConditions(ro)
		return m.stop(ctrl.Result{}, r.writeStatus(ctx, ro, before))
	}
	if r.recreated(ro, w) {
		st := &ro.Status
		msg := fmt.Sprintf("deployment %s was made again and runs nothing of stable revision %d: ramp starts over, and the Deployment deploys its template (revision %d) by itself, as for a new rollout", w.deploy.Name, st.StableRevision, w.current.number)
		if rev := engine.InProgress(ro); rev != 0 {
			msg += fmt.Sprintf("; the rollout of revision %d is dropped", rev)
		}
		engine.StartOver(ro)
		w.events = append(w.events, engine.Event{Type: engine.EventWarning, Reason: "DeploymentRecreated", Revision: w.current.number, Message: msg})
	}
	if err := r.claim(ctx, ro, w.deploy); err != nil {
		if transient(err) {
			return m.stop(ctrl.Result{RequeueAfter: retrySoon}, nil)
		}
		return m.stop(ctrl.Result{}, err)
	}

	r.observeRolling(ro, w)
	r.checkReferences(ctx, ro)
	if valid := meta.FindStatusCondition(before.Conditions, v1alpha1.ConditionValid); valid == nil || valid.ObservedGeneration != ro.Generation || valid.Status != metav1.ConditionTrue {
		// A new or changed spec: say once what plain Services cannot carry.
		if msg := approximations(ro, w.replicas()); msg != "" {
			r.recorder.Eventf(ro, nil, corev1.EventTypeWarning, "WeightApproximated", "Validate", "%s", msg)
		}
	}
	if st := &ro.Status; st.StableRevision != 0 && w.current.number != st.StableRevision && !isRolling(ro) && !w.deploy.Spec.Paused {
		// A change that also set spec.paused false (as Terraform does): the Deployment
		// controller rolls the new template by itself until ramp pauses it again.
		for _, rs := range w.current.sets {
			if w.deploymentOwns(rs) && rs.Status.Replicas > 0 {
				w.events = append(w.events, engine.Event{Type: engine.EventWarning, Reason: "DeploymentRolledOnItsOwn", Revision: w.current.number,
					Message: fmt.Sprintf("deployment %s was resumed with a new template and ran %d pods of revision %d by itself before ramp paused it again; they count as revision %d's, in one ReplicaSet", w.deploy.Name, rs.Status.Replicas, w.current.number, w.current.number)})
			}
		}
	}
	m.w = w

	// A restart is recorded as it is seen, before what the decision makes of it.
	for _, e := range r.exits.observe(m.key, w.instances()) {
		r.record(ro, e.Type, e.Reason, e.Message, e.Revision)
	}
	in := ro.DeepCopy()
	n := w.replicas()
	in.Spec.Replicas = &n
	if in.Spec.MinReadySeconds == 0 {
		in.Spec.MinReadySeconds = w.deploy.Spec.MinReadySeconds
	}
	if in.Spec.ProgressDeadlineSeconds == nil && w.deploy.Spec.ProgressDeadlineSeconds != nil {
		pd := *w.deploy.Spec.ProgressDeadlineSeconds
		in.Spec.ProgressDeadlineSeconds = &pd
	}
	spec.SetDefaults(in)
	r.traffic.judgeDefaults(in)
	traffic, byReplicas := r.observeTraffic(ctx, ro)
	m.conditions = ro.Status.Conditions
	return engine.Input{Rollout: in, Revision: w.current.number, Instances: engineInstances(w),
		Traffic: traffic, Restart: restartBudget(w),
		// A Deployment rolls itself: the engine gates a rolling update instead of sizing it.
		Capabilities: engine.Capabilities{WeightsByReplicas: byReplicas, RollsItself: true},
		Workload:     observeWorkload(w)}, nil
}

// Measurer is the reconciler's measurements, which drop the measurements of runs the
// decision no longer wants only when the status changed: an unchanged status may be the
// cache's stale copy, from before a run started, and would drop a measurement the rollout
// still wants; a decision that drops a run always changes the status.
func (m *mode) Measurer() driver.Measurer { return changedOnly{m.r.measure, m} }

type changedOnly struct {
	*measurements
	m *mode
}

func (c changedOnly) Forget(namespace, rollout string, runs []v1alpha1.AnalysisRunStatus) {
	if c.m.persisted {
		c.measurements.Forget(namespace, rollout, runs)
	}
}

func (m *mode) Target(ro *v1alpha1.Rollout, kind v1alpha1.AnalysisKind) analysis.Target {
	hashes := map[int64]string{}
	if m.w != nil {
		for n, rev := range m.w.byNumber {
			if h := rev.podHash(); h != "" {
				hashes[n] = h
			}
		}
	}
	return analysis.Target{Rollout: ro.Name, Namespace: ro.Namespace, Service: analysisService(ro, kind), Secrets: m.r.secrets, PodTemplateHashes: hashes}
}

// Template reads and checks an analysis template of ro's namespace.
func (m *mode) Template(ctx context.Context, ro *v1alpha1.Rollout, name string) (*v1alpha1.AnalysisTemplate, error) {
	t := &v1alpha1.AnalysisTemplate{}
	if err := m.r.client.Get(ctx, types.NamespacedName{Namespace: ro.Namespace, Name: name}, t); err != nil {
		return nil, err
	}
	if errs := append(spec.ValidateAnalysisTemplate(t), m.r.traffic.checkTemplate(ro, t)...); len(errs) > 0 {
		return nil, errs
	}
	spec.SetAnalysisTemplateDefaults(t)
	return t, nil
}

// Judge steps a judge run from the router's counters. Kubernetes mode asks for no watch
// runs (engine.Input.WatchJudge).
func (m *mode) Judge(ctx context.Context, now time.Time, ro *v1alpha1.Rollout, run *v1alpha1.AnalysisRunStatus) time.Time {
	if run.Kind != v1alpha1.AnalysisKindJudge {
		return time.Time{}
	}
	return m.r.traffic.stepJudge(ctx, now, ro, run)
}

// CarryOut makes the cluster match the decision. Its error does not end the reconcile: the
// Reconciled condition says it, and the engine counts the progress deadline while actions
// fail.
func (m *mode) CarryOut(ctx context.Context, ro *v1alpha1.Rollout, out engine.Output) error {
	r, w := m.r, m.w
	ro.Status.Conditions = m.conditions
	actErr := errors.Join(r.forgetUndoCause(ctx, w), r.carryOut(ctx, ro, m.before, w, out), r.restartPods(ctx, ro, w, out.Restart))
	if m.quietRetry = transient(actErr); m.quietRetry {
		actErr = nil
	}
	m.actErr = actErr
	for i := range ro.Status.Revisions {
		rs := &ro.Status.Revisions[i]
		rs.PodTemplateHash = w.byNumber[rs.Revision].podHash()
	}
	if actErr != nil {
		if r.setCondition(ro, v1alpha1.ConditionReconciled, false, reasonActionFailed, actErr.Error()) {
			r.recorder.Eventf(ro, nil, corev1.EventTypeWarning, reasonActionFailed, "Reconcile", "%s", actErr.Error())
		}
	} else {
		r.setCondition(ro, v1alpha1.ConditionReconciled, true, "Reconciled", "the Deployment, ReplicaSets and traffic match the decision")
	}
	r.setPhaseConditions(ro)
	return nil
}

// Persist updates the status subresource. When that fails, what was done in the cluster
// (w.events: a template written back, a hand-over) is recorded even so: the next decision
// sees it done and would not say it again. The engine's events come again from the next
// decision.
func (m *mode) Persist(ctx context.Context, ro *v1alpha1.Rollout) error {
	if err := m.r.client.Status().Update(ctx, ro); err != nil {
		m.recordWorld(ro)
		return err // the driver says whose status
	}
	m.persisted = true
	m.r.wrote(ro)
	return nil
}

// recordWorld records the events of what Observe and CarryOut did in the cluster.
func (m *mode) recordWorld(ro *v1alpha1.Rollout) {
	if m.w == nil {
		return
	}
	for _, e := range m.w.events {
		m.Record(ro, e)
	}
	m.w.events = nil
}

func (m *mode) Record(ro *v1alpha1.Rollout, e engine.Event) {
	m.r.record(ro, e.Type, e.Reason, e.Message, e.Revision)
}

// Revisions are the revisions of ro's ControllerRevisions.
func (m *mode) Revisions(_ context.Context, _ *v1alpha1.Rollout) ([]int64, error) {
	return slices.Collect(maps.Keys(m.w.byNumber)), nil
}

// Prune deletes ControllerRevisions. A failure is logged: the next promotion prunes again.
func (m *mode) Prune(ctx context.Context, ro *v1alpha1.Rollout, revisions []int64) error {
	for _, n := range revisions {
		rev := m.w.byNumber[n]
		if err := m.r.client.Delete(ctx, rev.history); err != nil && !apierrors.IsNotFound(err) {
			m.r.log.Warn("prune revision history", keyRollout, ro.Name, "err", fmt.Errorf("prune revision %d of %s: %w", rev.number, ro.Name, err))
			return nil
		}
	}
	return nil
}
