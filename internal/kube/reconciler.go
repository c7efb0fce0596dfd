package kube

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/analysis"
	"ramp.dev/ramp/internal/analysis/trafficmetrics"
	"ramp.dev/ramp/internal/driver"
	"ramp.dev/ramp/internal/engine"
	"ramp.dev/ramp/internal/gate"
	"ramp.dev/ramp/internal/notify"
	"ramp.dev/ramp/internal/rampmetrics"
)

// The permissions the controller needs; `make generate` writes them to config/rbac/role.yaml.
//
// +kubebuilder:rbac:groups=ramp.dev,resources=rollouts,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=ramp.dev,resources=rollouts/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=ramp.dev,resources=rollouts/finalizers,verbs=update
// +kubebuilder:rbac:groups=ramp.dev,resources=analysistemplates,verbs=get;list;watch
// +kubebuilder:rbac:groups=apps,resources=deployments,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=apps,resources=deployments/status,verbs=patch
// +kubebuilder:rbac:groups=apps,resources=replicasets,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=apps,resources=controllerrevisions,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=pods/eviction,verbs=create
// +kubebuilder:rbac:groups="",resources=services,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=coordination.k8s.io,resources=leases,verbs=get;list;watch;create;update;patch
// +kubebuilder:rbac:groups=batch,resources=jobs,verbs=get;list;create;delete
// +kubebuilder:rbac:groups=gateway.networking.k8s.io,resources=httproutes,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=networking.istio.io,resources=virtualservices,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=split.smi-spec.io,resources=trafficsplits,verbs=get;list;watch;create;update;patch
// +kubebuilder:rbac:groups=networking.k8s.io,resources=ingresses,verbs=get;list;watch;create;update;patch

// Log keys.
const (
	keyRollout  = "rollout"
	keyRevision = "revision"
)

// Reconciler is Kubernetes mode's adapter around the engine, the twin of local mode's
// Controller. Each reconcile is one driver.Step over Kubernetes mode (mode.go). It reconciles
// one Rollout at a time:
//
//   - The team's Deployment (spec.workloadRef) keeps running the STABLE revision. Once the
//     first revision is stable ramp pauses the Deployment (spec.paused, annotated
//     ramp.dev/paused-by), so that a change of its pod template — kubectl set image, terraform
//     apply — is not rolled out by the Deployment controller but becomes a new ramp revision.
//   - A revision is a pod template, identified by TemplateHash and numbered in a
//     ControllerRevision owned by the Rollout (the history that `ramp history` lists and
//     `ramp undo` copies back into the Deployment's template).
//   - The canary (or blue-green preview) runs in a ReplicaSet <deployment>-<hash> that ramp
//     creates, owned by the Rollout: the Deployment's pod template unchanged but for the
//     pod-template-hash label, which the stable/canary/active/preview Services select.
//     ReplicaSets rather than a second Deployment, because on promotion ramp hands the
//     ReplicaSet over to the Deployment: it drops its owner reference once the ReplicaSet runs
//     the Deployment's full replica count, the Deployment controller adopts it as its new
//     ReplicaSet (same template) and scales the old one down. No pod restarts, the
//     Deployment's revision history and `kubectl rollout status|history` stay right, and
//     deleting the Rollout leaves a working Deployment behind (see finalize: the stable
//     revision, never a promotion of what was under way). A template never runs in two
//     ReplicaSets: what the Deployment controller starts of a template ramp runs (a change
//     that also resumed the Deployment) is adopted or deleted once the Deployment is paused
//     again (see scale).
//   - engine.Output.Scale becomes replica counts of ramp's ReplicaSets (the Deployment keeps
//     the stable one at its own replicas); Routes become Service selectors and, with a
//     trafficRouting router, its weights and header routes.
//
// Every engine event is recorded as an Event on the Rollout; status conditions (Valid,
// Reconciled, Progressing, Healthy) say where the rollout stands.
type Reconciler struct {
	client   client.Client
	recorder EventRecorder
	runner   *analysis.Runner
	traffic  *routerMetrics
	secrets  secretReader
	// live reads past the cache (ReconcilerOptions.APIReader); nil reads through client.
	live client.Reader
	// known holds, by Rollout, the newest resourceVersion this controller wrote or read
	// live (see fresh).
	known sync.Map
	now   func() time.Time
	log   *slog.Logger
	// measure takes analysis measurements off Reconcile; see measure.go.
	measure *measurements
	// gates calls gate webhooks off Reconcile; a call's end reconciles its Rollout.
	gates *gate.Caller
	// exits is the record of the pods' restarts already reported; see exits.go.
	exits *podExits
	// notifier sends spec.notifications; see notify.go.
	notifier *notify.Notifier
}

// EventRecorder records events on objects (events.k8s.io), as controller-runtime's recorder
// does.
type EventRecorder interface {
	Eventf(regarding runtime.Object, related runtime.Object, eventtype, reason, action, note string, args ...any)
}

// ReconcilerOptions configure a Reconciler.
type ReconcilerOptions struct {
	// Providers are the analysis providers by name. Nil means none: every metric is then
	// Error and the rollout aborts.
	Providers map[string]analysis.Provider
	// Logger gets the reconciler's logs. Nil means slog.Default().
	Logger *slog.Logger
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
	// PrometheusAddress is the Prometheus holding the traffic routers' metrics (Istio, NGINX
	// ingress), from which the builtin provider's request metrics are answered and the judge
	// is fed; a rollout's ramp.dev/prometheus-address annotation overrides it. Empty means
	// none: builtin metrics and the judge then need the annotation.
	PrometheusAddress string
	// PrometheusTransport sends the requests to the router metrics' Prometheus (the
	// controller's or a rollout's annotation), with the controller's credentials and TLS
	// settings. Nil means a clone of http.DefaultTransport.
	PrometheusTransport http.RoundTripper
	// JudgeInterval is how often the judge reads the router's counters. Zero means
	// DefaultJudgeInterval.
	JudgeInterval time.Duration
	// SecretReader reads the Secrets of analysis providers' secret references, with get
	// only: give a reader that does not cache (the manager's API reader), or the controller
	// would list and watch every Secret. Nil means the reconciler's client.
	SecretReader client.Reader
	// APIReader reads from the API server, past the cache: before a drift of the traffic
	// layer is reported, the routing object is read again through it, so that a cache that
	// lags behind ramp's own last write is not taken for a change by hand. Nil means the
	// reconciler's client.
	APIReader client.Reader
}

// NewReconciler returns a Reconciler that works through c and records events with rec.
func NewReconciler(c client.Client, rec EventRecorder, o ReconcilerOptions) *Reconciler {
	r := &Reconciler{client: c, recorder: rec, now: o.Now, log: o.Logger}
	if r.now == nil {
		r.now = time.Now
	}
	if r.log == nil {
		r.log = slog.Default()
	}
	r.live = o.APIReader
	r.secrets = secretReader{c: o.SecretReader}
	if o.SecretReader == nil {
		r.secrets = secretReader{c: c}
	}
	transport := o.PrometheusTransport
	if transport == nil {
		transport = http.DefaultTransport.(*http.Transport).Clone()
	}
	r.traffic = &routerMetrics{reader: c, address: o.PrometheusAddress, transport: transport, interval: o.JudgeInterval}
	if r.traffic.interval <= 0 {
		r.traffic.interval = DefaultJudgeInterval
	}
	providers := o.Providers
	if providers["builtin"] == nil {
		// Kubernetes mode's builtin metrics come from the traffic router's metrics.
		providers = maps.Clone(providers)
		if providers == nil {
			providers = map[string]analysis.Provider{}
		}
		providers["builtin"] = trafficmetrics.NewProvider(r.traffic, r.now, transport)
		r.traffic.ownsBuiltin = true
	}
	r.runner = &analysis.Runner{Providers: providers, Logger: r.log}
	r.measure = newMeasurements(r.runner)
	r.gates = gate.NewCaller(nil, r.measure.wake)
	r.exits = newPodExits(r.now())
	r.traffic.wake = r.measure.wake
	r.notifier = r.newNotifier()
	return r
}

// pollInterval bounds the wait between two decisions while a rollout is under way, even when
// nothing is observed to change.
const pollInterval = 30 * time.Second

var errEmptySelector = errors.New("selects nothing")

// errStale means the cache does not show yet what an earlier decision wrote; the reconciler
// decides again shortly, without reporting a problem.
var errStale = errors.New("the cache lags behind the cluster")

// transient reports errors that call for a quiet retry: a lagging cache, or a write conflict
// with another writer (the CLI, the Deployment controller).
func transient(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, errStale) || apierrors.IsConflict(err) {
		return true
	}
	var joined interface{ Unwrap() []error }
	if errors.As(err, &joined) {
		for _, e := range joined.Unwrap() {
			if !transient(e) {
				return false
			}
		}
		return true
	}
	return false
}

// retrySoon is the wait before deciding again after a transient error.
const retrySoon = 250 * time.Millisecond

// actionRetry bounds the wait before deciding again after carrying out a decision failed.
const actionRetry = 5 * time.Second

// reasonActionFailed is the Reconciled condition's reason when carrying out a decision failed.
const reasonActionFailed = "ActionFailed"

// observeTraffic tells the engine what became of the last decisions' actions: the error of
// carrying out the last one and since when they fail (the Reconciled condition), and, while a
// canary runs with a trafficRouting router, the weight its routing object holds now (a read
// error counts as a failure). byReplicas says a canary's weight is carried by instance counts
// (no trafficRouting router).
func (r *Reconciler) observeTraffic(ctx context.Context, ro *v1alpha1.Rollout) (t *engine.Traffic, byReplicas bool) {
	t = &engine.Traffic{}
	if c := meta.FindStatusCondition(ro.Status.Conditions, v1alpha1.ConditionReconciled); c != nil && c.Status == metav1.ConditionFalse && c.Reason == reasonActionFailed {
		t.Error, t.FailingSince = strings.ReplaceAll(c.Message, "\n", "; "), c.LastTransitionTime.Time
	}
	if ro.Spec.Strategy.Canary == nil {
		return t, false
	}
	name := RouterName(ro)
	if name == "" {
		return t, true
	}
	st := &ro.Status
	if st.CanaryRevision == 0 || st.Abort {
		return t, false
	}
	router, err := NewRouter(name, r.client)
	if err != nil {
		return t, false // validation refuses an unknown router before this
	}
	got, err := router.ObservedRoutes(ctx, ro)
	if err != nil {
		if t.Error == "" {
			// Since when is not known: the engine counts the deadline from the step's start.
			t.Error = fmt.Sprintf("read routes with %s router: %s", name, err.Error())
		}
		return t, false
	}
	w := got.CanaryWeight
	t.CanaryWeight = &w
	return t, false
}

// Reconcile runs one decision for the Rollout req names.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	defer func(start time.Time) { rampmetrics.ObserveReconcile(rampmetrics.ModeKubernetes, time.Since(start)) }(time.Now())
	ro := &v1alpha1.Rollout{}
	err := r.client.Get(ctx, req.NamespacedName, ro)
	if err == nil {
		err = r.fresh(ctx, req.NamespacedName, ro)
	}
	if err != nil {
		if apierrors.IsNotFound(err) {
			r.measure.Forget(req.Namespace, req.Name, nil)
			r.gates.Forget(req.Namespace, req.Name, nil)
			r.exits.forget(req.NamespacedName)
			r.known.Delete(req.NamespacedName)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !ro.DeletionTimestamp.IsZero() {
		r.measure.Forget(ro.Namespace, ro.Name, nil)
		r.gates.Forget(ro.Namespace, ro.Name, nil)
		r.exits.forget(req.NamespacedName)
		return ctrl.Result{}, r.finalize(ctx, ro)
	}
	if !controllerutil.ContainsFinalizer(ro, FinalizerName) {
		patch := client.MergeFrom(ro.DeepCopy())
		controllerutil.AddFinalizer(ro, FinalizerName)
		if err := r.client.Patch(ctx, ro, patch); err != nil {
			return ctrl.Result{}, fmt.Errorf("add finalizer to %s: %w", ro.Name, err)
		}
		r.wrote(ro)
	}
	m := &mode{r: r, key: req.NamespacedName, before: ro.Status.DeepCopy()}
	now := r.now()
	res, err := driver.Step(ctx, m, ro, now)
	if errors.Is(err, errStopped) {
		return m.stopped, m.stopErr
	}
	if err != nil {
		if apierrors.IsConflict(err) {
			return ctrl.Result{RequeueAfter: retrySoon}, nil // a user command came in: decide again
		}
		return ctrl.Result{}, err
	}
	m.recordWorld(ro)
	if m.actErr != nil {
		// Retried at a steady pace rather than with the controller's growing back-off: the
		// engine counts the progress deadline while actions fail and must decide when it
		// passes.
		r.log.Warn("carry out decision", keyRollout, ro.Namespace+"/"+ro.Name, "err", m.actErr)
		return ctrl.Result{RequeueAfter: min(r.requeueAfter(ro, now, res.Next, m.w), actionRetry)}, nil
	}
	if m.quietRetry {
		return ctrl.Result{RequeueAfter: retrySoon}, nil
	}
	return ctrl.Result{RequeueAfter: r.requeueAfter(ro, now, res.Next, m.w)}, nil
}

// requeueAfter is when to decide again without a watch event: the step's next due time
// (driver.Result.Next), soon while a hand-over is pending, and at least every pollInterval
// while a revision is under way.
func (r *Reconciler) requeueAfter(ro *v1alpha1.Rollout, now, next time.Time, w *world) time.Duration {
	var d time.Duration
	consider := func(at time.Time) {
		if at.IsZero() {
			return
		}
		wait := max(at.Sub(now), 100*time.Millisecond)
		if d == 0 || wait < d {
			d = wait
		}
	}
	consider(next)
	if ro.Status.Phase != v1alpha1.PhaseHealthy && ro.Status.Phase != v1alpha1.PhaseDegraded {
		consider(now.Add(pollInterval))
	}
	if restarting(ro) && (ro.Status.CurrentRevision == ro.Status.StableRevision || ro.Status.Abort) {
		consider(now.Add(time.Second)) // pods becoming Ready do not always change a ReplicaSet
	}
	if stable := w.byNumber[ro.Status.StableRevision]; stable != nil && !w.deploymentServes(ro, stable) {
		consider(now.Add(time.Second))
	}
	if podsLag(w) {
		// The ReplicaSets say more (or fewer) pods are ready than the pods the decision saw:
		// the pods' cache lags, and no later ReplicaSet change may come to wake the
		// reconciler, so the status would show stale counts until the next poll.
		consider(now.Add(time.Second))
	}
	return d
}

// podsLag reports whether the ready pods observed of some revision differ from what its
// ReplicaSets' status counts.
func podsLag(w *world) bool {
	inst := w.instances()
	for n, rev := range w.byNumber {
		var fromSets int32
		for _, rs := range rev.sets {
			if rs.Status.ObservedGeneration >= rs.Generation {
				fromSets += rs.Status.ReadyReplicas
			}
		}
		var ready int32
		for _, p := range inst[n] {
			if p.pod.DeletionTimestamp == nil && podToInstance(p.pod).Ready {
				ready++
			}
		}
		if ready != fromSets {
			return true
		}
	}
	return false
}

// statusEqual reports whether two statuses are the same as stored.
func statusEqual(a, b *v1alpha1.RolloutStatus) bool {
	x, errA := json.Marshal(a)
	y, errB := json.Marshal(b)
	return errA == nil && errB == nil && string(x) == string(y)
}

// writeStatus updates the status subresource when it changed.
func (r *Reconciler) writeStatus(ctx context.Context, ro *v1alpha1.Rollout, before *v1alpha1.RolloutStatus) error {
	if statusEqual(before, &ro.Status) {
		return nil
	}
	if err := r.client.Status().Update(ctx, ro); err != nil {
		return fmt.Errorf("update status of %s: %w", ro.Name, err)
	}
	r.wrote(ro)
	return nil
}

// setCondition sets a condition and reports whether its status, reason or message changed.
func (r *Reconciler) setCondition(ro *v1alpha1.Rollout, typ string, ok bool, reason, msg string) bool {
	status := metav1.ConditionFalse
	if ok {
		status = metav1.ConditionTrue
	}
	old := meta.FindStatusCondition(ro.Status.Conditions, typ)
	changed := old == nil || old.Status != status || old.Reason != reason || old.Message != msg
	if len(msg) > 32000 {
		msg = msg[:32000]
	}
	meta.SetStatusCondition(&ro.Status.Conditions, metav1.Condition{
		Type: typ, Status: status, Reason: reason, Message: msg, ObservedGeneration: ro.Generation,
		LastTransitionTime: metav1.NewTime(r.now()),
	})
	return changed
}

// setPhaseConditions derives Progressing and Healthy from the phase.
func (r *Reconciler) setPhaseConditions(ro *v1alpha1.Rollout) {
	st := &ro.Status
	switch st.Phase {
	case v1alpha1.PhaseProgressing, v1alpha1.PhasePaused:
		r.setCondition(ro, v1alpha1.ConditionProgressing, true, string(st.Phase), st.Message)
		r.setCondition(ro, v1alpha1.ConditionHealthy, false, string(st.Phase), st.Message)
	case v1alpha1.PhaseHealthy:
		r.setCondition(ro, v1alpha1.ConditionProgressing, false, "RolloutCompleted", st.Message)
		r.setCondition(ro, v1alpha1.ConditionHealthy, true, "Healthy", st.Message)
	case v1alpha1.PhaseDegraded:
		r.setCondition(ro, v1alpha1.ConditionProgressing, false, "RolloutAborted", st.Message)
		r.setCondition(ro, v1alpha1.ConditionHealthy, false, "Degraded", st.Message)
	}
}

func (r *Reconciler) record(ro *v1alpha1.Rollout, typ, reason, msg string, rev int64) {
	r.recorder.Eventf(ro, nil, typ, reason, eventAction(reason, msg), "%s", msg)
	level := slog.LevelInfo
	if typ == engine.EventWarning {
		level = slog.LevelWarn
	}
	r.log.Log(context.Background(), level, msg, keyRollout, ro.Namespace+"/"+ro.Name, keyRevision, rev, "reason", reason)
}

// eventAction is the action of an event: its reason and a hash of its message. The
// events.k8s.io recorder folds events with the same type, reason, action and object version
// into one series that keeps only the first message, so two steps finishing in one reconcile
// ("step 2/7 completed", "step 3/7 completed") would show as one; a distinct action keeps
// both, and a repeat of the same message still counts up one series.
func eventAction(reason, msg string) string {
	h := fnv.New32a()
	h.Write([]byte(msg))
	return fmt.Sprintf("%s-%08x", reason, h.Sum32())
}

// engineInstances turns the observed pods into the engine's instances.
func engineInstances(w *world) map[int64][]engine.Instance {
	out := map[int64][]engine.Instance{}
	for n, pods := range w.instances() {
		for _, p := range pods {
			out[n] = append(out[n], podToInstance(p.pod))
		}
	}
	return out
}

// crashLoopReasons are container waiting reasons that mean the pod will not start by itself.
var crashLoopReasons = []string{"CrashLoopBackOff"}

// podToInstance turns a pod into an engine instance. Its containers' restarts are its exits
// (any restart is one the pod did not ask for: ramp restarts pods by replacing them), weighed
// from its creation; LastExit says how the latest one ended.
func podToInstance(p *corev1.Pod) engine.Instance {
	in := engine.Instance{ID: p.Name, StartedAt: p.CreationTimestamp.Time, CreatedAt: p.CreationTimestamp.Time, Terminating: p.DeletionTimestamp != nil}
	in.Exits, _ = podExitsOf(p)
	in.LastExit = podLastExit(p)
	if p.Status.StartTime != nil {
		in.StartedAt = p.Status.StartTime.Time
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
			in.Ready = true
			in.ReadySince = c.LastTransitionTime.Time
		}
		if c.Type == corev1.PodReady && c.Status != corev1.ConditionTrue && c.Message != "" {
			in.Message = c.Message
		}
	}
	for _, cs := range p.Status.ContainerStatuses {
		in.Restarts += cs.RestartCount
		if wt := cs.State.Waiting; wt != nil {
			if slices.Contains(crashLoopReasons, wt.Reason) {
				in.CrashLooping = true
			}
			in.Message = fmt.Sprintf("container %s: %s: %s", cs.Name, wt.Reason, wt.Message)
		}
	}
	if p.Status.Phase == corev1.PodFailed {
		in.Message = fmt.Sprintf("pod failed: %s %s", p.Status.Reason, p.Status.Message)
	}
	if in.Ready {
		in.Message = ""
	}
	return in
}

// analysisService is the Service of the revision an analysis of kind looks at: the canary
// (or preview, or active) Service; empty when the rollout names none.
func analysisService(ro *v1alpha1.Rollout, kind v1alpha1.AnalysisKind) string {
	if c := ro.Spec.Strategy.Canary; c != nil {
		return c.CanaryService
	}
	if bg := ro.Spec.Strategy.BlueGreen; bg != nil {
		if analysis.RoleOf(kind) == string(v1alpha1.RolePreview) && bg.PreviewService != "" {
			return bg.PreviewService
		}
		return bg.ActiveService
	}
	return ""
}

// finalize hands the Deployment back when its Rollout is deleted. Deleting a Rollout while a
// revision rolls out stops that revision, as an abort does, and never promotes it: the
// routing object sends everything to the stable Service again (no canary weight, no header
// route), the Deployment gets the stable revision's pod template back (it still runs that
// revision's ReplicaSet, so no pod restarts) with a Warning event saying so, ramp's other
// ReplicaSets go, the Deployment is resumed, and the Services select by their own selectors
// again. A promoted ReplicaSet not yet handed over goes to the Deployment. ramp's revision
// history is garbage-collected with the Rollout. A Rollout refused for a Deployment that
// another one manages touches nothing.
func (r *Reconciler) finalize(ctx context.Context, ro *v1alpha1.Rollout) error {
	if !controllerutil.ContainsFinalizer(ro, FinalizerName) {
		return nil
	}
	r.traffic.forget(types.NamespacedName{Namespace: ro.Namespace, Name: ro.Name})
	manages := true
	if ro.Spec.WorkloadRef != nil {
		d := &appsv1.Deployment{}
		err := r.client.Get(ctx, types.NamespacedName{Namespace: ro.Namespace, Name: ro.Spec.WorkloadRef.Name}, d)
		switch {
		case apierrors.IsNotFound(err):
		case err != nil:
			return fmt.Errorf("get deployment %s: %w", ro.Spec.WorkloadRef.Name, err)
		default:
			other, err := r.otherManager(ctx, ro, d)
			if err != nil {
				return err
			}
			if manages = other == ""; manages {
				r.resetRoutes(ctx, ro, d)
				if err := r.release(ctx, ro, d); err != nil {
					return err
				}
			}
		}
	}
	if manages {
		for _, svc := range rolloutServices(ro) {
			if _, err := SetServiceSelector(ctx, r.client, ro.Namespace, svc, ""); err != nil {
				return err
			}
		}
	}
	patch := client.MergeFrom(ro.DeepCopy())
	controllerutil.RemoveFinalizer(ro, FinalizerName)
	if err := r.client.Patch(ctx, ro, patch); err != nil {
		return fmt.Errorf("remove finalizer of %s: %w", ro.Name, err)
	}
	return nil
}

// resetRoutes sends all of a canary's traffic to the stable Service again, with no header
// route. A router that fails is reported on the Deployment and does not hold the deletion up.
func (r *Reconciler) resetRoutes(ctx context.Context, ro *v1alpha1.Rollout, d *appsv1.Deployment) {
	c := ro.Spec.Strategy.Canary
	name := RouterName(ro)
	if c == nil || name == "" {
		return
	}
	router, err := NewRouter(name, r.client)
	if err == nil {
		err = router.SetRoutes(ctx, ro, Routes{StableService: c.StableService, CanaryService: c.CanaryService})
	}
	if err != nil {
		msg := fmt.Sprintf("rollout %s deleted: could not send all traffic back to service %s with the %s router: %s", ro.Name, c.StableService, name, err.Error())
		r.log.Warn(msg, keyRollout, ro.Namespace+"/"+ro.Name)
		r.recorder.Eventf(d, ro, corev1.EventTypeWarning, "TrafficNotReset", "Finalize", "%s", msg)
	}
}

// release gives the Deployment back: the stable revision's pod template when another revision
// was under way, a promoted ReplicaSet of its template, ramp's other ReplicaSets deleted, and
// the Deployment resumed.
func (r *Reconciler) release(ctx context.Context, ro *v1alpha1.Rollout, d *appsv1.Deployment) error {
	templates, err := r.revisionTemplates(ctx, ro)
	if err != nil {
		return err
	}
	patch := client.MergeFrom(d.DeepCopy())
	var reverted string
	if st := ro.Status; st.StableRevision != 0 && templates[st.StableRevision] != nil {
		if stable := templates[st.StableRevision]; TemplateHash(&d.Spec.Template) != TemplateHash(stable) {
			was := "its pod template"
			if len(d.Spec.Template.Spec.Containers) > 0 {
				was = "image " + d.Spec.Template.Spec.Containers[0].Image
			}
			d.Spec.Template = *stable.DeepCopy()
			reverted = fmt.Sprintf("rollout %s was deleted while a new revision (%s) was not promoted: deployment %s has the pod template of stable revision %d again and keeps running it; apply the change again to roll it out without ramp",
				ro.Name, was, d.Name, st.StableRevision)
		}
	}
	hash := TemplateHash(&d.Spec.Template)
	var sets appsv1.ReplicaSetList
	if err := r.client.List(ctx, &sets, client.InNamespace(ro.Namespace), client.MatchingLabels{LabelRollout: ro.Name}); err != nil {
		return fmt.Errorf("list replicasets of %s: %w", ro.Name, err)
	}
	for i := range sets.Items {
		rs := &sets.Items[i]
		switch {
		case !ownedBy(rs, ro.UID):
		case TemplateHash(&rs.Spec.Template) == hash:
			if err := r.handOver(ctx, rs, d); err != nil {
				return err
			}
		case ranByDeployment(rs):
			// Taken over from the Deployment (undo.go): it goes back, not with the Rollout.
			if err := r.giveBack(ctx, ro, rs); err != nil {
				return err
			}
		default:
			if err := r.client.Delete(ctx, rs); err != nil && !apierrors.IsNotFound(err) {
				return fmt.Errorf("delete replicaset %s: %w", rs.Name, err)
			}
		}
	}
	if d.Annotations[AnnotationPausedBy] == ro.Name {
		d.Spec.Paused = false
		delete(d.Annotations, AnnotationPausedBy)
		delete(d.Annotations, AnnotationUndoneRevision)
	}
	if d.Annotations[AnnotationManagedBy] == ro.Name {
		delete(d.Annotations, AnnotationManagedBy)
	}
	if err := r.client.Patch(ctx, d, patch); err != nil {
		return fmt.Errorf("release deployment %s: %w", d.Name, err)
	}
	if reverted != "" {
		r.log.Warn(reverted, keyRollout, ro.Namespace+"/"+ro.Name)
		r.recorder.Eventf(d, ro, corev1.EventTypeWarning, "RolloutDeleted", "Finalize", "%s", reverted)
	}
	return nil
}

// rolloutServices are the Services whose selectors ramp sets.
func rolloutServices(ro *v1alpha1.Rollout) []string {
	var out []string
	if c := ro.Spec.Strategy.Canary; c != nil {
		out = append(out, c.StableService, c.CanaryService)
	}
	if bg := ro.Spec.Strategy.BlueGreen; bg != nil {
		out = append(out, bg.ActiveService, bg.PreviewService)
	}
	return slices.DeleteFunc(out, func(s string) bool { return s == "" })
}

// fresh makes ro, just read from the cache, the Rollout as the API server has it when the
// cache may be behind: a decision carried out from an older status than the last one saved
// would set the traffic layer back to an older step. The cache is believed when it holds
// the version this controller last wrote or read live; otherwise one get past the cache.
func (r *Reconciler) fresh(ctx context.Context, key types.NamespacedName, ro *v1alpha1.Rollout) error {
	if r.live == nil {
		return nil
	}
	if v, ok := r.known.Load(key); ok && v.(string) == ro.ResourceVersion {
		return nil
	}
	if err := r.live.Get(ctx, key, ro); err != nil {
		return err
	}
	r.wrote(ro)
	return nil
}

// wrote remembers ro's resourceVersion as the newest known.
func (r *Reconciler) wrote(ro *v1alpha1.Rollout) {
	r.known.Store(types.NamespacedName{Namespace: ro.Namespace, Name: ro.Name}, ro.ResourceVersion)
}
