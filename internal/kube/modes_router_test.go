package kube

import (
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"ramp.dev/ramp/api/v1alpha1"
)

// TestRouterFieldsRefused: a mirror, stickiness or cookie match that the rollout's router
// cannot carry out is refused by the controller with its path (Valid=False, an InvalidSpec
// event), as `ramp lint` refuses it, not dropped from the routing object.
func TestRouterFieldsRefused(t *testing.T) {
	nginx := &v1alpha1.TrafficRouting{Nginx: &v1alpha1.NginxTrafficRouting{StableIngress: "chat-api"}}
	istio := &v1alpha1.TrafficRouting{Istio: &v1alpha1.IstioTrafficRouting{VirtualService: v1alpha1.IstioVirtualService{Name: "chat-api"}},
		ManagedRoutes: []v1alpha1.ManagedRoute{{Name: "testers"}}}
	for _, tt := range []struct {
		name    string
		mutate  func(c *v1alpha1.CanaryStrategy)
		message string
	}{
		{
			name:    "mirror without a router",
			mutate:  func(c *v1alpha1.CanaryStrategy) { c.Mirror = &v1alpha1.CanaryMirror{Percentage: 5} },
			message: "spec.strategy.canary.mirror: cannot be done by the service (plain Service selectors) router, which cannot mirror requests; only gatewayAPI, istio or proxy can",
		},
		{
			name: "mirror with a router that cannot mirror",
			mutate: func(c *v1alpha1.CanaryStrategy) {
				c.TrafficRouting, c.Mirror = nginx, &v1alpha1.CanaryMirror{Percentage: 5}
			},
			message: "spec.strategy.canary.mirror: cannot be done by the nginx router, which cannot mirror requests; only gatewayAPI, istio or proxy can",
		},
		{
			name: "stickiness without a router",
			mutate: func(c *v1alpha1.CanaryStrategy) {
				c.Stickiness = &v1alpha1.Stickiness{Header: &v1alpha1.StickyHeader{Name: "x-user"}}
			},
			message: "spec.strategy.canary.stickiness: cannot be done by the service (plain Service selectors) router, which cannot keep users on one revision; only proxy can",
		},
		{
			name: "cookieMatch with a router that cannot match cookies",
			mutate: func(c *v1alpha1.CanaryStrategy) {
				c.TrafficRouting = istio
				c.Steps = []v1alpha1.CanaryStep{{SetHeaderRoute: &v1alpha1.SetHeaderRoute{Name: "testers",
					CookieMatch: []v1alpha1.CookieMatch{{CookieName: "version", CookieValue: v1alpha1.StringMatch{Exact: "2"}}}}}}
			},
			message: "spec.strategy.canary.steps[0].setHeaderRoute.cookieMatch: cannot be done by the istio router, which cannot match cookies; only proxy can",
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ro := canaryRollout(v1alpha1.CanaryStep{SetWeight: ptr(int32(20))})
			tt.mutate(ro.Spec.Strategy.Canary)
			f := newFixture(t, ro)
			f.reconcile()
			c := meta.FindStatusCondition(f.rollout().Status.Conditions, v1alpha1.ConditionValid)
			if c == nil || c.Status != metav1.ConditionFalse || c.Reason != "InvalidSpec" || c.Message != tt.message {
				t.Fatalf("Valid = %+v; want False InvalidSpec %q", c, tt.message)
			}
			f.wantEvent("InvalidSpec")
			if d := f.deployment(); d.Spec.Paused {
				t.Errorf("deployment paused by a rollout that was refused")
			}
		})
	}
}
