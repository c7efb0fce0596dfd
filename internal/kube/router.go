// Package kube is Kubernetes mode: a controller-runtime reconciler that reads Rollout custom
// resources, calls the same engine as local mode, and carries out its decisions on
// Deployments, Services, the cluster's traffic layer and Prometheus.
package kube

import (
	"context"

	"ramp.dev/ramp/api/v1alpha1"
)

// Routes is what a router makes the traffic layer do for one rollout: the canary (or preview)
// Service gets CanaryWeight percent, the stable (or active) Service the rest, and requests
// that match a header route go to the canary Service whatever the weights.
type Routes struct {
	StableService string
	CanaryService string
	// CanaryWeight is 0..100.
	CanaryWeight int32
	// HeaderRoutes go ahead of the weights, in order.
	HeaderRoutes []v1alpha1.SetHeaderRoute
	// MirrorPercent is the percent (1..100) of the weighed routes' requests copied to the
	// canary Service, the copies' answers thrown away; 0 means no copies. Only the routers
	// whose description (spec.Router.Mirror) says they mirror accept it.
	MirrorPercent int32
}

// Router sets weights and header routes on one kind of traffic layer. Each implementation
// lives in its own file and is registered by name in routerFactories; what it can do is
// described once, in spec.Routers, which validation checks rollouts against.
type Router interface {
	// SetRoutes makes the traffic layer route as r says. It is idempotent.
	SetRoutes(ctx context.Context, ro *v1alpha1.Rollout, r Routes) error
	// ObservedRoutes reads back what the traffic layer does now, so the controller can report
	// and repair drift.
	ObservedRoutes(ctx context.Context, ro *v1alpha1.Rollout) (Routes, error)
}
