package kube

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"ramp.dev/ramp/api/v1alpha1"
)

// TestRolloutsRoutedBy checks which rollouts a change of a routing object wakes: the one
// that controls it, or those whose trafficRouting names it, in its namespace only.
func TestRolloutsRoutedBy(t *testing.T) {
	routed := func(name, namespace string, tr v1alpha1.TrafficRouting) *v1alpha1.Rollout {
		return &v1alpha1.Rollout{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace, UID: types.UID("uid-" + name)},
			Spec: v1alpha1.RolloutSpec{Strategy: v1alpha1.Strategy{Canary: &v1alpha1.CanaryStrategy{
				StableService: "s", CanaryService: "c", TrafficRouting: &tr,
			}}},
		}
	}
	owner := routed("owner", ns, v1alpha1.TrafficRouting{SMI: &v1alpha1.SMITrafficRouting{TrafficSplitName: "split"}})
	c := fake.NewClientBuilder().WithScheme(Scheme()).WithObjects(
		routed("gw", ns, v1alpha1.TrafficRouting{GatewayAPI: &v1alpha1.GatewayAPITrafficRouting{HTTPRoute: "web"}}),
		routed("gw2", ns, v1alpha1.TrafficRouting{GatewayAPI: &v1alpha1.GatewayAPITrafficRouting{HTTPRoute: "web"}}),
		routed("gw-elsewhere", "other", v1alpha1.TrafficRouting{GatewayAPI: &v1alpha1.GatewayAPITrafficRouting{HTTPRoute: "web"}}),
		routed("mesh", ns, v1alpha1.TrafficRouting{Istio: &v1alpha1.IstioTrafficRouting{VirtualService: v1alpha1.IstioVirtualService{Name: "web"}}}),
		routed("split-default", ns, v1alpha1.TrafficRouting{SMI: &v1alpha1.SMITrafficRouting{}}),
		routed("edge", ns, v1alpha1.TrafficRouting{Nginx: &v1alpha1.NginxTrafficRouting{StableIngress: "web"}}),
		routed("lb", ns, v1alpha1.TrafficRouting{ALB: &v1alpha1.ALBTrafficRouting{Ingress: "public", ServicePort: 80}}),
		owner,
		&v1alpha1.Rollout{ObjectMeta: metav1.ObjectMeta{Name: "plain", Namespace: ns}, Spec: v1alpha1.RolloutSpec{Strategy: v1alpha1.Strategy{Canary: &v1alpha1.CanaryStrategy{}}}},
	).Build()
	obj := func(gvk schema.GroupVersionKind, name string, owned bool) client.Object {
		u := &unstructured.Unstructured{}
		u.SetGroupVersionKind(gvk)
		u.SetNamespace(ns)
		u.SetName(name)
		if owned {
			u.SetOwnerReferences([]metav1.OwnerReference{*ownerRef(owner)})
		}
		return u
	}
	for _, tc := range []struct {
		name string
		gvk  schema.GroupVersionKind
		obj  client.Object
		want []string
	}{
		{"httproute named by two rollouts", httpRouteGVK, obj(httpRouteGVK, "web", false), []string{"gw", "gw2"}},
		{"httproute named by none", httpRouteGVK, obj(httpRouteGVK, "api", false), nil},
		{"virtualservice", virtualServiceGVKs[0], obj(virtualServiceGVKs[0], "web", false), []string{"mesh"}},
		{"trafficsplit named after its rollout", trafficSplitGVK, obj(trafficSplitGVK, "split-default", false), []string{"split-default"}},
		{"trafficsplit controlled by a rollout", trafficSplitGVK, obj(trafficSplitGVK, "anything", true), []string{"owner"}},
		{"stable ingress", ingressGVK, obj(ingressGVK, "web", false), []string{"edge"}},
		{"alb ingress", ingressGVK, obj(ingressGVK, "public", false), []string{"lb"}},
		{"canary ingress", ingressGVK, obj(ingressGVK, CanaryIngressName("edge", "web"), true), []string{"owner"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, req := range rolloutsRoutedBy(context.Background(), c, slog.New(slog.NewTextHandler(io.Discard, nil)), tc.gvk.Kind, tc.obj) {
				if req.Namespace != ns {
					t.Errorf("request for %s in namespace %s", req.Name, req.Namespace)
				}
				got = append(got, req.Name)
			}
			slices.Sort(got)
			if !slices.Equal(got, tc.want) {
				t.Errorf("rollouts %v; want %v", got, tc.want)
			}
		})
	}
}
