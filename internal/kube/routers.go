package kube

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/spec"
)

// routerFactories are the implementations of the Kubernetes routers spec.Routers describes,
// by name: the field names of spec.strategy.canary.trafficRouting, and "service" for plain
// Service selectors.
var routerFactories = map[string]func(client.Client) Router{
	"gatewayAPI": func(c client.Client) Router { return NewGatewayAPI(c) },
	"istio":      func(c client.Client) Router { return NewIstio(c) },
	"smi":        func(c client.Client) Router { return NewSMI(c) },
	"nginx":      func(c client.Client) Router { return NewNginx(c) },
	"alb":        func(c client.Client) Router { return NewALB(c) },
	"service":    func(c client.Client) Router { return NewServiceRouter(c) },
}

// NewRouter returns the router registered under name, working through c. An unknown name is
// an error that lists the known ones.
func NewRouter(name string, c client.Client) (Router, error) {
	f, ok := routerFactories[name]
	if !ok {
		return nil, fmt.Errorf("traffic router %q is not one of %s", name, strings.Join(RouterNames(), ", "))
	}
	return f(c), nil
}

// RouterNames returns the registered router names, sorted.
func RouterNames() []string {
	return slices.Sorted(maps.Keys(routerFactories))
}

// RouterName returns the name of the router that ro's canary trafficRouting picks, or "" when
// it names none (then weights are approximated by replica counts).
func RouterName(ro *v1alpha1.Rollout) string {
	return spec.NamedRouter(ro.Spec.Strategy.Canary)
}

// routedKinds are the versions of each kind of object a router reads (spec.RoutedObject), in
// order of preference: the first the cluster serves is used.
var routedKinds = map[string][]schema.GroupVersionKind{
	httpRouteGVK.Kind:    {httpRouteGVK},
	"VirtualService":     virtualServiceGVKs,
	trafficSplitGVK.Kind: {trafficSplitGVK},
	ingressGVK.Kind:      {ingressGVK},
}
