package spec

import (
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/intstr"

	"ramp.dev/ramp/api/v1alpha1"
)

// A webhook's URL from a Kubernetes Secret is refused in local mode, naming the field.
func TestWebhookSecretRefRefusedInLocalMode(t *testing.T) {
	b, err := Load([]byte(rollout(okProcess + "  strategy: {canary: {steps: [{setWeight: 10}]}}\n  webhooks: [{name: approve, type: confirm-promotion, urlSecretRef: {name: hooks, key: url}}]\n")))
	if err != nil {
		t.Fatal(err)
	}
	err = b.CheckModes()
	want := "rollout/chat-api: spec.webhooks[0].urlSecretRef: names a Kubernetes Secret, which local mode cannot read; use url, urlFile or urlEnv"
	if err == nil || err.Error() != want {
		t.Fatalf("CheckModes: %v\nwant: %s", err, want)
	}
	b.Rollouts[0].Spec.WorkloadRef = &v1alpha1.WorkloadRef{Name: "chat-api"}
	if errs := CheckRolloutMode(&b.Rollouts[0], ModeKubernetes); len(errs) != 0 {
		t.Fatalf("Kubernetes mode: %v", errs)
	}
}

func TestWebhookDefaults(t *testing.T) {
	w := &v1alpha1.Webhook{Name: "a", Type: v1alpha1.WebhookConfirmPromotion}
	if WebhookTimeout(w) != 10*time.Second || WebhookInterval(w) != 10*time.Second || WebhookPolicy(w) != v1alpha1.WebhookHold {
		t.Fatalf("defaults: %s %s %s", WebhookTimeout(w), WebhookInterval(w), WebhookPolicy(w))
	}
	to, iv := intstr.FromString("1500ms"), intstr.FromInt32(3)
	w.Timeout, w.Interval, w.FailurePolicy = &to, &iv, v1alpha1.WebhookAbort
	if WebhookTimeout(w) != 1500*time.Millisecond || WebhookInterval(w) != 3*time.Second || WebhookPolicy(w) != v1alpha1.WebhookAbort {
		t.Fatalf("set: %s %s %s", WebhookTimeout(w), WebhookInterval(w), WebhookPolicy(w))
	}
	if !strings.Contains(webhookTypeList(), "confirm-traffic-increase") {
		t.Fatal(webhookTypeList())
	}
}
