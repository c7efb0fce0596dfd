package k8s

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"k8s.io/client-go/rest"
	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/kube"
	"ramp.dev/ramp/test/k8senv"
)

// testUndoAndRestart checks what `ramp undo` leaves in the Deployment's own history (kubectl
// rollout history) and what `ramp restart` does, on a canary over a 3-replica Deployment:
//
//   - an undo's change-cause names ramp's and the Deployment's revision and shows on the
//     undo's revision only, not on the next unrelated one;
//   - the Deployment's old ReplicaSet of the template undone to is kept (taken over for the
//     canary and handed back), never deleted, also when the undo is aborted;
//   - an undo after an abort says that it goes back to the stable revision, not "new
//     revision";
//   - kubectl rollout restart fails on the paused Deployment, and ramp restart replaces every
//     pod of the stable revision with no new revision, never with fewer than replicas minus
//     maxUnavailable pods ready.
func testUndoAndRestart(t *testing.T, env *k8senv.Env, cfg *rest.Config, metrics *metricsServer) {
	startController(t, cfg, "undo-restart", metrics, kube.Options{})
	s := newScenario(t, env, "undo-restart", "chat-api-stable", "chat-api-canary")
	kubeArgs := []string{"--kubeconfig", env.Kubeconfig, "-n", s.ns}
	rampOK := func(args ...string) string {
		t.Helper()
		out, err := ramp(t, false, append(kubeArgs, args...)...)
		if err != nil {
			t.Fatalf("ramp %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	s.createRollout(v1alpha1.Strategy{Canary: &v1alpha1.CanaryStrategy{
		StableService: "chat-api-stable", CanaryService: "chat-api-canary",
		Steps: []v1alpha1.CanaryStep{{SetWeight: ptr(int32(50))}, {Pause: &v1alpha1.RolloutPause{}}},
	}})
	s.waitPhase(v1alpha1.PhaseHealthy, 1, 90*time.Second)
	// promoteTo waits for the canary's pause and promotes it to stable revision n.
	promoteTo := func(n int64) {
		t.Helper()
		eventually(t, 60*time.Second, "the canary pauses", func(ctx context.Context) error {
			ro, err := s.rollout(ctx)
			if err != nil {
				return err
			}
			if ro.Status.Phase != v1alpha1.PhasePaused || ro.Status.CurrentRevision != n {
				return fmt.Errorf("phase %s current %d: %s", ro.Status.Phase, ro.Status.CurrentRevision, ro.Status.Message)
			}
			return nil
		})
		rampOK("promote", "--full", "chat-api")
		s.waitPhase(v1alpha1.PhaseHealthy, n, 90*time.Second)
	}
	s.setImage(v2)
	promoteTo(2)
	s.waitReplicas(map[string]int32{v1: 0, v2: 3}, 60*time.Second)
	v1Set := s.waitDeploymentSet(v1)

	// When the team undoes revision 2, then the output names the Deployment's revision of
	// the template too, and the Deployment's old ReplicaSet of v1 runs the canary.
	out := rampOK("undo", "chat-api")
	if !strings.Contains(out, "rolled back to revision 1 (new revision 3)") || !strings.Contains(out, "ramp revision 1 is revision 1 in kubectl rollout history deployment/chat-api") {
		t.Errorf("ramp undo said: %s", out)
	}
	const undoCause = "ramp undo to ramp revision 1 (deployment revision 1)"
	eventually(t, 60*time.Second, "v1's own ReplicaSet runs the undo's canary", func(ctx context.Context) error {
		rs, err := s.setOf(ctx, v1)
		if err != nil {
			return err
		}
		if rs.UID != v1Set.UID {
			return final{fmt.Errorf("v1 runs in replicaset %s (%s), not in the Deployment's old one %s: it was replaced", rs.Name, rs.UID, v1Set.Name)}
		}
		if ref := metav1.GetControllerOf(rs); ref == nil || ref.Kind != "Rollout" || *rs.Spec.Replicas == 0 {
			return fmt.Errorf("replicaset %s: controller %v, replicas %d", rs.Name, ref, *rs.Spec.Replicas)
		}
		return nil
	})
	promoteTo(3)
	s.waitReplicas(map[string]int32{v1: 3, v2: 0}, 60*time.Second)
	if rs := s.waitDeploymentSet(v1); rs.UID != v1Set.UID {
		t.Errorf("after the promotion v1 runs in replicaset %s, not the Deployment's old %s", rs.Name, v1Set.Name)
	}
	hist := s.kubectlHistory()
	if got := hist[s.deploymentRevisionOf(v1)]; got != undoCause {
		t.Errorf("kubectl rollout history: revision of v1 has cause %q, want %q\n%v", got, undoCause, hist)
	}
	if out := rampOK("history", "chat-api"); !regexp.MustCompile(`(?m)^3 .*` + regexp.QuoteMeta(undoCause) + `.*stable,current$`).MatchString(out) {
		t.Errorf("ramp history after the undo:\n%s", out)
	}

	// When the next, unrelated change rolls out, then its revision does not show the undo's
	// cause, in kubectl's history nor in ramp's; the undo's revision keeps it.
	const v3 = "example.com/chat-api:v3"
	s.setImage(v3)
	promoteTo(4)
	s.waitReplicas(map[string]int32{v1: 0, v3: 3}, 60*time.Second)
	s.waitDeploymentSet(v3)
	d, err := s.deployment(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if c, ok := d.Annotations["kubernetes.io/change-cause"]; ok {
		t.Errorf("the Deployment keeps change-cause %q after the template changed", c)
	}
	hist = s.kubectlHistory()
	if got := hist[s.deploymentRevisionOf(v3)]; got != "<none>" {
		t.Errorf("kubectl rollout history: v3's revision has cause %q, want <none>\n%v", got, hist)
	}
	if got := hist[s.deploymentRevisionOf(v1)]; got != undoCause {
		t.Errorf("kubectl rollout history: v1's revision has cause %q, want %q\n%v", got, undoCause, hist)
	}
	if out := rampOK("history", "chat-api"); !regexp.MustCompile(`(?m)^4 .*pod template of deployment chat-api changed`).MatchString(out) {
		t.Errorf("ramp history: revision 4 should not have the undo's cause:\n%s", out)
	}

	// When the team undoes to ramp revision 2 (v2) and aborts it, then v2's ReplicaSet goes
	// back to the Deployment, not deleted: kubectl rollout history keeps it. An undo after
	// the abort says it is back on the stable revision, not that it made a new one.
	v2Set := s.waitDeploymentSet(v2)
	out = rampOK("undo", "chat-api", "--to-revision", "2")
	if !strings.Contains(out, "rolled back to revision 2 (new revision 5)") || !strings.Contains(out, "ramp revision 2 is revision 2 in kubectl rollout history") {
		t.Errorf("ramp undo --to-revision 2 said: %s", out)
	}
	eventually(t, 60*time.Second, "the undo's canary pauses", func(ctx context.Context) error {
		ro, err := s.rollout(ctx)
		if err != nil {
			return err
		}
		if ro.Status.Phase != v1alpha1.PhasePaused || ro.Status.CurrentRevision != 5 {
			return fmt.Errorf("phase %s current %d", ro.Status.Phase, ro.Status.CurrentRevision)
		}
		return nil
	})
	rampOK("abort", "chat-api")
	s.waitPhase(v1alpha1.PhaseDegraded, 4, 60*time.Second)
	out = rampOK("undo", "chat-api")
	if strings.Contains(out, "new revision") || !strings.Contains(out, "back on stable revision 4") {
		t.Errorf("ramp undo after the abort said: %s", out)
	}
	s.waitPhase(v1alpha1.PhaseHealthy, 4, 60*time.Second)
	s.waitReplicas(map[string]int32{v1: 0, v2: 0, v3: 3}, 60*time.Second)
	if rs := s.waitDeploymentSet(v2); rs.UID != v2Set.UID {
		t.Errorf("v2's ReplicaSet is %s (%s), not the Deployment's %s (%s): it was deleted", rs.Name, rs.UID, v2Set.Name, v2Set.UID)
	}
	hist = s.kubectlHistory()
	t.Logf("kubectl rollout history after undo, next change, dropped undo: %v", hist)
	if _, ok := hist[s.deploymentRevisionOf(v2)]; !ok {
		t.Errorf("kubectl rollout history lost v2's revision %s: %v", s.deploymentRevisionOf(v2), hist)
	}
	if got := hist[s.deploymentRevisionOf(v3)]; got != "<none>" {
		t.Errorf("kubectl rollout history: after the undo back to stable v3's revision has cause %q, want <none>", got)
	}

	// kubectl rollout restart is refused on the Deployment ramp keeps paused...
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	kout, kerr := env.Kubectl(ctx, "-n", s.ns, "rollout", "restart", "deployment/chat-api")
	cancel()
	if kerr == nil || !strings.Contains(string(kout), "paused") {
		t.Errorf("kubectl rollout restart on the paused Deployment: %v\n%s", kerr, kout)
	}
	// ...ramp restart replaces every pod, a pod at a time (25% of 3 is 0 unavailable, and
	// with no surge ramp takes 1), with no new revision.
	before := s.podNames(v3)
	d, err = s.deployment(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	watch := s.watchReady(v3)
	if out := rampOK("restart", "chat-api"); !strings.Contains(out, "restarting") {
		t.Errorf("ramp restart said: %s", out)
	}
	eventually(t, 90*time.Second, "every pod replaced", func(ctx context.Context) error {
		ro, err := s.rollout(ctx)
		if err != nil {
			return err
		}
		if ro.Status.RestartedAt == nil || ro.Status.RestartedAt.Before(ro.Spec.RestartAt) {
			return fmt.Errorf("restartedAt %v, restartAt %v: %s", ro.Status.RestartedAt, ro.Spec.RestartAt, ro.Status.Message)
		}
		now := s.podNames(v3)
		for name := range now {
			if before[name] {
				return final{fmt.Errorf("restart complete but pod %s is still there", name)}
			}
		}
		if len(now) != 3 {
			return fmt.Errorf("%d pods of v3", len(now))
		}
		return nil
	})
	minReady := watch()
	t.Logf("ramp restart: fewest ready pods of 3 during the restart: %d", minReady)
	if minReady < 2 {
		t.Errorf("during the restart only %d of 3 pods were ready; want at least 2", minReady)
	}
	ro, err := s.rollout(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if ro.Status.CurrentRevision != 4 || ro.Status.StableRevision != 4 || ro.Status.Phase != v1alpha1.PhaseHealthy {
		t.Errorf("after the restart: current %d stable %d phase %s; want 4, 4, Healthy", ro.Status.CurrentRevision, ro.Status.StableRevision, ro.Status.Phase)
	}
	d2, err := s.deployment(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if d2.Generation != d.Generation || !d2.Spec.Paused {
		t.Errorf("the restart changed the Deployment: generation %d -> %d, paused %v", d.Generation, d2.Generation, d2.Spec.Paused)
	}
	if out := rampOK("events", "chat-api"); !strings.Contains(out, "Restarted") {
		t.Errorf("ramp events has no Restarted:\n%s", out)
	}
}

// setOf returns the ReplicaSet (with replicas, else any) running image.
func (s *scenario) setOf(ctx context.Context, image string) (*appsv1.ReplicaSet, error) {
	var l appsv1.ReplicaSetList
	if err := s.c.List(ctx, &l, client.InNamespace(s.ns)); err != nil {
		return nil, err
	}
	var found []*appsv1.ReplicaSet
	for i := range l.Items {
		if l.Items[i].Spec.Template.Spec.Containers[0].Image == image {
			found = append(found, &l.Items[i])
		}
	}
	if len(found) != 1 {
		names := make([]string, 0, len(found))
		for _, rs := range found {
			names = append(names, rs.Name)
		}
		return nil, fmt.Errorf("%d replicasets of %s: %v; want one (never two of one template)", len(found), image, names)
	}
	return found[0], nil
}

// waitDeploymentSet waits until the Deployment owns the one ReplicaSet of image, numbered.
func (s *scenario) waitDeploymentSet(image string) *appsv1.ReplicaSet {
	s.t.Helper()
	var rs *appsv1.ReplicaSet
	eventually(s.t, 60*time.Second, "the Deployment owns the replicaset of "+image, func(ctx context.Context) error {
		var err error
		if rs, err = s.setOf(ctx, image); err != nil {
			return err
		}
		if ref := metav1.GetControllerOf(rs); ref == nil || ref.Kind != "Deployment" || rs.Annotations["deployment.kubernetes.io/revision"] == "" {
			return fmt.Errorf("replicaset %s: controller %v, annotations %v", rs.Name, ref, rs.Annotations)
		}
		return nil
	})
	return rs
}

// deploymentRevisionOf is the Deployment's revision number of image's ReplicaSet.
func (s *scenario) deploymentRevisionOf(image string) string {
	return s.waitDeploymentSet(image).Annotations["deployment.kubernetes.io/revision"]
}

// kubectlHistory runs kubectl rollout history and returns the CHANGE-CAUSE by revision.
func (s *scenario) kubectlHistory() map[string]string {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := s.env.Kubectl(ctx, "-n", s.ns, "rollout", "history", "deployment/chat-api")
	if err != nil {
		s.t.Fatalf("kubectl rollout history: %v\n%s", err, out)
	}
	hist := map[string]string{}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && regexp.MustCompile(`^\d+$`).MatchString(f[0]) {
			hist[f[0]] = strings.Join(f[1:], " ")
		}
	}
	return hist
}

// podNames are the names of image's pods that are not terminating.
func (s *scenario) podNames(image string) map[string]bool {
	s.t.Helper()
	var pods corev1.PodList
	if err := s.c.List(context.Background(), &pods, client.InNamespace(s.ns)); err != nil {
		s.t.Fatal(err)
	}
	out := map[string]bool{}
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil && p.Spec.Containers[0].Image == image {
			out[p.Name] = true
		}
	}
	return out
}

// watchReady counts image's ready pods that are not terminating, every 20 ms, until the
// returned function is called; it returns the fewest seen.
func (s *scenario) watchReady(image string) func() int {
	ctx, cancel := context.WithCancel(context.Background())
	var mu sync.Mutex
	fewest := 1 << 30
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			var pods corev1.PodList
			if err := s.c.List(ctx, &pods, client.InNamespace(s.ns)); err == nil {
				n := 0
				for _, p := range pods.Items {
					if p.DeletionTimestamp != nil || p.Spec.Containers[0].Image != image {
						continue
					}
					for _, c := range p.Status.Conditions {
						if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
							n++
						}
					}
				}
				mu.Lock()
				fewest = min(fewest, n)
				mu.Unlock()
			} else if !errors.Is(err, context.Canceled) {
				s.t.Logf("list pods: %v", err)
			}
			select {
			case <-ctx.Done():
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	return func() int {
		cancel()
		<-done
		mu.Lock()
		defer mu.Unlock()
		return fewest
	}
}
