package kube

import (
	"context"
	"log/slog"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/spec"
)

// ingressGVK is the Ingress kind the NGINX router reads (the stable Ingress) and writes (the
// canary Ingress).
var ingressGVK = schema.GroupVersionKind{Group: "networking.k8s.io", Version: "v1", Kind: "Ingress"}

// routingKinds are the kinds of the objects the routers read back (spec.Router.Objects),
// each with its versions: the first version the cluster serves is watched (each version
// shows every object).
func routingKinds() [][]schema.GroupVersionKind {
	var out [][]schema.GroupVersionKind
	seen := map[string]bool{}
	for _, r := range spec.Routers() {
		for _, o := range r.Objects {
			if !seen[o.Kind] {
				seen[o.Kind] = true
				out = append(out, routedKinds[o.Kind])
			}
		}
	}
	return out
}

// watchRouting adds to b a watch on every routing kind the cluster serves when the manager
// is built, so that a change made by hand to a rollout's routing object (drift) wakes the
// rollout at once, rather than at its next poll; route then reports and repairs it. A kind
// whose CRD is installed later is not watched until the controller restarts: its drift is
// then repaired at the next poll (pollInterval while a rollout is under way).
func (r *Reconciler) watchRouting(b *builder.Builder, mgr manager.Manager) *builder.Builder {
	for _, gvks := range routingKinds() {
		for _, gvk := range gvks {
			if _, err := mgr.GetRESTMapper().RESTMapping(gvk.GroupKind(), gvk.Version); err != nil {
				r.log.Debug("routing kind not served; not watched", "kind", gvk.String(), "err", err)
				continue
			}
			// A kind of the scheme (Ingress) shares the informer of the router's typed reads.
			obj, err := mgr.GetScheme().New(gvk)
			if err != nil {
				u := &unstructured.Unstructured{}
				u.SetGroupVersionKind(gvk)
				obj = u
			}
			b = b.Watches(obj.(client.Object), handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
				return rolloutsRoutedBy(ctx, mgr.GetClient(), r.log, gvk.Kind, o)
			}))
			break
		}
	}
	return b
}

// rolloutsRoutedBy returns the rollouts whose router reads o, an object of kind: the one that
// controls it (a TrafficSplit or canary Ingress ramp made), or those that name it.
func rolloutsRoutedBy(ctx context.Context, c client.Client, log *slog.Logger, kind string, o client.Object) []reconcile.Request {
	for _, ref := range o.GetOwnerReferences() {
		if ref.Controller != nil && *ref.Controller && ref.Kind == rolloutGVK.Kind && ref.APIVersion == rolloutGVK.GroupVersion().String() {
			return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: o.GetNamespace(), Name: ref.Name}}}
		}
	}
	var list v1alpha1.RolloutList
	if err := c.List(ctx, &list, client.InNamespace(o.GetNamespace())); err != nil {
		log.Warn("list rollouts of routing object", "kind", kind, "object", o.GetNamespace()+"/"+o.GetName(), "err", err)
		return nil
	}
	var out []reconcile.Request
	for i := range list.Items {
		if routingObjectName(&list.Items[i], kind) == o.GetName() {
			out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: o.GetNamespace(), Name: list.Items[i].Name}})
		}
	}
	return out
}

// routingObjectName is the name of the object of kind that ro's router reads, or "".
func routingObjectName(ro *v1alpha1.Rollout, kind string) string {
	if RouterName(ro) == "" {
		return ""
	}
	for _, o := range spec.RouterOf(ro).Objects {
		if o.Kind == kind {
			return o.Name(ro)
		}
	}
	return ""
}
