package k8s

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/kube"
	"ramp.dev/ramp/test/k8senv"
	"ramp.dev/ramp/test/testkit"
)

// testNotifications: the controller sends spec.notifications to a JSON webhook (retried
// after two 503s), Slack and Teams, reading their URLs and a bearer token from a Secret
// with exactly the ClusterRole of config/rbac, for a healthy and a failing canary; a
// controller that restarts sends nothing twice.
func testNotifications(t *testing.T, env *k8senv.Env, cfg *rest.Config, metrics *metricsServer) {
	recv := testkit.NewReceiver(t)
	recv.Answer = func(path string, n int) int {
		if path == "/json/notify-healthy" && n <= 2 {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	}
	c1 := startController(t, cfg, "notify-first", metrics, kube.Options{})
	analysis := v1alpha1.CanaryStep{Analysis: &v1alpha1.RolloutAnalysis{Templates: []v1alpha1.AnalysisTemplateRef{{TemplateName: "error-rate"}}}}
	strategy := v1alpha1.Strategy{Canary: &v1alpha1.CanaryStrategy{Steps: []v1alpha1.CanaryStep{{SetWeight: ptr(int32(34))}, analysis, {SetWeight: ptr(int32(67))}}}}

	// given is a namespace with the Secret of the hooks and a Rollout notifying them, its
	// revision 1 stable.
	given := func(t *testing.T, ns string) *scenario {
		s := newScenario(t, env, ns)
		ctx := context.Background()
		sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "hooks", Namespace: ns}, StringData: map[string]string{
			"slack": recv.URL + "/slack/" + ns + "/T000/B000/XXXX",
			"teams": recv.URL + "/teams/" + ns + "/webhookb2/XXXX",
			"token": "Bearer k8s-token",
		}}
		if err := s.c.Create(ctx, sec); err != nil {
			t.Fatal(err)
		}
		st := *strategy.DeepCopy()
		noWatch(&st)
		ro := &v1alpha1.Rollout{
			ObjectMeta: metav1.ObjectMeta{Name: "chat-api", Namespace: ns},
			Spec: v1alpha1.RolloutSpec{WorkloadRef: &v1alpha1.WorkloadRef{Name: "chat-api"}, Strategy: st, Notifications: []v1alpha1.Notification{
				{Name: "hook", URL: recv.URL + "/json/" + ns, Headers: []v1alpha1.NotificationHeader{{Name: "Authorization", ValueSecretRef: &v1alpha1.SecretKeyRef{Name: "hooks", Key: "token"}}}},
				{Name: "slack", Type: v1alpha1.NotificationSlack, URLSecretRef: &v1alpha1.SecretKeyRef{Name: "hooks", Key: "slack"}},
				{Name: "teams", Type: v1alpha1.NotificationTeams, URLSecretRef: &v1alpha1.SecretKeyRef{Name: "hooks", Key: "teams"}},
			}},
		}
		if err := s.c.Create(ctx, ro); err != nil {
			t.Fatal(err)
		}
		s.waitPhase(v1alpha1.PhaseHealthy, 1, 90*time.Second)
		return s
	}
	delivered := func(t *testing.T, ns string) []testkit.WebhookNotification {
		got, hooks := recv.Notified(t, "/json/"+ns)
		ids := map[string]bool{}
		for i, h := range hooks {
			if h.Header.Get("Authorization") != "Bearer k8s-token" {
				t.Fatalf("%s: json notification without the token from the Secret: %q", ns, h.Header.Get("Authorization"))
			}
			if ids[got[i].ID] {
				t.Fatalf("%s: notification %s (%s of revision %d) delivered twice", ns, got[i].ID, got[i].Event, got[i].Revision)
			}
			ids[got[i].ID] = true
			if got[i].Namespace != ns || got[i].Rollout != "chat-api" {
				t.Fatalf("%s: notification of %s/%s", ns, got[i].Namespace, got[i].Rollout)
			}
		}
		return got
	}

	t.Run("aborted", func(t *testing.T) {
		const ns = "notify-failing"
		s := given(t, ns)
		// When revision 2 fails its analysis
		metrics.set(ns+"/chat-api", 2, 0.5)
		s.setImage(v2)
		// Then the webhook gets started, the first step, and aborted with the failing
		// analysis's message
		recv.WaitNotified(t, "/json/"+ns, 2, v1alpha1.NotifyRolloutAborted, 90*time.Second)
		got := delivered(t, ns)
		if evs := strings.Join(testkit.EventsOf(got, 2), ","); evs != "rollout-started,step-completed,rollout-aborted" {
			t.Fatalf("revision 2 notifications %s", evs)
		}
		aborted := got[len(got)-1]
		for _, want := range []string{"analysis step-2-step1 failed", `metric "error-rate" failed`} {
			if !strings.Contains(aborted.Message, want) {
				t.Fatalf("abort notification lacks %q: %s", want, aborted.Message)
			}
		}
		if aborted.Phase != "Degraded" || aborted.StableRevision != 1 {
			t.Fatalf("abort notification: %+v", aborted)
		}
		recv.CheckChatFormats(t, "/slack/"+ns+"/T000/B000/XXXX", "/teams/"+ns+"/webhookb2/XXXX", got)
		t.Logf("abort: %s", aborted.Message)
	})

	t.Run("healthy, and nothing twice after a controller restart", func(t *testing.T) {
		const ns = "notify-healthy"
		s := given(t, ns)
		// When the image changes and the analysis passes
		s.setImage(v2)
		// Then the webhook gets started, each step, promoted, once each, in order, though its
		// first request was answered 503 twice
		recv.WaitNotified(t, "/json/"+ns, 2, v1alpha1.NotifyRolloutPromoted, 90*time.Second)
		got := delivered(t, ns)
		want := "rollout-started,step-completed,step-completed,step-completed,rollout-promoted"
		if evs := strings.Join(testkit.EventsOf(got, 2), ","); evs != want {
			t.Fatalf("revision 2 notifications %s, want %s", evs, want)
		}
		if hooks := recv.Hooks("/json/" + ns); hooks[0].Status != 503 || hooks[1].Status != 503 || hooks[2].Status != 200 || string(hooks[0].Body) != string(hooks[2].Body) {
			t.Fatalf("the first notification was not retried after two 503s: %d %d %d", hooks[0].Status, hooks[1].Status, hooks[2].Status)
		}
		if last := got[len(got)-1]; last.Phase != "Healthy" || last.StableRevision != 2 {
			t.Fatalf("promoted notification: %+v", last)
		}
		recv.CheckChatFormats(t, "/slack/"+ns+"/T000/B000/XXXX", "/teams/"+ns+"/webhookb2/XXXX", got)

		// Given the controller restarts, when revision 3 rolls out, then the webhook gets
		// revision 3's story, and nothing of revision 2 again
		c1.stop()
		startController(t, cfg, "notify-second", metrics, kube.Options{})
		s.setImage("example.com/chat-api:v3")
		recv.WaitNotified(t, "/json/"+ns, 3, v1alpha1.NotifyRolloutPromoted, 90*time.Second)
		after := delivered(t, ns)
		if evs := strings.Join(testkit.EventsOf(after, 2), ","); evs != want {
			t.Fatalf("after the restart, revision 2 notifications %s, want %s as before", evs, want)
		}
		if evs := strings.Join(testkit.EventsOf(after, 3), ","); evs != want {
			t.Fatalf("revision 3 notifications %s, want %s", evs, want)
		}
	})
}
