package kube

import (
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"ramp.dev/ramp/api/v1alpha1"
)

// TestLocalOnlyFieldsRefused: a field only local mode carries out is refused by the
// controller with its path (Valid=False, an InvalidSpec event), not silently ignored, and so
// is a template whose provider only local mode has.
func TestLocalOnlyFieldsRefused(t *testing.T) {
	for _, tt := range []struct {
		name    string
		mutate  func(ro *v1alpha1.Rollout)
		objs    []client.Object
		message string
	}{
		{
			name:    "proxy settings",
			mutate:  func(ro *v1alpha1.Rollout) { ro.Spec.Proxy = &v1alpha1.ProxySpec{UpstreamProtocol: "h2c"} },
			message: "spec.proxy: is the setting of ramp's own proxy, which only local mode has; in Kubernetes mode requests go through the cluster's traffic layer, set it there",
		},
		{
			name: "trustedSources",
			mutate: func(ro *v1alpha1.Rollout) {
				ro.Spec.Strategy.Canary.TrafficRouting = &v1alpha1.TrafficRouting{TrustedSources: []string{"10.0.0.0/8"}}
			},
			message: "spec.strategy.canary.trafficRouting.trustedSources: is read by ramp's own proxy, which only local mode has; in Kubernetes mode the traffic layer decides whom to trust",
		},
		{
			name: "command provider",
			mutate: func(ro *v1alpha1.Rollout) {
				ro.Spec.Strategy.Canary.Steps = []v1alpha1.CanaryStep{{SetWeight: ptr(int32(20))}, {Analysis: &v1alpha1.RolloutAnalysis{Templates: []v1alpha1.AnalysisTemplateRef{{TemplateName: "suite"}}}}}
			},
			objs: []client.Object{&v1alpha1.AnalysisTemplate{
				ObjectMeta: metav1.ObjectMeta{Name: "suite", Namespace: ns},
				Spec: v1alpha1.AnalysisTemplateSpec{Metrics: []v1alpha1.Metric{{
					Name: "suite", Provider: v1alpha1.MetricProvider{Command: &v1alpha1.CommandMetric{Command: "./suite.sh"}},
				}}},
			}},
			message: "spec.strategy.canary.steps[1].analysis.templates[0]: AnalysisTemplate suite: spec.metrics[0].provider.command: runs a command beside local mode's processes; in Kubernetes mode use job",
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ro := canaryRollout()
			tt.mutate(ro)
			f := newFixture(t, ro, tt.objs...)
			f.reconcile()
			c := meta.FindStatusCondition(f.rollout().Status.Conditions, v1alpha1.ConditionValid)
			if c == nil || c.Status != metav1.ConditionFalse || c.Reason != "InvalidSpec" || c.Message != tt.message {
				t.Fatalf("Valid = %+v; want False InvalidSpec %q", c, tt.message)
			}
			f.wantEvent("InvalidSpec")
		})
	}
}
