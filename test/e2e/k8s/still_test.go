package k8s

import (
	"context"
	"fmt"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/kube"
	"ramp.dev/ramp/test/k8senv"
)

// TestSettledRolloutsStayStill: once a Rollout over a Deployment (workloadRef) has promoted a
// revision and the Deployment controller has caught up, nothing moves any more: ramp keeps the
// Deployment paused (also a gated rolling update's, between rollouts) and writes no change to
// its spec for a whole window. Each strategy keeps its default watch window, as the examples do.
func TestSettledRolloutsStayStill(t *testing.T) {
	env := k8senv.Start(t)
	cfg := installRamp(t, env)
	metrics := newMetricsServer(t)
	startController(t, cfg, "still", metrics, kube.Options{})
	cs, err := kubernetes.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name     string
		strategy v1alpha1.Strategy
	}{
		{"canary", v1alpha1.Strategy{Canary: &v1alpha1.CanaryStrategy{Steps: []v1alpha1.CanaryStep{{SetWeight: ptr(int32(34))}, {SetWeight: ptr(int32(100))}}}}},
		{"rolling", v1alpha1.Strategy{RollingUpdate: &v1alpha1.RollingUpdateStrategy{
			MaxSurge: ptr(intstr.FromInt32(1)), MaxUnavailable: ptr(intstr.FromInt32(0)),
			Pause: &v1alpha1.RollingUpdatePause{Updated: intstr.FromInt32(1), Duration: ptr(intstr.FromString("2s"))},
		}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newScenario(t, env, "still-"+tc.name)
			ro := &v1alpha1.Rollout{
				ObjectMeta: metav1.ObjectMeta{Name: "chat-api", Namespace: s.ns},
				Spec:       v1alpha1.RolloutSpec{WorkloadRef: &v1alpha1.WorkloadRef{Name: "chat-api"}, Strategy: tc.strategy},
			}
			if err := s.c.Create(context.Background(), ro); err != nil {
				t.Fatal(err)
			}
			s.waitPhase(v1alpha1.PhaseHealthy, 1, 90*time.Second)
			waitStill(t, s, cs, v1, true)

			s.setImage(v2)
			s.waitPhase(v1alpha1.PhaseHealthy, 2, 120*time.Second)
			waitStill(t, s, cs, v2, tc.strategy.RollingUpdate != nil)
		})
	}
}

// waitStill waits until the Deployment has image, paused by ramp and seen by its controller
// (and, when complete, runs it fully: a rolling update's own rollout, or any first revision;
// a canary's promoted ReplicaSet is ramp's until its watch window ends), then watches it for a window: ramp must change nothing of its spec (its
// generation) and keep it paused.
func waitStill(t *testing.T, s *scenario, cs kubernetes.Interface, image string, complete bool) {
	t.Helper()
	var rv string
	var gen int64
	eventually(t, 60*time.Second, "the Deployment settled on "+image+" and paused", func(ctx context.Context) error {
		d, err := s.deployment(ctx)
		if err != nil {
			return err
		}
		st := d.Status
		if img := d.Spec.Template.Spec.Containers[0].Image; img != image || !d.Spec.Paused || d.Annotations[kube.AnnotationPausedBy] != "chat-api" ||
			st.ObservedGeneration < d.Generation || complete && !fullyRolled(d) {
			return fmt.Errorf("image %s, paused %v (by %q), generation %d, status %+v", img, d.Spec.Paused, d.Annotations[kube.AnnotationPausedBy], d.Generation, st)
		}
		rv, gen = d.ResourceVersion, d.Generation
		return nil
	})
	const window = 20 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), window)
	defer cancel()
	w, err := cs.AppsV1().Deployments(s.ns).Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=chat-api", ResourceVersion: rv})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	ro, err := s.rollout(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var roEvents []string
	wc, err := client.NewWithWatch(s.env.Config, client.Options{Scheme: kube.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	rw, err := wc.Watch(ctx, &v1alpha1.RolloutList{}, client.InNamespace(s.ns), &client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: ro.ResourceVersion}})
	if err != nil {
		t.Fatal(err)
	}
	defer rw.Stop()
	roDone := make(chan struct{})
	go func() {
		defer close(roDone)
		for ev := range rw.ResultChan() {
			if r, ok := ev.Object.(*v1alpha1.Rollout); ok && ev.Type != watch.Bookmark {
				roEvents = append(roEvents, fmt.Sprintf("%s %s generation %d phase %s: %s", ev.Type, r.ResourceVersion, r.Generation, r.Status.Phase, r.Status.Message))
			}
		}
	}()
	events := 0
	for ev := range w.ResultChan() {
		d, ok := ev.Object.(*appsv1.Deployment)
		if !ok || ev.Type == watch.Bookmark {
			continue
		}
		events++
		if !d.Spec.Paused {
			t.Errorf("%s: the Deployment was unpaused between rollouts (generation %d, status %+v)", time.Now().UTC().Format(time.TimeOnly), d.Generation, d.Status)
		}
		if d.Generation != gen {
			t.Errorf("%s: the Deployment's spec changed between rollouts: generation %d, was %d, paused %v, annotations %v", time.Now().UTC().Format(time.TimeOnly), d.Generation, gen, d.Spec.Paused, d.Annotations)
		}
	}
	rw.Stop()
	<-roDone
	// ramp writes nothing either: the Rollout's status stays as it is.
	if len(roEvents) > 0 {
		t.Errorf("the settled Rollout changed %d times in %s: %v", len(roEvents), window, roEvents)
	}
	t.Logf("%d changes of the settled Deployment in %s", events, window)
}

// fullyRolled reports whether d runs its template fully and nothing else.
func fullyRolled(d *appsv1.Deployment) bool {
	n, st := *d.Spec.Replicas, d.Status
	return st.UpdatedReplicas == n && st.Replicas == n && st.AvailableReplicas == n
}
