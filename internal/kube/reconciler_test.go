package kube

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/event"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/engine"
)

const ns = "team"

// fixture is a fake cluster with one Deployment, its stable ReplicaSet, two Services and a
// Rollout, plus stand-ins for the kubelet and the Deployment controller.
type fixture struct {
	t     *testing.T
	c     client.Client
	r     *Reconciler
	rec   *events.FakeRecorder
	now   time.Time
	seen  []string // events recorded so far
	podID int
}

func ptr[T any](v T) *T { return &v }

func podTemplate(image string) corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "chat-api"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "chat-api", Image: image}}},
	}
}

func canaryRollout(steps ...v1alpha1.CanaryStep) *v1alpha1.Rollout {
	return &v1alpha1.Rollout{
		ObjectMeta: metav1.ObjectMeta{Name: "chat-api", Namespace: ns, UID: "ro-uid", Generation: 1},
		Spec: v1alpha1.RolloutSpec{
			WorkloadRef: &v1alpha1.WorkloadRef{Name: "chat-api"},
			Strategy: v1alpha1.Strategy{Canary: &v1alpha1.CanaryStrategy{
				Steps: steps, StableService: "chat-api-stable", CanaryService: "chat-api-canary",
				// No watch window, so a promotion hands over at once; watch_test.go has one.
				ScaleDownDelaySeconds: ptr(int32(0)),
			}},
		},
	}
}

func newFixture(t *testing.T, ro *v1alpha1.Rollout, objs ...client.Object) *fixture {
	t.Helper()
	tmpl := podTemplate("chat-api:v1")
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "chat-api", Namespace: ns, UID: "d-uid"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr(int32(3)),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "chat-api"}},
			Template: tmpl,
		},
	}
	rsTmpl := tmpl.DeepCopy()
	rsTmpl.Labels["pod-template-hash"] = "v1hash"
	rs := &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{
			Name: "chat-api-v1hash", Namespace: ns, UID: "rs1-uid", Labels: rsTmpl.Labels,
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(d, appsv1.SchemeGroupVersion.WithKind("Deployment"))},
		},
		Spec: appsv1.ReplicaSetSpec{
			Replicas: ptr(int32(3)),
			Selector: &metav1.LabelSelector{MatchLabels: rsTmpl.Labels},
			Template: *rsTmpl,
		},
	}
	svc := func(name string) *corev1.Service {
		return &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec:       corev1.ServiceSpec{Selector: map[string]string{"app": "chat-api"}},
		}
	}
	all := append([]client.Object{d, rs, svc("chat-api-stable"), svc("chat-api-canary"), ro}, objs...)
	c := fake.NewClientBuilder().WithScheme(Scheme()).WithObjects(all...).WithStatusSubresource(&v1alpha1.Rollout{}, &appsv1.ReplicaSet{}, &appsv1.Deployment{}).Build()
	f := &fixture{t: t, c: c, rec: events.NewFakeRecorder(100), now: time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)}
	f.r = NewReconciler(c, f.rec, ReconcilerOptions{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: func() time.Time { return f.now }})
	f.kubelet()
	return f
}

// reconcile runs one decision and fails the test on an error.
func (f *fixture) reconcile() ctrl.Result {
	f.t.Helper()
	res, err := f.r.Reconcile(context.Background(), ctrl.Request{NamespacedName: types.NamespacedName{Namespace: ns, Name: "chat-api"}})
	if err != nil {
		f.t.Fatalf("reconcile: %s", err)
	}
	f.drainEvents()
	return res
}

func (f *fixture) drainEvents() {
	for {
		select {
		case e := <-f.rec.Events:
			f.seen = append(f.seen, e)
		default:
			return
		}
	}
}

// settle runs the kubelet, the Deployment controller and the reconciler until nothing changes.
func (f *fixture) settle() {
	f.t.Helper()
	for range 6 {
		f.kubelet()
		f.deploymentController()
		f.reconcile()
	}
}

func (f *fixture) rollout() *v1alpha1.Rollout {
	f.t.Helper()
	return getChatAPI(f, &v1alpha1.Rollout{}, "rollout")
}

func (f *fixture) deployment() *appsv1.Deployment {
	f.t.Helper()
	return getChatAPI(f, &appsv1.Deployment{}, "deployment")
}

// getChatAPI reads the object named chat-api into obj.
func getChatAPI[T client.Object](f *fixture, obj T, what string) T {
	f.t.Helper()
	if err := f.c.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: "chat-api"}, obj); err != nil {
		f.t.Fatalf("get %s: %s", what, err)
	}
	return obj
}

func (f *fixture) replicaSets() map[string]*appsv1.ReplicaSet {
	f.t.Helper()
	var l appsv1.ReplicaSetList
	if err := f.c.List(context.Background(), &l, client.InNamespace(ns)); err != nil {
		f.t.Fatalf("list replicasets: %s", err)
	}
	out := map[string]*appsv1.ReplicaSet{}
	for i := range l.Items {
		out[l.Items[i].Name] = &l.Items[i]
	}
	return out
}

func (f *fixture) selector(svc string) string {
	f.t.Helper()
	s := &corev1.Service{}
	if err := f.c.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: svc}, s); err != nil {
		f.t.Fatalf("get service: %s", err)
	}
	return s.Spec.Selector["pod-template-hash"]
}

// setImage changes the Deployment's pod template, as `kubectl set image` does.
func (f *fixture) setImage(image string) {
	f.t.Helper()
	d := f.deployment()
	d.Spec.Template.Spec.Containers[0].Image = image
	if err := f.c.Update(context.Background(), d); err != nil {
		f.t.Fatalf("set image: %s", err)
	}
}

// command runs a user command on the rollout's status, as the CLI does.
func (f *fixture) command(fn func(ro *v1alpha1.Rollout) error) {
	f.t.Helper()
	ro := f.rollout()
	if err := fn(ro); err != nil {
		f.t.Fatalf("command: %s", err)
	}
	if err := f.c.Status().Update(context.Background(), ro); err != nil {
		f.t.Fatalf("update status: %s", err)
	}
}

// kubelet gives every ReplicaSet its replica count of ready pods and a matching status.
func (f *fixture) kubelet() {
	f.t.Helper()
	ctx := context.Background()
	var pods corev1.PodList
	if err := f.c.List(ctx, &pods, client.InNamespace(ns)); err != nil {
		f.t.Fatal(err)
	}
	for name, rs := range f.replicaSets() {
		var mine []corev1.Pod
		for _, p := range pods.Items {
			if ref := metav1.GetControllerOf(&p); ref != nil && ref.Name == name {
				mine = append(mine, p)
			}
		}
		want := int(replicasOf(rs))
		for len(mine) > want {
			if err := f.c.Delete(ctx, &mine[len(mine)-1]); err != nil {
				f.t.Fatal(err)
			}
			mine = mine[:len(mine)-1]
		}
		for len(mine) < want {
			f.podID++
			p := corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{
					Name: fmt.Sprintf("%s-%d", name, f.podID), Namespace: ns, Labels: rs.Spec.Template.Labels,
					OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(rs, appsv1.SchemeGroupVersion.WithKind("ReplicaSet"))},
				},
				Status: corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{{
					Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(f.now.Add(-time.Hour)),
				}}},
			}
			if err := f.c.Create(ctx, &p); err != nil {
				f.t.Fatal(err)
			}
			mine = append(mine, p)
		}
		n := int32(want)
		rs.Status = appsv1.ReplicaSetStatus{Replicas: n, ReadyReplicas: n, AvailableReplicas: n, ObservedGeneration: rs.Generation}
		if err := f.c.Status().Update(ctx, rs); err != nil {
			f.t.Fatal(err)
		}
	}
}

// deploymentController adopts orphan ReplicaSets of the Deployment and, when the one with the
// Deployment's template is saturated, scales the others down: what the real one does for a
// paused Deployment.
func (f *fixture) deploymentController() {
	f.t.Helper()
	ctx := context.Background()
	d := f.deployment()
	var newRS *appsv1.ReplicaSet
	sets := f.replicaSets()
	for _, rs := range sets {
		if metav1.GetControllerOf(rs) == nil && rs.Labels["app"] == "chat-api" {
			rs.OwnerReferences = []metav1.OwnerReference{*metav1.NewControllerRef(d, appsv1.SchemeGroupVersion.WithKind("Deployment"))}
			if err := f.c.Update(ctx, rs); err != nil {
				f.t.Fatal(err)
			}
		}
		if ownedBy(rs, d.UID) && TemplateHash(&rs.Spec.Template) == TemplateHash(&d.Spec.Template) {
			newRS = rs
		}
	}
	if newRS == nil || replicasOf(newRS) != *d.Spec.Replicas || newRS.Status.AvailableReplicas != *d.Spec.Replicas || newRS.Annotations[annDesiredReplicas] != fmt.Sprint(*d.Spec.Replicas) {
		return
	}
	for _, rs := range sets {
		if rs.Name != newRS.Name && ownedBy(rs, d.UID) && replicasOf(rs) > 0 {
			rs.Spec.Replicas = ptr(int32(0))
			if err := f.c.Update(ctx, rs); err != nil {
				f.t.Fatal(err)
			}
		}
	}
}

func (f *fixture) wantEvent(reason string) {
	f.t.Helper()
	if !slices.ContainsFunc(f.seen, func(e string) bool { return strings.Contains(e, " "+reason+" ") }) {
		f.t.Errorf("no %s event among %q", reason, f.seen)
	}
}

func TestCanaryWithServiceSelectors(t *testing.T) {
	f := newFixture(t, canaryRollout(
		v1alpha1.CanaryStep{SetWeight: ptr(int32(25))},
		v1alpha1.CanaryStep{Pause: &v1alpha1.RolloutPause{}},
	))

	// Given a running Deployment, when the Rollout is first reconciled, then its template is
	// revision 1 and stable, and the Deployment is paused for ramp.
	f.settle()
	ro := f.rollout()
	if ro.Status.Phase != v1alpha1.PhaseHealthy || ro.Status.StableRevision != 1 {
		t.Fatalf("first reconcile: phase %s stable %d: %s", ro.Status.Phase, ro.Status.StableRevision, ro.Status.Message)
	}
	if !slices.Contains(ro.Finalizers, FinalizerName) {
		t.Errorf("finalizers %v lack %s", ro.Finalizers, FinalizerName)
	}
	if d := f.deployment(); !d.Spec.Paused || d.Annotations[AnnotationPausedBy] != "chat-api" {
		t.Errorf("deployment paused=%v annotations %v; want paused by chat-api", d.Spec.Paused, d.Annotations)
	}
	if got := f.selector("chat-api-stable"); got != "v1hash" {
		t.Errorf("stable service selects %q; want v1hash", got)
	}
	if got := f.selector("chat-api-canary"); got != "v1hash" {
		t.Errorf("canary service selects %q with no canary; want stable's v1hash", got)
	}
	if c := meta.FindStatusCondition(ro.Status.Conditions, v1alpha1.ConditionHealthy); c == nil || c.Status != metav1.ConditionTrue {
		t.Errorf("Healthy condition %+v", c)
	}

	// When the image changes, then revision 2 runs as a canary in ramp's ReplicaSet: 1 pod
	// beside 3 stable ones is 25% of the pods; the canary Service selects it.
	f.setImage("chat-api:v2")
	f.settle()
	ro = f.rollout()
	h2 := TemplateHash(&f.deployment().Spec.Template)
	canaryRS := f.replicaSets()["chat-api-"+h2]
	if canaryRS == nil {
		t.Fatalf("no canary replicaset chat-api-%s among %v", h2, keys(f.replicaSets()))
	}
	if !ownedBy(canaryRS, "ro-uid") || replicasOf(canaryRS) != 1 {
		t.Errorf("canary replicaset owner %v replicas %d; want the rollout, 1", canaryRS.OwnerReferences, replicasOf(canaryRS))
	}
	if ro.Status.Phase != v1alpha1.PhasePaused || ro.Status.CanaryRevision != 2 || ro.Status.CanaryWeight != 25 {
		t.Fatalf("after set image: phase %s canary %d weight %d: %s", ro.Status.Phase, ro.Status.CanaryRevision, ro.Status.CanaryWeight, ro.Status.Message)
	}
	if got := f.selector("chat-api-canary"); got != h2 {
		t.Errorf("canary service selects %q; want %s", got, h2)
	}
	if got := f.selector("chat-api-stable"); got != "v1hash" {
		t.Errorf("stable service selects %q; want v1hash", got)
	}
	if rs := f.replicaSets()["chat-api-v1hash"]; replicasOf(rs) != 3 {
		t.Errorf("stable replicaset has %d replicas; want 3", replicasOf(rs))
	}
	f.wantEvent("RolloutStarted")

	// When promoted, then the canary scales to 3, is handed over to the Deployment, which
	// scales the old one down; the stable Service selects revision 2.
	f.command(func(ro *v1alpha1.Rollout) error { return engine.Promote(ro, false) })
	f.settle()
	ro = f.rollout()
	if ro.Status.Phase != v1alpha1.PhaseHealthy || ro.Status.StableRevision != 2 {
		t.Fatalf("after promote: phase %s stable %d: %s", ro.Status.Phase, ro.Status.StableRevision, ro.Status.Message)
	}
	sets := f.replicaSets()
	if rs := sets["chat-api-"+h2]; !ownedBy(rs, "d-uid") || replicasOf(rs) != 3 {
		t.Errorf("promoted replicaset owner %v replicas %d; want the deployment, 3", rs.OwnerReferences, replicasOf(rs))
	}
	if rs := sets["chat-api-v1hash"]; replicasOf(rs) != 0 {
		t.Errorf("old replicaset has %d replicas; want 0", replicasOf(rs))
	}
	if got := f.selector("chat-api-stable"); got != h2 {
		t.Errorf("stable service selects %q; want %s", got, h2)
	}
	f.wantEvent("HandedOver")
	f.wantEvent("RolloutCompleted")

	// When revision 3 is aborted, then its pods go, and both Services select stable again.
	f.setImage("chat-api:v3")
	f.settle()
	h3 := TemplateHash(&f.deployment().Spec.Template)
	if rs := f.replicaSets()["chat-api-"+h3]; rs == nil || replicasOf(rs) != 1 {
		t.Fatalf("revision 3 canary replicaset: %v", rs)
	}
	f.command(engine.Abort)
	f.settle()
	ro = f.rollout()
	if ro.Status.Phase != v1alpha1.PhaseDegraded || ro.Status.StableRevision != 2 {
		t.Fatalf("after abort: phase %s stable %d: %s", ro.Status.Phase, ro.Status.StableRevision, ro.Status.Message)
	}
	if rs := f.replicaSets()["chat-api-"+h3]; rs != nil && replicasOf(rs) != 0 {
		t.Errorf("aborted canary has %d replicas; want 0", replicasOf(rs))
	}
	if got := f.selector("chat-api-canary"); got != h2 {
		t.Errorf("canary service selects %q after abort; want stable's %s", got, h2)
	}
	if c := meta.FindStatusCondition(ro.Status.Conditions, v1alpha1.ConditionHealthy); c == nil || c.Reason != "Degraded" {
		t.Errorf("Healthy condition %+v; want reason Degraded", c)
	}
	if c := progressingCondition(f.deployment()); c == nil || c.Reason != "ProgressDeadlineExceeded" || !strings.HasPrefix(c.Message, "ramp aborted revision 3: by user;") {
		t.Errorf("deployment's Progressing condition %+v; want ProgressDeadlineExceeded by ramp (kubectl rollout status fails)", c)
	}

	// When the template goes back to revision 1's (an undo), then it is a new revision 4.
	f.setImage("chat-api:v1")
	f.settle()
	ro = f.rollout()
	if ro.Status.CurrentRevision != 4 {
		t.Errorf("current revision %d after going back to v1; want 4", ro.Status.CurrentRevision)
	}
	if c := progressingCondition(f.deployment()); c == nil || c.Reason != "DeploymentPaused" {
		t.Errorf("deployment's Progressing condition %+v after a new revision; want DeploymentPaused", c)
	}
	if nums := f.controllerRevisions(); !slices.Equal(nums, []int64{2, 3, 4}) {
		t.Errorf("controller revisions %v; want [2 3 4]", nums)
	}
}

// controllerRevisions lists the revision numbers of the namespace's ControllerRevisions, in order.
func (f *fixture) controllerRevisions() []int64 {
	f.t.Helper()
	var crs appsv1.ControllerRevisionList
	if err := f.c.List(context.Background(), &crs, client.InNamespace(ns)); err != nil {
		f.t.Fatal(err)
	}
	var nums []int64
	for _, cr := range crs.Items {
		nums = append(nums, cr.Revision)
	}
	slices.Sort(nums)
	return nums
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func TestInvalidSpecAndMissingDeployment(t *testing.T) {
	for _, tt := range []struct {
		name      string
		mutate    func(ro *v1alpha1.Rollout)
		objs      []client.Object
		condition string
		reason    string
		message   string
	}{
		{
			name: "setWeight over 100",
			mutate: func(ro *v1alpha1.Rollout) {
				ro.Spec.Strategy.Canary.Steps = []v1alpha1.CanaryStep{{SetWeight: ptr(int32(150))}}
			},
			condition: v1alpha1.ConditionValid, reason: "InvalidSpec",
			message: "spec.strategy.canary.steps[0].setWeight: 150 is not between 0 and 100",
		},
		{
			name: "header route without a router",
			mutate: func(ro *v1alpha1.Rollout) {
				ro.Spec.Strategy.Canary.TrafficRouting = &v1alpha1.TrafficRouting{ManagedRoutes: []v1alpha1.ManagedRoute{{Name: "testers"}}}
				ro.Spec.Strategy.Canary.Steps = []v1alpha1.CanaryStep{{SetHeaderRoute: &v1alpha1.SetHeaderRoute{Name: "testers", Match: []v1alpha1.HeaderMatch{{HeaderName: "x-version", HeaderValue: v1alpha1.StringMatch{Exact: "canary"}}}}}}
			},
			condition: v1alpha1.ConditionValid, reason: "InvalidSpec",
			message: "spec.strategy.canary.steps[0].setHeaderRoute: cannot be done by the service (plain Service selectors) router, which cannot route by header; use trafficRouting gatewayAPI, istio, nginx or alb",
		},
		{
			name:      "no workloadRef",
			mutate:    func(ro *v1alpha1.Rollout) { ro.Spec.WorkloadRef = nil },
			condition: v1alpha1.ConditionValid, reason: "InvalidSpec",
			message: "spec.workloadRef: is required in Kubernetes mode: name the Deployment whose pod template this rollout ships",
		},
		{
			name: "builtin metric without router metrics",
			mutate: func(ro *v1alpha1.Rollout) {
				ro.Spec.Strategy.Canary.Steps = []v1alpha1.CanaryStep{{SetWeight: ptr(int32(20))}, {Analysis: &v1alpha1.RolloutAnalysis{Templates: []v1alpha1.AnalysisTemplateRef{{TemplateName: "error-rate"}}}}}
			},
			objs: []client.Object{&v1alpha1.AnalysisTemplate{
				ObjectMeta: metav1.ObjectMeta{Name: "error-rate", Namespace: ns},
				Spec: v1alpha1.AnalysisTemplateSpec{Metrics: []v1alpha1.Metric{{
					Name: "error-rate", SuccessCondition: "result < 0.05",
					Provider: v1alpha1.MetricProvider{Builtin: &v1alpha1.BuiltinMetric{Metric: "error-rate"}},
				}}},
			}},
			condition: v1alpha1.ConditionValid, reason: "InvalidSpec",
			message: `spec.strategy.canary.steps[1].analysis.templates[0]: AnalysisTemplate error-rate: spec.metrics[0].provider.builtin.metric: "error-rate" cannot be measured for rollout chat-api: the service (plain Service selectors) router exports no request metrics ramp reads (trafficRouting istio and nginx do): set spec.appMetrics to read the app's own series`,
		},
		{
			name:      "deployment missing",
			mutate:    func(ro *v1alpha1.Rollout) { ro.Spec.WorkloadRef.Name = "chat-ap" },
			condition: v1alpha1.ConditionReconciled, reason: "WorkloadNotFound",
			message: "deployment chat-ap not found in namespace team",
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ro := canaryRollout()
			tt.mutate(ro)
			f := newFixture(t, ro, tt.objs...)
			f.reconcile()
			c := meta.FindStatusCondition(f.rollout().Status.Conditions, tt.condition)
			if c == nil || c.Status != metav1.ConditionFalse || c.Reason != tt.reason || c.Message != tt.message {
				t.Fatalf("condition %s = %+v; want False %s %q", tt.condition, c, tt.reason, tt.message)
			}
			f.wantEvent(tt.reason)
			if d := f.deployment(); d.Spec.Paused {
				t.Errorf("deployment paused by a rollout that did nothing")
			}
		})
	}
}

func TestRolloutChangedPredicate(t *testing.T) {
	base := canaryRollout()
	for _, tt := range []struct {
		name   string
		change func(ro *v1alpha1.Rollout)
		want   bool
	}{
		{"own status write: times and counts", func(ro *v1alpha1.Rollout) {
			ro.Status.Message = "step 1/2"
			ro.Status.LastProgressTime = &metav1.Time{Time: time.Now()}
		}, false},
		{"spec change", func(ro *v1alpha1.Rollout) { ro.Generation++ }, true},
		{"promote", func(ro *v1alpha1.Rollout) { ro.Status.Promote = true }, true},
		{"abort", func(ro *v1alpha1.Rollout) { ro.Status.Abort = true }, true},
		{"deletion", func(ro *v1alpha1.Rollout) { ro.DeletionTimestamp = &metav1.Time{Time: time.Now()} }, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			n := base.DeepCopy()
			tt.change(n)
			if got := rolloutChanged.Update(event.UpdateEvent{ObjectOld: base, ObjectNew: n}); got != tt.want {
				t.Errorf("rolloutChanged = %v; want %v", got, tt.want)
			}
		})
	}
}

func TestEventActionKeepsDistinctMessagesApart(t *testing.T) {
	a := eventAction("StepCompleted", "step 2/7 completed")
	b := eventAction("StepCompleted", "step 3/7 completed")
	if a == b {
		t.Fatalf("two messages share the action %q: the recorder would fold them into one series", a)
	}
	if again := eventAction("StepCompleted", "step 2/7 completed"); again != a {
		t.Fatalf("the same message got actions %q and %q: repeats would not count up one series", a, again)
	}
	if !strings.HasPrefix(a, "StepCompleted-") || len(a) > 128 {
		t.Fatalf("action %q: want the reason first and at most 128 characters", a)
	}
}

// A promotion prunes the revision history beyond spec.revisionHistoryLimit, through the
// driver: the ControllerRevision of a revision no longer in use goes.
func TestPromotionPrunesHistory(t *testing.T) {
	ro := canaryRollout(v1alpha1.CanaryStep{SetWeight: ptr(int32(25))}, v1alpha1.CanaryStep{Pause: &v1alpha1.RolloutPause{}})
	ro.Spec.RevisionHistoryLimit = ptr(int32(0))
	f := newFixture(t, ro)
	f.settle()
	f.setImage("chat-api:v2")
	f.settle()
	if got := f.controllerRevisions(); !slices.Equal(got, []int64{1, 2}) {
		t.Fatalf("controller revisions %v during the canary; want [1 2]", got)
	}
	f.command(func(ro *v1alpha1.Rollout) error { return engine.Promote(ro, false) })
	f.settle()
	if st := f.rollout().Status; st.StableRevision != 2 {
		t.Fatalf("after promote: stable %d: %s", st.StableRevision, st.Message)
	}
	if got := f.controllerRevisions(); !slices.Equal(got, []int64{2}) {
		t.Errorf("controller revisions %v after the promotion; want [2]", got)
	}
}
