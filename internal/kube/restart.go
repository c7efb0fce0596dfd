package kube

import (
	"context"
	"errors"
	"fmt"
	"slices"

	appsv1 "k8s.io/api/apps/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/engine"
)

// A restart (`ramp restart`, spec.restartAt) in Kubernetes mode evicts the stable revision's
// pods that started before restartAt, a few at a time, and the ReplicaSet that runs them (the
// Deployment's) creates their replacements: no new pod template, so no new revision, no canary,
// and the Deployment stays paused. `kubectl rollout restart` would change the template (its
// kubectl.kubernetes.io/restartedAt annotation), which ramp would roll out as a new revision
// through the canary steps; and kubectl refuses it on a paused Deployment anyway.
//
// The engine picks the pods: it cannot surge (the Deployment keeps its ReplicaSet at its
// replica count), so it evicts at most maxUnavailable of the Deployment's at a time (at least
// one), and the next only once enough pods are Ready again. Eviction rather than deletion, so
// that a PodDisruptionBudget is honoured: an eviction it refuses is tried again later.

// restartBudget is what a restart may do in Kubernetes mode: no surge, the Deployment's
// maxUnavailable.
func restartBudget(w *world) *engine.RestartBudget {
	return &engine.RestartBudget{Unavailable: w.maxUnavailable()}
}

// maxUnavailable is the Deployment's maxUnavailable as a count (rounded down, as the
// Deployment controller does); a Recreate Deployment gives 0.
func (w *world) maxUnavailable() int32 {
	if w.deploy.Spec.Strategy.Type == appsv1.RecreateDeploymentStrategyType {
		return 0
	}
	v := intstr.FromString("25%")
	if ru := w.deploy.Spec.Strategy.RollingUpdate; ru != nil && ru.MaxUnavailable != nil {
		v = *ru.MaxUnavailable
	}
	n, err := intstr.GetScaledValueFromIntOrPercent(&v, int(w.replicas()), false)
	if err != nil {
		return 0
	}
	return int32(n)
}

// restartPods evicts the pods the decision's restart replaces now.
func (r *Reconciler) restartPods(ctx context.Context, ro *v1alpha1.Rollout, w *world, names []string) error {
	var errs []error
	for i := range w.pods {
		p := &w.pods[i]
		if !slices.Contains(names, p.Name) || p.DeletionTimestamp != nil {
			continue
		}
		ev := &policyv1.Eviction{ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: p.Namespace}}
		err := r.client.SubResource("eviction").Create(ctx, p, ev)
		switch {
		case err == nil:
			r.log.Info("restart: pod evicted", keyRollout, ro.Name, "pod", p.Name)
		case apierrors.IsNotFound(err):
		case apierrors.IsTooManyRequests(err):
			// A PodDisruptionBudget does not allow it now: the next decision tries again.
			r.log.Info("restart: eviction refused for now", keyRollout, ro.Name, "pod", p.Name, "err", err)
		default:
			errs = append(errs, fmt.Errorf("restart: evict pod %s: %w", p.Name, err))
		}
	}
	return errors.Join(errs...)
}

// restarting reports whether a restart is asked for and not complete.
func restarting(ro *v1alpha1.Rollout) bool {
	at := ro.Spec.RestartAt
	return at != nil && (ro.Status.RestartedAt == nil || ro.Status.RestartedAt.Before(at))
}
