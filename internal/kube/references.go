package kube

import (
	"context"
	"fmt"
	"math"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/engine"
	"ramp.dev/ramp/internal/spec"
)

// missingReferences names the Services and the routing object ro refers to that do not exist
// in its namespace. The routing objects ramp makes itself (SMI's TrafficSplit, NGINX's canary
// Ingress) are not asked for; a read that fails for another reason is not reported here (the
// action that needs the object reports it).
func (r *Reconciler) missingReferences(ctx context.Context, ro *v1alpha1.Rollout) []string {
	var missing []string
	for _, svc := range rolloutServices(ro) {
		err := r.client.Get(ctx, types.NamespacedName{Namespace: ro.Namespace, Name: svc}, &corev1.Service{})
		if apierrors.IsNotFound(err) {
			missing = append(missing, "Service "+svc)
		}
	}
	if RouterName(ro) == "" {
		return missing
	}
	for _, o := range spec.RouterOf(ro).Objects {
		if o.Made {
			continue
		}
		if name := o.Name(ro); name != "" {
			if m := r.missingObject(ctx, ro, routedKinds[o.Kind], name); m != "" {
				missing = append(missing, m)
			}
		}
	}
	return missing
}

// missingObject names the routing object name of kinds when it does not exist; "" when it
// does, or cannot be read for another reason.
func (r *Reconciler) missingObject(ctx context.Context, ro *v1alpha1.Rollout, kinds []schema.GroupVersionKind, name string) string {
	var err error
	for _, gvk := range kinds {
		u := &unstructured.Unstructured{}
		u.SetGroupVersionKind(gvk)
		if err = r.client.Get(ctx, types.NamespacedName{Namespace: ro.Namespace, Name: name}, u); !meta.IsNoMatchError(err) {
			break
		}
	}
	what := fmt.Sprintf("%s router's %s %s", RouterName(ro), kinds[0].Kind, name)
	switch {
	case apierrors.IsNotFound(err):
		return what
	case meta.IsNoMatchError(err):
		return what + " (the cluster does not serve " + kinds[0].GroupKind().String() + ": is its CRD installed?)"
	}
	return ""
}

// checkReferences sets the ReferencesFound condition: False, with a Warning event when that
// changes, while a Service or routing object the rollout names does not exist. The rollout is
// not refused: they may be created after it, and until they are no step completes.
func (r *Reconciler) checkReferences(ctx context.Context, ro *v1alpha1.Rollout) {
	missing := r.missingReferences(ctx, ro)
	if len(missing) == 0 {
		r.setCondition(ro, v1alpha1.ConditionReferencesFound, true, "Found", "every Service and routing object the rollout names exists")
		return
	}
	msg := fmt.Sprintf("%s not found in namespace %s: steps, promotion and the blue-green switch wait until they exist (a rollout under way aborts at its progress deadline)", strings.Join(missing, ", "), ro.Namespace)
	if r.setCondition(ro, v1alpha1.ConditionReferencesFound, false, "MissingReferences", msg) {
		r.recorder.Eventf(ro, nil, corev1.EventTypeWarning, "MissingReferences", "Validate", "%s", msg)
	}
}

// approximations says, for a canary whose router carries weights by pod counts (plain
// Services: spec.Router.ExactWeights false), which setWeight steps come out more than 5
// points off beside n stable pods; empty when none.
func approximations(ro *v1alpha1.Rollout, n int32) string {
	c := ro.Spec.Strategy.Canary
	if c == nil || spec.RouterOf(ro).ExactWeights || n <= 0 {
		return ""
	}
	var off []string
	for i, st := range c.Steps {
		if st.SetWeight == nil || *st.SetWeight <= 0 || *st.SetWeight >= 100 {
			continue
		}
		w := *st.SetWeight
		pods := engine.ReplicasForWeight(w, n)
		real := int32(math.Round(100 * float64(pods) / float64(n+pods)))
		if d := real - w; d > 5 || d < -5 {
			off = append(off, fmt.Sprintf("spec.strategy.canary.steps[%d].setWeight %d runs %d canary pod(s) beside %d stable: %d%%", i, w, pods, n, real))
		}
	}
	if len(off) == 0 {
		return ""
	}
	return "without a trafficRouting router the weight is approximated by pod counts: " + strings.Join(off, "; ") +
		"; use a trafficRouting router, or weights the replica count can carry"
}
