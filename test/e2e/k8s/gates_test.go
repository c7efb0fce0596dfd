package k8s

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/rest"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/kube"
	"ramp.dev/ramp/test/k8senv"
	"ramp.dev/ramp/test/testkit"
)

// testGateWebhooks: the controller calls a Rollout's gate webhooks. A confirm-promotion
// receiver (its URL in a Secret) that answers 500 holds the canary before its promotion,
// however often it is asked, with the status naming the gate; once it answers 200 the
// rollout completes and post-rollout is told. A pre-rollout receiver that hangs past its
// timeout holds the next revision out of traffic; an abort then calls rollback.
func testGateWebhooks(t *testing.T, env *k8senv.Env, cfg *rest.Config, metrics *metricsServer) {
	const ns = "gates"
	startController(t, cfg, "gates", metrics, kube.Options{})
	recv := testkit.NewGateReceiver(t, "")
	recv.Set("approve", 500)
	s := newScenario(t, env, ns, "chat-api-stable", "chat-api-canary")
	ctx := context.Background()
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "gate-urls", Namespace: ns},
		StringData: map[string]string{"approve": recv.URL + "/approve"},
	}
	if err := s.c.Create(ctx, secret); err != nil {
		t.Fatal(err)
	}
	second, oneSecond := intstr.FromString("1s"), intstr.FromString("1s")
	hooks := []v1alpha1.Webhook{
		{Name: "smoke", Type: v1alpha1.WebhookPreRollout, URL: recv.URL + "/smoke", Timeout: &second, Interval: &oneSecond},
		{Name: "approve", Type: v1alpha1.WebhookConfirmPromotion, URLSecretRef: &v1alpha1.SecretKeyRef{Name: "gate-urls", Key: "approve"},
			Interval: &oneSecond, Metadata: map[string]string{"ticket": "CHG-42"}},
		{Name: "done", Type: v1alpha1.WebhookPostRollout, URL: recv.URL + "/done"},
		{Name: "page", Type: v1alpha1.WebhookRollback, URL: recv.URL + "/page"},
	}
	strategy := v1alpha1.Strategy{Canary: &v1alpha1.CanaryStrategy{
		StableService: "chat-api-stable", CanaryService: "chat-api-canary",
		Steps: []v1alpha1.CanaryStep{{SetWeight: ptr(int32(34))}, {SetWeight: ptr(int32(67))}},
	}}
	noWatch(&strategy)
	ro := &v1alpha1.Rollout{
		ObjectMeta: metav1.ObjectMeta{Name: "chat-api", Namespace: ns},
		Spec:       v1alpha1.RolloutSpec{WorkloadRef: &v1alpha1.WorkloadRef{Name: "chat-api"}, Strategy: strategy, Webhooks: hooks},
	}
	if err := s.c.Create(ctx, ro); err != nil {
		t.Fatal(err)
	}
	s.waitPhase(v1alpha1.PhaseHealthy, 1, 90*time.Second)
	if n := len(recv.Calls("")); n != 0 {
		t.Fatalf("the first revision called %d webhooks", n)
	}

	// When the image changes, then pre-rollout is asked and the canary steps run, and the
	// promotion waits at the gate while the receiver answers 500, at least three times.
	s.setImage(v2)
	var maxSet int32
	eventually(t, 90*time.Second, "confirm-promotion asked 3 times", func(ctx context.Context) error {
		ro, err := s.rollout(ctx)
		if err != nil {
			return err
		}
		maxSet = max(maxSet, ro.Status.CanaryWeight)
		if ro.Status.StableRevision != 1 {
			t.Fatalf("promoted past a gate that answers 500: %+v", ro.Status)
		}
		if n := len(recv.Calls("approve")); n < 3 {
			return fmt.Errorf("asked %d times; %s: %s", n, ro.Status.Phase, ro.Status.Message)
		}
		return nil
	})
	eventually(t, 20*time.Second, "the status to show the gate holding", func(ctx context.Context) error {
		ro, err := s.rollout(ctx)
		if err != nil {
			return err
		}
		want := "waiting before promoting revision 2: gate approve (confirm-promotion) answered HTTP 500 Internal Server Error: answer of approve"
		if ro.Status.Phase != v1alpha1.PhasePaused || !strings.Contains(ro.Status.Message, want) || ro.Status.StableRevision != 1 || ro.Status.CanaryWeight != 67 {
			return fmt.Errorf("%s stable %d weight %d: %s", ro.Status.Phase, ro.Status.StableRevision, ro.Status.CanaryWeight, ro.Status.Message)
		}
		return nil
	})
	if maxSet > 67 {
		t.Fatalf("canary weight reached %d before the promotion gate passed", maxSet)
	}
	s.waitSelects("chat-api-stable", v1)
	c := recv.Calls("approve")[0]
	if c.Namespace != ns || c.Rollout != "chat-api" || c.Revision != 2 || c.Type != "confirm-promotion" || c.Metadata["ticket"] != "CHG-42" {
		t.Fatalf("confirm-promotion body %+v", c)
	}
	if smoke := recv.Calls("smoke"); len(smoke) != 1 || smoke[0].Revision != 2 || smoke[0].Weight != 0 {
		t.Fatalf("pre-rollout calls %+v", smoke)
	}

	// When the receiver answers 200, then the rollout completes and post-rollout is told once.
	recv.Set("approve", 200)
	s.waitPhase(v1alpha1.PhaseHealthy, 2, 60*time.Second)
	s.waitSelects("chat-api-stable", v2)
	eventually(t, 20*time.Second, "post-rollout called", func(context.Context) error {
		if d := recv.Calls("done"); len(d) != 1 || d[0].Revision != 2 || d[0].Namespace != ns {
			return fmt.Errorf("post-rollout calls %+v", d)
		}
		return nil
	})

	// When revision 3's pre-rollout receiver hangs past its 1s timeout, then it is held out
	// of traffic with the timeout in its status, asked again every second.
	recv.Set("smoke", 0)
	s.setImage("example.com/chat-api:v3")
	eventually(t, 60*time.Second, "pre-rollout of revision 3 asked twice", func(ctx context.Context) error {
		ro, err := s.rollout(ctx)
		if err != nil {
			return err
		}
		if ro.Status.CanaryWeight != 0 {
			t.Fatalf("revision 3 got weight %d past a gate that timed out: %s", ro.Status.CanaryWeight, ro.Status.Message)
		}
		n := 0
		for _, c := range recv.Calls("smoke") {
			if c.Revision == 3 {
				n++
			}
		}
		if n < 2 || !strings.Contains(ro.Status.Message, "waiting before revision 3 takes traffic: gate smoke (pre-rollout) answered timed out after 1s") {
			return fmt.Errorf("asked %d times; %s: %s", n, ro.Status.Phase, ro.Status.Message)
		}
		return nil
	})
	if p := recv.Calls("page"); len(p) != 0 {
		t.Fatalf("rollback called before any abort: %+v", p)
	}
	// When it is aborted, then the rollback webhook is called once.
	if out, err := ramp(t, false, "--kubeconfig", env.Kubeconfig, "-n", ns, "abort", "chat-api"); err != nil {
		t.Fatalf("ramp abort: %v\n%s", err, out)
	}
	s.waitPhase(v1alpha1.PhaseDegraded, 2, 30*time.Second)
	eventually(t, 20*time.Second, "rollback called", func(context.Context) error {
		if p := recv.Calls("page"); len(p) != 1 || p[0].Revision != 3 || p[0].Phase != "Degraded" || p[0].Namespace != ns {
			return fmt.Errorf("rollback calls %+v", p)
		}
		return nil
	})
	s.waitSelects("chat-api-stable", v2)
}
