package spec

import (
	"testing"
)

// TestAppMetricsLocalMode: spec.appMetrics is Kubernetes mode's; local mode refuses it.
func TestAppMetricsLocalMode(t *testing.T) {
	b, err := Load([]byte(rollout(okProcess + "  strategy: {rollingUpdate: {}}\n  appMetrics: {}\n")))
	if err != nil {
		t.Fatal(err)
	}
	err = ValidateForMode(b, ModeLocal)
	want := "rollout/chat-api: spec.appMetrics: names the Prometheus series Kubernetes mode reads; local mode measures every request in its own proxy and needs none"
	if err == nil || err.Error() != want {
		t.Fatalf("ValidateForMode(local) = %v, want %s", err, want)
	}
	if err := ValidateForMode(b, ModeKubernetes); err != nil {
		t.Fatalf("ValidateForMode(kubernetes) = %v, want nil", err)
	}
}

// TestAppMetricsDefaults: {} takes the usual Prometheus client names.
func TestAppMetricsDefaults(t *testing.T) {
	b, err := Load([]byte(rollout("  workloadRef: {name: chat-api}\n  strategy: {rollingUpdate: {}}\n  appMetrics: {}\n")))
	if err != nil {
		t.Fatal(err)
	}
	s, ok := AppMetrics(b.Rollouts[0].Spec.AppMetrics)
	if !ok || s.Requests != "http_requests_total" || s.Duration != "http_request_duration_seconds" || s.FirstToken != "" ||
		s.RevisionLabel != "pod_template_hash" || s.Prefer != "router" || s.Restarts != "kube_pod_container_status_restarts_total" {
		t.Fatalf("defaults: %+v", s)
	}
	if _, ok := AppMetrics(nil); ok {
		t.Fatal("nil appMetrics resolved")
	}
}
