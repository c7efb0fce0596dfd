package kube

import (
	"context"
	"errors"
	"fmt"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/spec"
)

// Helpers the traffic routers share: the rollout's routing config, and reading and writing
// third-party objects as unstructured.Unstructured.

// errNoRouting is returned when a router is asked about a rollout that does not configure it.
var errNoRouting = errors.New("rollout has no such spec.strategy.canary.trafficRouting")

// trafficRouting returns ro's canary trafficRouting, or errNoRouting.
func trafficRouting(ro *v1alpha1.Rollout) (*v1alpha1.CanaryStrategy, *v1alpha1.TrafficRouting, error) {
	c := ro.Spec.Strategy.Canary
	if c == nil || c.TrafficRouting == nil {
		return nil, nil, fmt.Errorf("rollout %s: %w", ro.Name, errNoRouting)
	}
	return c, c.TrafficRouting, nil
}

// specRoutes is Routes with the services the rollout names and nothing set: what
// ObservedRoutes fills in.
func specRoutes(c *v1alpha1.CanaryStrategy) Routes {
	return Routes{StableService: c.StableService, CanaryService: c.CanaryService}
}

// managedRouteNames is the set of header route names a rollout may set.
func managedRouteNames(tr *v1alpha1.TrafficRouting) map[string]bool {
	m := map[string]bool{}
	for _, r := range tr.ManagedRoutes {
		m[r.Name] = true
	}
	return m
}

// activeHeaderRoutes drops header routes without matches: those are removed routes.
func activeHeaderRoutes(hrs []v1alpha1.SetHeaderRoute) []v1alpha1.SetHeaderRoute {
	var out []v1alpha1.SetHeaderRoute
	for _, hr := range hrs {
		if len(hr.Match) > 0 {
			out = append(out, hr)
		}
	}
	return out
}

// checkWeight refuses a weight outside 0..100.
func checkWeight(w int32) error {
	if w < 0 || w > 100 {
		return fmt.Errorf("canary weight %d is not between 0 and 100", w)
	}
	return nil
}

// checkMirror refuses copies of requests outside 0..100, or asked of a router whose
// description (spec.Router.Mirror) says it cannot make them.
func checkMirror(r Routes, router string) error {
	d, _ := spec.LookupRouter(router)
	switch {
	case r.MirrorPercent < 0 || r.MirrorPercent > 100:
		return fmt.Errorf("mirror percentage %d is not between 0 and 100", r.MirrorPercent)
	case r.MirrorPercent > 0 && !d.Mirror:
		return fmt.Errorf("the %s router cannot mirror requests (asked for %d%%)", router, r.MirrorPercent)
	}
	return nil
}

// mutateUnstructured reads the object of kind gvk at key, lets mutate change it, and writes it
// back when it changed, retrying on write conflicts. It returns the object as stored.
func mutateUnstructured(ctx context.Context, c client.Client, gvk schema.GroupVersionKind, key types.NamespacedName, mutate func(u *unstructured.Unstructured) error) (*unstructured.Unstructured, error) {
	var out *unstructured.Unstructured
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		u := &unstructured.Unstructured{}
		u.SetGroupVersionKind(gvk)
		if err := c.Get(ctx, key, u); err != nil {
			return err
		}
		before := u.DeepCopy()
		if err := mutate(u); err != nil {
			return err
		}
		out = u
		if equality.Semantic.DeepEqual(before.Object, u.Object) {
			return nil
		}
		return c.Update(ctx, u)
	})
	return out, err
}

// getUnstructured reads the object of kind gvk at key.
func getUnstructured(ctx context.Context, c client.Client, gvk schema.GroupVersionKind, key types.NamespacedName) (*unstructured.Unstructured, error) {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(gvk)
	if err := c.Get(ctx, key, u); err != nil {
		return nil, err
	}
	return u, nil
}

// isNotFound reports a missing object.
func isNotFound(err error) bool { return apierrors.IsNotFound(err) }

// asInt reads a JSON number from an unstructured object.
func asInt(v any) (int64, bool) {
	switch n := v.(type) {
	case int64:
		return n, true
	case int32:
		return int64(n), true
	case int:
		return int64(n), true
	case float64:
		return int64(n), n == float64(int64(n))
	}
	return 0, false
}

// asNumber reads a JSON number, whole or not, from an unstructured object.
func asNumber(v any) (float64, bool) {
	if f, ok := v.(float64); ok {
		return f, true
	}
	n, ok := asInt(v)
	return float64(n), ok
}

// asMap and asSlice read nested unstructured values; a missing or mistyped value is empty.
func asMap(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

func asSlice(v any) []any {
	s, _ := v.([]any)
	return s
}

func asString(v any) string {
	s, _ := v.(string)
	return s
}
