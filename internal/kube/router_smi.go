package kube

import (
	"context"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/spec"
)

// trafficSplitGVK is the SMI TrafficSplit kind ramp owns.
var trafficSplitGVK = schema.GroupVersionKind{Group: "split.smi-spec.io", Version: "v1alpha2", Kind: "TrafficSplit"}

// rolloutGVK is the kind of the owner reference ramp puts on the objects it makes.
var rolloutGVK = schema.GroupVersionKind{Group: "ramp.dev", Version: "v1alpha1", Kind: "Rollout"}

// SMI routes through an SMI TrafficSplit that ramp creates and owns (spec.strategy.canary.
// trafficRouting.smi): its rootService (default stableService) is split between the stable
// and canary Services. A TrafficSplit has no header routes.
type SMI struct {
	c client.Client
}

var _ Router = (*SMI)(nil)

// NewSMI returns the SMI router working through c.
func NewSMI(c client.Client) *SMI { return &SMI{c: c} }

func (s *SMI) config(ro *v1alpha1.Rollout) (*v1alpha1.CanaryStrategy, *v1alpha1.SMITrafficRouting, types.NamespacedName, error) {
	c, tr, err := trafficRouting(ro)
	if err != nil {
		return nil, nil, types.NamespacedName{}, err
	}
	if tr.SMI == nil {
		return nil, nil, types.NamespacedName{}, fmt.Errorf("rollout %s: spec.strategy.canary.trafficRouting.smi: %w", ro.Name, errNoRouting)
	}
	name := tr.SMI.TrafficSplitName
	if name == "" {
		name = ro.Name
	}
	return c, tr.SMI, types.NamespacedName{Namespace: ro.Namespace, Name: name}, nil
}

// SetRoutes creates or updates the TrafficSplit. A header route is an error: SMI cannot
// express it, and saying nothing would route those requests by weight.
func (s *SMI) SetRoutes(ctx context.Context, ro *v1alpha1.Rollout, r Routes) error {
	c, cfg, key, err := s.config(ro)
	if err != nil {
		return err
	}
	if err := checkWeight(r.CanaryWeight); err != nil {
		return fmt.Errorf("set routes on trafficsplit %s: %w", key, err)
	}
	if err := checkMirror(r, spec.RouterSMI); err != nil {
		return fmt.Errorf("set routes on trafficsplit %s: %w", key, err)
	}
	if hrs := activeHeaderRoutes(r.HeaderRoutes); len(hrs) > 0 {
		return fmt.Errorf("set routes on trafficsplit %s: header route %q: a TrafficSplit has no header routes", key, hrs[0].Name)
	}
	root := cfg.RootService
	if root == "" {
		root = c.StableService
	}
	spec := map[string]any{
		"service": root,
		"backends": []any{
			map[string]any{"service": r.StableService, "weight": int64(100 - r.CanaryWeight)},
			map[string]any{"service": r.CanaryService, "weight": int64(r.CanaryWeight)},
		},
	}
	_, err = mutateUnstructured(ctx, s.c, trafficSplitGVK, key, func(u *unstructured.Unstructured) error {
		if err := checkOwner(u, ro); err != nil {
			return err
		}
		u.Object["spec"] = spec
		return nil
	})
	if isNotFound(err) {
		u := &unstructured.Unstructured{Object: map[string]any{"spec": spec}}
		u.SetGroupVersionKind(trafficSplitGVK)
		u.SetNamespace(key.Namespace)
		u.SetName(key.Name)
		u.SetOwnerReferences([]metav1.OwnerReference{*ownerRef(ro)})
		err = s.c.Create(ctx, u)
	}
	if err != nil {
		return fmt.Errorf("set routes on trafficsplit %s: %w", key, err)
	}
	return nil
}

// ObservedRoutes reads the weights off the TrafficSplit; a missing one sends nothing to the
// canary.
func (s *SMI) ObservedRoutes(ctx context.Context, ro *v1alpha1.Rollout) (Routes, error) {
	c, _, key, err := s.config(ro)
	if err != nil {
		return Routes{}, err
	}
	out := specRoutes(c)
	u, err := getUnstructured(ctx, s.c, trafficSplitGVK, key)
	if isNotFound(err) {
		return out, nil
	}
	if err != nil {
		return Routes{}, fmt.Errorf("read routes of trafficsplit %s: %w", key, err)
	}
	var sw, cw int64
	backends, _, _ := unstructured.NestedSlice(u.Object, "spec", "backends")
	for _, b := range backends {
		w, _ := asInt(asMap(b)["weight"])
		switch asString(asMap(b)["service"]) {
		case out.StableService:
			sw += w
		case out.CanaryService:
			cw += w
		}
	}
	if sw+cw > 0 {
		out.CanaryWeight = int32(cw * 100 / (sw + cw))
	}
	return out, nil
}

// ownerRef makes ro the controller of an object ramp creates, so deleting the Rollout
// deletes it.
func ownerRef(ro *v1alpha1.Rollout) *metav1.OwnerReference {
	return metav1.NewControllerRef(ro, rolloutGVK)
}

// checkOwner refuses to take over an object that another controller owns.
func checkOwner(obj metav1.Object, ro *v1alpha1.Rollout) error {
	ref := metav1.GetControllerOf(obj)
	if ref != nil && ref.UID != ro.UID {
		return fmt.Errorf("%s is controlled by %s %s, not by this rollout", obj.GetName(), ref.Kind, ref.Name)
	}
	return nil
}
