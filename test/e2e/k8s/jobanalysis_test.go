package k8s

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/kube"
	"ramp.dev/ramp/test/k8senv"
)

// testJobAnalysis rolls out chat-api blue-green with a test suite run as a Kubernetes Job
// against the preview before the switch (the job analysis provider), by a controller with
// exactly config/rbac's ClusterRole. kwok completes Job pods, fails those labelled
// kwok.ramp.dev/fail and keeps those labelled kwok.ramp.dev/keep-running running.
func testJobAnalysis(t *testing.T, env *k8senv.Env, cfg *rest.Config, metrics *metricsServer) {
	startController(t, cfg, "jobs", metrics, kube.Options{})
	for _, tc := range []struct {
		name   string
		labels map[string]string
	}{
		{"job-passes", nil},
		{"job-fails", map[string]string{"kwok.ramp.dev/fail": "true"}},
		{"job-runs-abort", map[string]string{"kwok.ramp.dev/keep-running": "true"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newScenario(t, env, tc.name, "chat-api-active", "chat-api-preview")
			ctx := context.Background()
			suite := &v1alpha1.AnalysisTemplate{
				ObjectMeta: metav1.ObjectMeta{Name: "suite", Namespace: tc.name},
				Spec: v1alpha1.AnalysisTemplateSpec{Metrics: []v1alpha1.Metric{{
					Name: "suite",
					Provider: v1alpha1.MetricProvider{Job: &v1alpha1.JobMetric{
						Image: "example.com/chat-api-tests:v1", Args: []string{"--target=http://{{service}}.{{namespace}}"},
						Labels: tc.labels, Timeout: ptr(intstr.FromString("5m")),
					}},
				}}},
			}
			if err := s.c.Create(ctx, suite); err != nil {
				t.Fatal(err)
			}
			s.createRollout(v1alpha1.Strategy{BlueGreen: &v1alpha1.BlueGreenStrategy{
				ActiveService: "chat-api-active", PreviewService: "chat-api-preview", ScaleDownDelaySeconds: ptr(int32(0)),
				PrePromotionAnalysis: &v1alpha1.RolloutAnalysis{Templates: []v1alpha1.AnalysisTemplateRef{{TemplateName: "suite"}}},
			}})
			s.waitPhase(v1alpha1.PhaseHealthy, 1, 90*time.Second)
			s.waitSelects("chat-api-active", v1)

			// When the image changes, then the preview runs revision 2 and the test suite runs
			// as a Job owned by the Rollout, told which Service to test.
			s.setImage(v2)
			var job *batchv1.Job
			eventually(t, 60*time.Second, "the analysis Job", func(ctx context.Context) error {
				var l batchv1.JobList
				if err := s.c.List(ctx, &l, client.InNamespace(tc.name), client.MatchingLabels{kube.LabelRollout: "chat-api"}); err != nil {
					return err
				}
				if len(l.Items) != 1 {
					return fmt.Errorf("%d jobs", len(l.Items))
				}
				job = &l.Items[0]
				return nil
			})
			if ref := metav1.GetControllerOf(job); ref == nil || ref.Kind != "Rollout" || ref.Name != "chat-api" {
				t.Errorf("job %s controlled by %+v; want the Rollout", job.Name, ref)
			}
			env := map[string]string{}
			for _, e := range job.Spec.Template.Spec.Containers[0].Env {
				env[e.Name] = e.Value
			}
			if env["RAMP_SERVICE"] != "chat-api-preview" || env["RAMP_REVISION"] != "2" || env["RAMP_ROLE"] != "preview" {
				t.Errorf("job env %v; want the preview Service, revision 2, role preview", env)
			}
			if args := job.Spec.Template.Spec.Containers[0].Args; len(args) != 1 || args[0] != "--target=http://chat-api-preview."+tc.name {
				t.Errorf("job args %v", args)
			}

			switch tc.name {
			case "job-passes":
				// When the suite passes, then the preview is promoted.
				s.waitPhase(v1alpha1.PhaseHealthy, 2, 90*time.Second)
				s.waitSelects("chat-api-active", v2)
				s.waitReplicas(map[string]int32{v1: 0, v2: 3}, 60*time.Second)

			case "job-fails":
				// When the suite fails, then the rollout aborts, saying why, and the active
				// Service never left stable.
				ro := s.waitPhase(v1alpha1.PhaseDegraded, 1, 90*time.Second)
				if !strings.Contains(ro.Status.Message, "BackoffLimitExceeded") || !strings.Contains(ro.Status.Message, job.Name) {
					t.Errorf("degraded message %q does not name the Job and its failure", ro.Status.Message)
				}
				s.waitSelects("chat-api-active", v1)
				s.waitReplicas(map[string]int32{v1: 3}, 60*time.Second)

			case "job-runs-abort":
				// While the suite runs (for up to its 5m timeout), the controller is not
				// blocked: the CLI reads the rollout and an abort takes effect at once.
				eventually(t, 30*time.Second, "the analysis run Running", func(ctx context.Context) error {
					ro, err := s.rollout(ctx)
					if err != nil {
						return err
					}
					if len(ro.Status.Analysis) == 0 || ro.Status.Analysis[0].Phase != v1alpha1.AnalysisRunning {
						return fmt.Errorf("analysis %+v", ro.Status.Analysis)
					}
					return nil
				})
				kubeArgs := []string{"--kubeconfig", s.env.Kubeconfig, "-n", tc.name}
				if out, err := ramp(t, false, append(kubeArgs, "get", "chat-api")...); err != nil || !regexp.MustCompile(`chat-api\s+blueGreen\s+Progressing`).MatchString(out) {
					t.Errorf("ramp get while the Job runs: %v\n%s", err, out)
				}
				start := time.Now()
				if out, err := ramp(t, false, append(kubeArgs, "abort", "chat-api")...); err != nil {
					t.Fatalf("ramp abort: %v\n%s", err, out)
				}
				s.waitPhase(v1alpha1.PhaseDegraded, 1, 20*time.Second)
				t.Logf("aborted %s after the command, the Job still running", time.Since(start).Round(time.Millisecond))
				s.waitSelects("chat-api-active", v1)
				// The dropped run's Job is deleted, so the suite stops with its rollout.
				eventually(t, 30*time.Second, "the Job of the aborted run deleted", func(ctx context.Context) error {
					j := &batchv1.Job{}
					err := s.c.Get(ctx, client.ObjectKeyFromObject(job), j)
					if err == nil && j.DeletionTimestamp == nil {
						return fmt.Errorf("job %s still there, conditions %+v", j.Name, j.Status.Conditions)
					}
					if err != nil && !strings.Contains(err.Error(), "not found") {
						return err
					}
					return nil
				})
			default:
				t.Fatal(errors.New("unknown case"))
			}
		})
	}
}
