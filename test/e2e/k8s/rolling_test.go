package k8s

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/intstr"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/kube"
	"ramp.dev/ramp/test/k8senv"
)

// testRollingUpdate rolls chat-api out with the Deployment's own rolling update, gated by
// ramp: it holds at one new pod while analysis runs, goes on when the analysis passes, and is
// undone to the previous template, as `kubectl rollout undo` would, when the analysis fails or
// the Deployment passes its progress deadline. A controller must be running.
func testRollingUpdate(t *testing.T, env *k8senv.Env, metrics *metricsServer) {
	errorRate := &v1alpha1.RolloutAnalysis{Templates: []v1alpha1.AnalysisTemplateRef{{TemplateName: "error-rate"}}}
	rolling := v1alpha1.Strategy{RollingUpdate: &v1alpha1.RollingUpdateStrategy{
		MaxSurge: ptr(intstr.FromInt32(1)), MaxUnavailable: ptr(intstr.FromInt32(0)),
		Pause: &v1alpha1.RollingUpdatePause{Updated: intstr.FromInt32(1), Duration: ptr(intstr.FromString("8s")), Analysis: errorRate},
	}}

	// start gives a running Deployment a rolling-update Rollout and waits until revision 1 is
	// stable and ramp holds the Deployment paused.
	start := func(t *testing.T, ns string, strategy v1alpha1.Strategy) *scenario {
		s := newScenario(t, env, ns)
		s.createRollout(strategy)
		s.waitPhase(v1alpha1.PhaseHealthy, 1, 90*time.Second)
		s.waitReplicas(map[string]int32{v1: 3}, 30*time.Second)
		eventually(t, 30*time.Second, "the Deployment paused for ramp", func(ctx context.Context) error {
			d, err := s.deployment(ctx)
			if err != nil {
				return err
			}
			if !d.Spec.Paused || d.Annotations[kube.AnnotationPausedBy] != "chat-api" {
				return fmt.Errorf("paused %v, annotations %v", d.Spec.Paused, d.Annotations)
			}
			return nil
		})
		return s
	}
	// undone checks that the rollout ended Degraded, saying why and that it was undone, and
	// that the Deployment runs revision 1's template fully again.
	undone := func(t *testing.T, s *scenario, why string) {
		ro := s.waitPhase(v1alpha1.PhaseDegraded, 1, 90*time.Second)
		if !strings.Contains(ro.Status.Message, why) || !strings.Contains(ro.Status.Message, "undone") {
			t.Errorf("degraded message %q does not say %q and that the update was undone", ro.Status.Message, why)
		}
		s.waitReplicas(map[string]int32{v1: 3}, 60*time.Second)
		eventually(t, 30*time.Second, "the Deployment has the template of revision 1 again, fully rolled back and paused", func(ctx context.Context) error {
			d, err := s.deployment(ctx)
			if err != nil {
				return err
			}
			if img := d.Spec.Template.Spec.Containers[0].Image; img != v1 || len(d.Spec.Template.Labels) != 1 {
				return fmt.Errorf("template image %s, labels %v", img, d.Spec.Template.Labels)
			}
			if !d.Spec.Paused || d.Status.UpdatedReplicas != 3 || d.Status.AvailableReplicas != 3 || d.Status.Replicas != 3 {
				return fmt.Errorf("paused %v, status %+v", d.Spec.Paused, d.Status)
			}
			return nil
		})
		if out, err := s.kubectlRolloutStatus(); err != nil || !strings.Contains(out, "successfully rolled out") {
			t.Errorf("kubectl rollout status after the undo: %v\n%s", err, out)
		}
		if out, err := ramp(t, false, "--kubeconfig", env.Kubeconfig, "-n", s.ns, "events", "chat-api"); err != nil || !strings.Contains(out, "RolloutUndone") {
			t.Errorf("ramp events has no RolloutUndone: %v\n%s", err, out)
		}
		// The rollout stays Degraded on revision 2: the controller does not take the undo for
		// a new change.
		ro, err := s.rollout(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if ro.Status.Phase != v1alpha1.PhaseDegraded || ro.Status.CurrentRevision != 2 || ro.Status.AbortedRevision != 2 {
			t.Errorf("after the undo: phase %s, current %d, aborted %d", ro.Status.Phase, ro.Status.CurrentRevision, ro.Status.AbortedRevision)
		}
	}

	t.Run("healthy", func(t *testing.T) {
		t.Parallel()
		s := start(t, "rolling-healthy", rolling)

		// When the image changes through the API, then the Deployment controller rolls one new
		// pod beside the three old ones, and ramp holds it there, paused, while the analysis
		// runs.
		s.setImage(v2)
		eventually(t, 60*time.Second, "the update holds at 1 new pod while analysis runs", func(ctx context.Context) error {
			ro, err := s.rollout(ctx)
			if err != nil {
				return err
			}
			if ro.Status.Phase != v1alpha1.PhasePaused || ro.Status.CurrentRevision != 2 {
				return fmt.Errorf("phase %s current %d: %s", ro.Status.Phase, ro.Status.CurrentRevision, ro.Status.Message)
			}
			if !hasRun(ro, "pause-2") {
				return fmt.Errorf("no pause analysis run in %+v", ro.Status.Analysis)
			}
			d, err := s.deployment(ctx)
			if err != nil {
				return err
			}
			// The pause point is 1 new pod; the Deployment controller may have taken one more
			// maxSurge step (1) before ramp paused it, never more, and never all of them.
			if !d.Spec.Paused || d.Status.UpdatedReplicas < 1 || d.Status.UpdatedReplicas > 2 {
				return fmt.Errorf("deployment paused %v, %d updated replicas", d.Spec.Paused, d.Status.UpdatedReplicas)
			}
			got, _, err := s.replicaSets(ctx)
			if err != nil {
				return err
			}
			if got[v2] < 1 || got[v2] > 2 || got[v1] < 2 || got[v1]+got[v2] > 4 {
				return fmt.Errorf("replicas by image %v", got)
			}
			return nil
		})

		// When the analysis passes, then the Deployment rolls on to revision 2 and ramp
		// pauses it again.
		s.waitPhase(v1alpha1.PhaseHealthy, 2, 90*time.Second)
		s.waitReplicas(map[string]int32{v1: 0, v2: 3}, 60*time.Second)
		eventually(t, 30*time.Second, "the Deployment paused again", func(ctx context.Context) error {
			d, err := s.deployment(ctx)
			if err != nil {
				return err
			}
			if !d.Spec.Paused || d.Spec.Strategy.RollingUpdate.MaxSurge.IntValue() != 1 {
				return fmt.Errorf("paused %v, strategy %+v", d.Spec.Paused, d.Spec.Strategy)
			}
			return nil
		})
		if out, err := s.kubectlRolloutStatus(); err != nil || !strings.Contains(out, "successfully rolled out") {
			t.Errorf("kubectl rollout status after the rollout: %v\n%s", err, out)
		}
	})

	t.Run("failing analysis is undone", func(t *testing.T) {
		t.Parallel()
		s := start(t, "rolling-failing", rolling)
		metrics.set("rolling-failing/chat-api", 2, 0.5)
		s.setImage(v2)
		undone(t, s, "analysis pause-2 failed")

		// When the cause is fixed and the user retries, then ramp writes revision 2's
		// template back and it rolls out again, through the pause.
		metrics.set("rolling-failing/chat-api", 2, 0)
		if out, err := ramp(t, false, "--kubeconfig", env.Kubeconfig, "-n", s.ns, "retry", "chat-api"); err != nil {
			t.Fatalf("ramp retry: %v\n%s", err, out)
		}
		s.waitPhase(v1alpha1.PhaseHealthy, 2, 90*time.Second)
		s.waitReplicas(map[string]int32{v1: 0, v2: 3}, 60*time.Second)
		d, err := s.deployment(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if v, ok := d.Annotations[kube.AnnotationUndoneRevision]; ok || d.Spec.Template.Spec.Containers[0].Image != v2 {
			t.Errorf("after the retry: undone-revision %q, image %s", v, d.Spec.Template.Spec.Containers[0].Image)
		}
	})

	t.Run("progress deadline is undone", func(t *testing.T) {
		t.Parallel()
		s := start(t, "rolling-deadline", v1alpha1.Strategy{RollingUpdate: &v1alpha1.RollingUpdateStrategy{
			MaxSurge: ptr(intstr.FromInt32(1)), MaxUnavailable: ptr(intstr.FromInt32(0)),
		}})
		// When revision 2's pods never become ready and the Deployment's own progress deadline
		// (5s, well before the Rollout's) passes, then ramp undoes the update.
		eventually(t, 10*time.Second, "the Rollout's progress deadline", func(ctx context.Context) error {
			ro, err := s.rollout(ctx)
			if err != nil {
				return err
			}
			ro.Spec.ProgressDeadlineSeconds = ptr(int32(600))
			return s.c.Update(ctx, ro)
		})
		eventually(t, 10*time.Second, "a broken revision 2", func(ctx context.Context) error {
			d, err := s.deployment(ctx)
			if err != nil {
				return err
			}
			d.Spec.ProgressDeadlineSeconds = ptr(int32(5))
			d.Spec.Template.Spec.Containers[0].Image = v2
			d.Spec.Template.Labels["kwok.ramp.dev/not-ready"] = "true"
			return s.c.Update(ctx, d)
		})
		undone(t, s, "exceeded its progress deadline")
	})
}

func hasRun(ro *v1alpha1.Rollout, name string) bool {
	for _, r := range ro.Status.Analysis {
		if r.Name == name {
			return true
		}
	}
	return false
}
