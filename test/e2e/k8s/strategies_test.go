package k8s

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/kube"
	"ramp.dev/ramp/test/k8senv"
	"ramp.dev/ramp/test/testkit"
)

const (
	v1 = "example.com/chat-api:v1"
	v2 = "example.com/chat-api:v2"
)

// TestKubernetesMode runs ramp's controller, with exactly the ClusterRole of config/rbac, on a
// real control plane, and rolls out chat-api with each strategy: healthy revisions become
// stable, failing analysis sends traffic back to stable, a restarted controller resumes, and
// of two controllers one leads at a time.
func TestKubernetesMode(t *testing.T) {
	env := k8senv.Start(t)
	cfg := installRamp(t, env)
	metrics := newMetricsServer(t)

	t.Run("strategies", func(t *testing.T) {
		metricsAddr := testkit.FreeAddr(t)
		startController(t, cfg, "controller", metrics, kube.Options{MetricsBindAddress: metricsAddr})

		analysisStep := v1alpha1.CanaryStep{Analysis: &v1alpha1.RolloutAnalysis{Templates: []v1alpha1.AnalysisTemplateRef{{TemplateName: "error-rate"}}}}
		canary := func(services bool) v1alpha1.Strategy {
			c := &v1alpha1.CanaryStrategy{Steps: []v1alpha1.CanaryStep{{SetWeight: ptr(int32(34))}, analysisStep, {SetWeight: ptr(int32(67))}}}
			if services {
				c.StableService, c.CanaryService = "chat-api-stable", "chat-api-canary"
			}
			return v1alpha1.Strategy{Canary: c}
		}
		blueGreen := v1alpha1.Strategy{BlueGreen: &v1alpha1.BlueGreenStrategy{
			ActiveService: "chat-api-active", PreviewService: "chat-api-preview", ScaleDownDelaySeconds: ptr(int32(0)),
			PrePromotionAnalysis: &v1alpha1.RolloutAnalysis{Templates: []v1alpha1.AnalysisTemplateRef{{TemplateName: "error-rate"}}},
		}}
		t.Run("each", func(t *testing.T) {
			for _, tc := range []struct {
				name     string
				strategy v1alpha1.Strategy
				services []string
				// stable, new are the Services that select the stable and the new revision.
				stable, new string
				errRate     float64
			}{
				{"canary-services-healthy", canary(true), []string{"chat-api-stable", "chat-api-canary"}, "chat-api-stable", "chat-api-canary", 0},
				{"canary-services-failing", canary(true), []string{"chat-api-stable", "chat-api-canary"}, "chat-api-stable", "chat-api-canary", 0.5},
				{"canary-replicas-healthy", canary(false), nil, "", "", 0},
				{"canary-replicas-failing", canary(false), nil, "", "", 0.5},
				{"bluegreen-healthy", blueGreen, []string{"chat-api-active", "chat-api-preview"}, "chat-api-active", "chat-api-preview", 0},
				{"bluegreen-failing", blueGreen, []string{"chat-api-active", "chat-api-preview"}, "chat-api-active", "chat-api-preview", 0.5},
			} {
				t.Run(tc.name, func(t *testing.T) {
					t.Parallel()
					s := newScenario(t, env, tc.name, tc.services...)

					// Given a Rollout over a running Deployment, revision 1 is stable and the
					// Deployment is paused for ramp.
					s.createRollout(tc.strategy)
					s.waitPhase(v1alpha1.PhaseHealthy, 1, 90*time.Second)
					s.waitReplicas(map[string]int32{v1: 3}, 30*time.Second)
					if tc.stable != "" {
						s.waitSelects(tc.stable, v1)
					}
					if out, err := s.kubectlRolloutStatus(); err != nil || !strings.Contains(out, "successfully rolled out") {
						t.Fatalf("kubectl rollout status before the change: %v\n%s", err, out)
					}

					// When the image changes through the API (kubectl set image, terraform apply),
					// then revision 2 rolls out beside the stable one.
					s.setImage(v2)
					eventually(t, 60*time.Second, "revision 2 runs beside revision 1", func(ctx context.Context) error {
						ro, err := s.rollout(ctx)
						if err != nil {
							return err
						}
						if ro.Status.CurrentRevision != 2 {
							return fmt.Errorf("current revision %d", ro.Status.CurrentRevision)
						}
						got, owners, err := s.replicaSets(ctx)
						if err != nil {
							return err
						}
						if got[v1] != 3 || got[v2] == 0 || owners[v2] != "Rollout" {
							return fmt.Errorf("replicas by image %v, owners %v", got, owners)
						}
						if tc.new != "" {
							if err := s.selectsImage(ctx, tc.new, v2); err != nil {
								return err
							}
							return s.selectsImage(ctx, tc.stable, v1)
						}
						return nil
					})

					// The analysis measures every second, three times: the error rate changes
					// while it runs, after the test saw the new pods.
					metrics.set(tc.name+"/chat-api", 2, tc.errRate)
					if tc.errRate > 0 {
						// When the analysis fails, then the rollout aborts, the new pods go, and
						// every Service selects stable.
						ro := s.waitPhase(v1alpha1.PhaseDegraded, 1, 90*time.Second)
						if !strings.Contains(ro.Status.Message, "analysis") {
							t.Errorf("degraded message %q does not say the analysis failed", ro.Status.Message)
						}
						s.waitReplicas(map[string]int32{v1: 3}, 60*time.Second)
						if tc.stable != "" {
							s.waitSelects(tc.stable, v1)
							s.waitSelects(tc.new, v1)
						}
						// The team's `kubectl rollout status` fails as for a failed rollout.
						if out, err := s.kubectlRolloutStatus(); err == nil || !strings.Contains(out, "exceeded its progress deadline") {
							t.Errorf("kubectl rollout status after the abort: %v\n%s", err, out)
						}
						cond := meta.FindStatusCondition(ro.Status.Conditions, v1alpha1.ConditionHealthy)
						if cond == nil || cond.Status != metav1.ConditionFalse || cond.Reason != "Degraded" {
							t.Errorf("Healthy condition %+v; want False, Degraded", cond)
						}
						return
					}

					// When the analysis passes, then revision 2 becomes stable in the
					// Deployment's own ReplicaSet, and kubectl sees the Deployment rolled out.
					s.waitPhase(v1alpha1.PhaseHealthy, 2, 90*time.Second)
					s.waitReplicas(map[string]int32{v1: 0, v2: 3}, 60*time.Second)
					eventually(t, 30*time.Second, "the Deployment owns revision 2", func(ctx context.Context) error {
						_, owners, err := s.replicaSets(ctx)
						if err != nil {
							return err
						}
						if owners[v2] != "Deployment" {
							return fmt.Errorf("owners %v", owners)
						}
						return nil
					})
					if tc.stable != "" {
						s.waitSelects(tc.stable, v2)
					}
					if out, err := s.kubectlRolloutStatus(); err != nil || !strings.Contains(out, "successfully rolled out") {
						t.Errorf("kubectl rollout status after the rollout: %v\n%s", err, out)
					}
					if out, err := ramp(t, false, "--kubeconfig", env.Kubeconfig, "-n", tc.name, "history", "chat-api"); err != nil || !regexp.MustCompile(`(?m)^2 .*stable,.*current$`).MatchString(out) {
						t.Errorf("ramp history: %v\n%s", err, out)
					}
				})
			}
		})

		// The controller's metrics are served.
		resp, err := http.Get("http://" + metricsAddr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(body), `controller_runtime_reconcile_total{controller="rollout"`) {
			t.Errorf("/metrics lacks the rollout controller's reconcile counts:\n%.2000s", body)
		}
	})

	t.Run("rollingUpdate", func(t *testing.T) {
		startController(t, cfg, "rolling", metrics, kube.Options{})
		testRollingUpdate(t, env, metrics)
	})

	t.Run("routers", func(t *testing.T) { testRouters(t, env, cfg, metrics) })

	t.Run("traffic truth", func(t *testing.T) { testTrafficTruth(t, env, cfg, metrics) })

	t.Run("router metrics", func(t *testing.T) { testRouterMetrics(t, env, cfg, metrics) })
	t.Run("prometheus auth", func(t *testing.T) { testPrometheusAuth(t, env) })
	t.Run("job analysis", func(t *testing.T) { testJobAnalysis(t, env, cfg, metrics) })
	t.Run("undo and restart", func(t *testing.T) { testUndoAndRestart(t, env, cfg, metrics) })
	t.Run("pod restarts", func(t *testing.T) { testPodRestarts(t, env, cfg, metrics) })
	t.Run("watch window", func(t *testing.T) { testWatchWindow(t, env, cfg, metrics) })
	t.Run("dashboard", func(t *testing.T) { testDashboard(t, env, cfg, metrics) })
	t.Run("team workflows", func(t *testing.T) { testTeamWorkflows(t, env, cfg, metrics) })
	t.Run("gate webhooks", func(t *testing.T) { testGateWebhooks(t, env, cfg, metrics) })
	t.Run("notifications", func(t *testing.T) { testNotifications(t, env, cfg, metrics) })

	t.Run("restart mid-rollout", func(t *testing.T) {
		s := newScenario(t, env, "restart", "chat-api-stable", "chat-api-canary")
		c1Metrics := testkit.FreeAddr(t)
		c1 := startController(t, cfg, "first", metrics, kube.Options{MetricsBindAddress: c1Metrics})
		s.createRollout(v1alpha1.Strategy{Canary: &v1alpha1.CanaryStrategy{
			StableService: "chat-api-stable", CanaryService: "chat-api-canary",
			Steps: []v1alpha1.CanaryStep{{SetWeight: ptr(int32(50))}, {Pause: &v1alpha1.RolloutPause{}}},
		}})
		s.waitPhase(v1alpha1.PhaseHealthy, 1, 90*time.Second)
		s.setImage(v2)
		s.waitPhase(v1alpha1.PhasePaused, 1, 60*time.Second)
		// The controller's /metrics shows the paused canary as its status says (ramp's own
		// metrics, internal/rampmetrics).
		checkRampMetrics(t, c1Metrics, s, "canary")

		// Given a controller stopped while the rollout waits for a promote, when another
		// starts and the user promotes with the CLI, then the rollout completes.
		c1.stop()
		startController(t, cfg, "second", metrics, kube.Options{})
		if out, err := ramp(t, true, "--kubeconfig", env.Kubeconfig, "-n", "restart", "promote", "chat-api"); err != nil {
			t.Fatalf("kubectl-ramp promote: %v\n%s", err, out)
		}
		s.waitPhase(v1alpha1.PhaseHealthy, 2, 90*time.Second)
		s.waitReplicas(map[string]int32{v1: 0, v2: 3}, 60*time.Second)
		if out, err := ramp(t, false, "--kubeconfig", env.Kubeconfig, "-n", "restart", "status", "chat-api", "--timeout", "30s"); err != nil {
			t.Errorf("ramp status: %v\n%s", err, out)
		}

		// The verbs read the cluster: get, events; undo rolls back to revision 1's template as
		// revision 3.
		kubeArgs := []string{"--kubeconfig", env.Kubeconfig, "-n", "restart"}
		if out, err := ramp(t, true, append(kubeArgs, "get", "chat-api")...); err != nil || !regexp.MustCompile(`chat-api\s+canary\s+Healthy`).MatchString(out) {
			t.Errorf("kubectl-ramp get: %v\n%s", err, out)
		}
		if out, err := ramp(t, false, append(kubeArgs, "events", "chat-api")...); err != nil || !strings.Contains(out, "RolloutCompleted") || !strings.Contains(out, "HandedOver") {
			t.Errorf("ramp events: %v\n%s", err, out)
		}
		if out, err := ramp(t, false, append(kubeArgs, "undo", "chat-api")...); err != nil || !strings.Contains(out, "new revision 3") {
			t.Fatalf("ramp undo: %v\n%s", err, out)
		}
		s.waitPhase(v1alpha1.PhasePaused, 2, 60*time.Second)
		if out, err := ramp(t, false, append(kubeArgs, "promote", "--full", "chat-api")...); err != nil {
			t.Fatalf("ramp promote --full: %v\n%s", err, out)
		}
		s.waitPhase(v1alpha1.PhaseHealthy, 3, 60*time.Second)
		s.waitReplicas(map[string]int32{v1: 3, v2: 0}, 60*time.Second)
		if out, err := ramp(t, false, append(kubeArgs, "history", "chat-api")...); err != nil || !regexp.MustCompile(`(?m)^3 .*ramp undo to ramp revision 1 \(deployment revision 1\).*stable,current$`).MatchString(out) {
			t.Errorf("ramp history after undo: %v\n%s", err, out)
		}
		// -o json|yaml print the same from the cluster.
		if out, err := ramp(t, false, append(kubeArgs, "status", "chat-api", "--watch=false", "-o", "json")...); err != nil || !strings.Contains(out, `"state":"done"`) || !strings.Contains(out, `"namespace":"restart"`) {
			t.Errorf("ramp status -o json: %v\n%s", err, out)
		}
		var events []struct{ Reason string }
		if out, err := ramp(t, false, append(kubeArgs, "events", "chat-api", "-o", "json")...); err != nil || json.Unmarshal([]byte(out), &events) != nil ||
			!slices.ContainsFunc(events, func(e struct{ Reason string }) bool { return e.Reason == "RolloutCompleted" }) {
			t.Errorf("ramp events -o json: %v\n%s", err, out)
		}
		var revs []struct {
			Number int64
			Roles  []string
		}
		if out, err := ramp(t, false, append(kubeArgs, "history", "chat-api", "-o", "yaml")...); err != nil || yaml.Unmarshal([]byte(out), &revs) != nil ||
			len(revs) == 0 || revs[len(revs)-1].Number != 3 || strings.Join(revs[len(revs)-1].Roles, ",") != "stable,current" {
			t.Errorf("ramp history -o yaml: %v, %+v\n%s", err, revs, out)
		}

		// When the Rollout is deleted, then a working Deployment stays behind: resumed, its
		// pods running, the Services selecting by their own selectors, and it rolls out the
		// next change by itself.
		ctx := context.Background()
		ro, err := s.rollout(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.c.Delete(ctx, ro); err != nil {
			t.Fatal(err)
		}
		eventually(t, 30*time.Second, "the Rollout is gone and the Deployment resumed", func(ctx context.Context) error {
			if _, err := s.rollout(ctx); err == nil {
				return errors.New("rollout still there")
			}
			d, err := s.deployment(ctx)
			if err != nil {
				return err
			}
			if d.Spec.Paused || d.Annotations[kube.AnnotationPausedBy] != "" {
				return fmt.Errorf("deployment paused=%v annotations %v", d.Spec.Paused, d.Annotations)
			}
			return nil
		})
		s.waitReplicas(map[string]int32{v1: 3, v2: 0}, 30*time.Second)
		if err := s.selectsImage(ctx, "chat-api-stable", v1); err != nil {
			t.Error(err)
		}
		if out, err := s.kubectlRolloutStatus(); err != nil || !strings.Contains(out, "successfully rolled out") {
			t.Errorf("kubectl rollout status after deleting the rollout: %v\n%s", err, out)
		}
		s.setImage("example.com/chat-api:v3")
		s.waitReplicas(map[string]int32{v1: 0, "example.com/chat-api:v3": 3}, 60*time.Second)
		if out, err := s.kubectlRolloutStatus(); err != nil || !strings.Contains(out, "successfully rolled out") {
			t.Errorf("kubectl rollout status of the Deployment's own rollout: %v\n%s", err, out)
		}
	})

	t.Run("leader election", func(t *testing.T) {
		o := kube.Options{LeaderElection: true, LeaseDuration: 4 * time.Second, RenewDeadline: 3 * time.Second, RetryPeriod: 500 * time.Millisecond}
		a := startController(t, cfg, "a", metrics, o)
		b := startController(t, cfg, "b", metrics, o)
		leader, follower := waitLeader(t, a, b)
		select {
		case <-follower.mgr.Elected():
			t.Fatal("both controllers lead")
		case <-time.After(2 * time.Second):
		}

		// When the leader stops, then the other one leads and does the work.
		leader.stop()
		select {
		case <-follower.mgr.Elected():
		case <-time.After(30 * time.Second):
			t.Fatal("the second controller did not take over within 30s")
		}
		s := newScenario(t, env, "leader")
		s.createRollout(v1alpha1.Strategy{Canary: &v1alpha1.CanaryStrategy{Steps: []v1alpha1.CanaryStep{{SetWeight: ptr(int32(50))}}}})
		s.waitPhase(v1alpha1.PhaseHealthy, 1, 90*time.Second)
		s.setImage(v2)
		s.waitPhase(v1alpha1.PhaseHealthy, 2, 90*time.Second)
	})
}

// waitLeader waits until exactly one of a and b leads.
func waitLeader(t *testing.T, a, b *controller) (leader, follower *controller) {
	t.Helper()
	select {
	case <-a.mgr.Elected():
		return a, b
	case <-b.mgr.Elected():
		return b, a
	case <-time.After(60 * time.Second):
		t.Fatal("no controller was elected within 60s")
	}
	return nil, nil
}
