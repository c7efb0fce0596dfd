package kube

import (
	"context"
	"fmt"
	"maps"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/spec"
)

// ServiceRouter is the traffic layer of plain Kubernetes Services, used when a canary names no
// trafficRouting router. Services cannot weigh traffic: a Service that selects both stable and
// canary pods (the team's own Service, selecting the Deployment's labels) splits requests by
// ready pods, so the reconciler approximates the canary's weight with its replica count. The
// selectors of stableService and canaryService (and blue-green's activeService and
// previewService) are set by the reconciler for every router, with SetServiceSelector.
type ServiceRouter struct {
	c client.Client
}

var _ Router = (*ServiceRouter)(nil)

// NewServiceRouter returns the Service router working through c.
func NewServiceRouter(c client.Client) *ServiceRouter { return &ServiceRouter{c: c} }

// SetRoutes checks that the Services the routes name exist; the weight is carried by replica
// counts and header routes cannot be expressed (validation refuses them).
func (s *ServiceRouter) SetRoutes(ctx context.Context, ro *v1alpha1.Rollout, r Routes) error {
	if err := checkMirror(r, spec.RouterService); err != nil {
		return fmt.Errorf("set routes with service selectors: %w", err)
	}
	for _, name := range []string{r.StableService, r.CanaryService} {
		if name == "" {
			continue
		}
		if err := s.c.Get(ctx, types.NamespacedName{Namespace: ro.Namespace, Name: name}, &corev1.Service{}); err != nil {
			return fmt.Errorf("service %s: %w", name, err)
		}
	}
	return nil
}

// ObservedRoutes reads what the Services do now: the canary's weight is its share of the ready
// pods the stable and canary Services select together (0 without both Services).
func (s *ServiceRouter) ObservedRoutes(ctx context.Context, ro *v1alpha1.Rollout) (Routes, error) {
	c := ro.Spec.Strategy.Canary
	if c == nil {
		return Routes{}, nil
	}
	out := Routes{StableService: c.StableService, CanaryService: c.CanaryService}
	if c.StableService == "" || c.CanaryService == "" {
		return out, nil
	}
	stable, err := s.readyPods(ctx, ro.Namespace, c.StableService)
	if err != nil {
		return out, err
	}
	canary, err := s.readyPods(ctx, ro.Namespace, c.CanaryService)
	if err != nil {
		return out, err
	}
	if stable+canary > 0 {
		out.CanaryWeight = int32(100 * canary / (stable + canary))
	}
	return out, nil
}

func (s *ServiceRouter) readyPods(ctx context.Context, ns, name string) (int, error) {
	svc := &corev1.Service{}
	if err := s.c.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, svc); err != nil {
		return 0, fmt.Errorf("service %s: %w", name, err)
	}
	if len(svc.Spec.Selector) == 0 {
		return 0, nil
	}
	var pods corev1.PodList
	if err := s.c.List(ctx, &pods, client.InNamespace(ns), client.MatchingLabels(svc.Spec.Selector)); err != nil {
		return 0, fmt.Errorf("pods of service %s: %w", name, err)
	}
	n := 0
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil && podReady(&p) {
			n++
		}
	}
	return n, nil
}

// SetServiceSelector makes Service name select only the pods with pod-template-hash hash,
// keeping the rest of its selector; an empty hash removes ramp's part of the selector. It
// reports whether it changed the Service.
func SetServiceSelector(ctx context.Context, c client.Client, ns, name, hash string) (bool, error) {
	svc := &corev1.Service{}
	if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, svc); err != nil {
		if apierrors.IsNotFound(err) && hash == "" {
			return false, nil
		}
		return false, fmt.Errorf("service %s: %w", name, err)
	}
	want := maps.Clone(svc.Spec.Selector)
	if hash == "" {
		delete(want, appsv1.DefaultDeploymentUniqueLabelKey)
	} else {
		want = labels.Merge(want, labels.Set{appsv1.DefaultDeploymentUniqueLabelKey: hash})
	}
	if maps.Equal(want, svc.Spec.Selector) {
		return false, nil
	}
	patch := client.MergeFrom(svc.DeepCopy())
	svc.Spec.Selector = want
	if err := c.Patch(ctx, svc, patch); err != nil {
		return false, fmt.Errorf("set selector of service %s: %w", name, err)
	}
	return true, nil
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
