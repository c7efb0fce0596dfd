package kube

import (
	"context"
	"io"
	"log/slog"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/engine"
)

// rollingWorld is a rollout with stable revision 1 (image v1) and revision 2 (v2), over a
// Deployment of 3 replicas whose template is image; the Deployment runs updated pods of its
// template.
func rollingWorld(image string, updated int32) (*v1alpha1.Rollout, *world) {
	ro := &v1alpha1.Rollout{
		ObjectMeta: metav1.ObjectMeta{Name: "chat-api", Namespace: ns, UID: "ro-uid"},
		Spec: v1alpha1.RolloutSpec{WorkloadRef: &v1alpha1.WorkloadRef{Name: "chat-api"}, Strategy: v1alpha1.Strategy{
			RollingUpdate: &v1alpha1.RollingUpdateStrategy{Pause: &v1alpha1.RollingUpdatePause{Updated: intstr.FromInt32(1)}},
		}},
		Status: v1alpha1.RolloutStatus{StableRevision: 1, CurrentRevision: 2, CanaryRevision: 2, CurrentStepIndex: ptr(int32(0))},
	}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "chat-api", Namespace: ns, UID: "d-uid", Generation: 2, Annotations: map[string]string{}},
		Spec:       appsv1.DeploymentSpec{Replicas: ptr(int32(3)), Template: podTemplate(image)},
		Status:     appsv1.DeploymentStatus{ObservedGeneration: 2, Replicas: 3 + updated, UpdatedReplicas: updated, AvailableReplicas: 3},
	}
	w := &world{deploy: d, byNumber: map[int64]*revision{}, byHash: map[string]*revision{}}
	for n, img := range map[int64]string{1: "v1", 2: "v2"} {
		t := podTemplate(img)
		rev := &revision{number: n, hash: TemplateHash(&t), template: t}
		w.byNumber[n], w.byHash[rev.hash] = rev, rev
	}
	w.current = w.byHash[TemplateHash(&d.Spec.Template)]
	t := podTemplate(image)
	w.sets = []*appsv1.ReplicaSet{{Spec: appsv1.ReplicaSetSpec{Replicas: &updated, Template: t}}}
	return ro, w
}

// What the engine is told of the Deployment (the gate itself is decided and tested in the
// engine: TestWorkloadGate).
func TestObserveWorkload(t *testing.T) {
	for _, tc := range []struct {
		name    string
		image   string
		updated int32
		change  func(w *world)
		want    engine.Workload
	}{
		{name: "rolling", image: "v2", updated: 1, want: engine.Workload{Revision: 2, Updated: 1}},
		// The cache may show the Deployment's status before the ReplicaSet the controller just
		// made: the update has reached the pause point all the same.
		{name: "updated by the Deployment's status", image: "v2", updated: 0, change: func(w *world) { w.deploy.Status.UpdatedReplicas = 1 },
			want: engine.Workload{Revision: 2, Updated: 1}},
		{name: "complete", image: "v1", updated: 3, change: func(w *world) { w.deploy.Status.Replicas = 3 },
			want: engine.Workload{Revision: 1, Updated: 3, Complete: true}},
		{name: "just paused", image: "v1", updated: 3, change: func(w *world) {
			w.deploy.Status.Replicas = 3
			w.deploy.Spec.Paused, w.deploy.Generation = true, 3
		}, want: engine.Workload{Revision: 1, Updated: 3, Stale: true, Held: true}},
		{name: "its own progress deadline", image: "v2", updated: 1, change: func(w *world) {
			w.deploy.Status.Conditions = []appsv1.DeploymentCondition{{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionFalse,
				Reason: reasonTimedOut, Message: `ReplicaSet "chat-api-x" has timed out progressing.`}}
		}, want: engine.Workload{Revision: 2, Updated: 1, DeadlineExceeded: `ReplicaSet "chat-api-x" has timed out progressing.`}},
		// The condition ramp writes on an abort is no verdict of the Deployment's.
		{name: "ramp's own abort condition", image: "v1", updated: 1, change: func(w *world) {
			w.deploy.Status.Conditions = []appsv1.DeploymentCondition{{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionFalse,
				Reason: reasonTimedOut, Message: abortPrefix + "2: by user"}}
		}, want: engine.Workload{Revision: 1, Updated: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, w := rollingWorld(tc.image, tc.updated)
			if tc.change != nil {
				tc.change(w)
			}
			tc.want.Name = "deployment chat-api"
			if got := observeWorkload(w); *got != tc.want {
				t.Errorf("observed %+v, want %+v", *got, tc.want)
			}
		})
	}
}

func TestObserveRolling(t *testing.T) {
	r := &Reconciler{}

	// The template ramp wrote back in an undo keeps the undone revision current.
	ro, w := rollingWorld("v1", 3)
	w.deploy.Annotations[AnnotationUndoneRevision] = "2"
	r.observeRolling(ro, w)
	if w.current.number != 2 {
		t.Errorf("current revision %d after ramp's undo, want 2", w.current.number)
	}
	// Any other template is itself.
	ro, w = rollingWorld("v2", 1)
	w.deploy.Annotations[AnnotationUndoneRevision] = "2"
	r.observeRolling(ro, w)
	if w.current.number != 2 || ro.Status.Abort {
		t.Errorf("current %d abort %v", w.current.number, ro.Status.Abort)
	}
}

func TestValidateAcceptsRollingUpdate(t *testing.T) {
	ro, _ := rollingWorld("v2", 0)
	ro.Spec.Strategy.RollingUpdate.Pause.Analysis = &v1alpha1.RolloutAnalysis{Templates: []v1alpha1.AnalysisTemplateRef{{TemplateName: "error-rate"}}}
	if errs := Validate(ro); len(errs) > 0 {
		t.Fatalf("Validate: %v", errs)
	}
}

// A hold decided on a stale copy of the Deployment (the cache still shows ramp's earlier pause
// while the Deployment rolls, unpaused) is not lost: the patch says spec.paused even when the
// stale copy already did.
func TestRollingHoldOnAStaleDeploymentIsNotLost(t *testing.T) {
	ro, w := rollingWorld("v2", 1)
	w.deploy.Spec.Paused = true
	w.deploy.Annotations[AnnotationPausedBy] = "chat-api"
	w.deploy.Annotations[AnnotationManagedBy] = "chat-api"
	c := fake.NewClientBuilder().WithScheme(Scheme()).WithObjects(w.deploy.DeepCopy()).Build()
	ctx := context.Background()
	live := &appsv1.Deployment{}
	if err := c.Get(ctx, client.ObjectKeyFromObject(w.deploy), live); err != nil {
		t.Fatal(err)
	}
	w.deploy.ResourceVersion = live.ResourceVersion
	// ramp unpaused it to roll towards the pause point; the cache has not seen that yet.
	live.Spec.Paused = false
	if err := c.Update(ctx, live); err != nil {
		t.Fatal(err)
	}
	r := NewReconciler(c, events.NewFakeRecorder(10), ReconcilerOptions{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	err := r.carryOutRolling(ctx, ro, w, &engine.WorkloadGate{Revision: 2, Roll: false})
	if err := c.Get(ctx, client.ObjectKeyFromObject(w.deploy), live); err != nil {
		t.Fatal(err)
	}
	if err != nil || !live.Spec.Paused {
		t.Fatalf("the Deployment rolls on past the pause point: paused %v, carry-out error %v", live.Spec.Paused, err)
	}
}

// carryOutRolling does what the engine's gate says: stable's template back with the undone
// revision noted (an undo), and on retry the revision's template again without the note.
func TestCarryOutRollingUndoAndRetry(t *testing.T) {
	ro, w := rollingWorld("v2", 1)
	ro.Status.Abort, ro.Status.AbortedRevision = true, 2
	c := fake.NewClientBuilder().WithScheme(Scheme()).WithObjects(w.deploy.DeepCopy()).Build()
	ctx := context.Background()
	r := NewReconciler(c, events.NewFakeRecorder(10), ReconcilerOptions{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	live := func() *appsv1.Deployment {
		t.Helper()
		d := &appsv1.Deployment{}
		if err := c.Get(ctx, client.ObjectKeyFromObject(w.deploy), d); err != nil {
			t.Fatal(err)
		}
		return d
	}

	if err := r.carryOutRolling(ctx, ro, w, &engine.WorkloadGate{Revision: 1, Roll: true}); err != nil {
		t.Fatal(err)
	}
	d := live()
	if TemplateHash(&d.Spec.Template) != w.byNumber[1].hash || d.Annotations[AnnotationUndoneRevision] != "2" || d.Spec.Paused {
		t.Fatalf("after the undo: template of revision %v, undone %q, paused %v", w.byHash[TemplateHash(&d.Spec.Template)], d.Annotations[AnnotationUndoneRevision], d.Spec.Paused)
	}

	w.deploy = d
	r.observeRolling(ro, w)
	if w.current.number != 2 {
		t.Fatalf("current revision %d after the undo, want 2", w.current.number)
	}
	ro.Status.Abort, ro.Status.AbortedRevision = false, 0
	if err := r.carryOutRolling(ctx, ro, w, &engine.WorkloadGate{Revision: 2, Roll: false}); err != nil {
		t.Fatal(err)
	}
	d = live()
	if TemplateHash(&d.Spec.Template) != w.byNumber[2].hash || d.Annotations[AnnotationUndoneRevision] != "" || !d.Spec.Paused {
		t.Fatalf("after the retry: template of revision %v, undone %q, paused %v", w.byHash[TemplateHash(&d.Spec.Template)], d.Annotations[AnnotationUndoneRevision], d.Spec.Paused)
	}

	// No gate (no stable revision yet): the Deployment is left alone.
	before := live().ResourceVersion
	if err := r.carryOutRolling(ctx, ro, w, nil); err != nil || live().ResourceVersion != before {
		t.Fatalf("carried out a nil gate: %v", err)
	}
}
