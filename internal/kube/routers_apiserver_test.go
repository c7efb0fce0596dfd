package kube

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"ramp.dev/ramp/test/k8senv"
)

// rolloutCRD is a stand-in for ramp's Rollout CRD, so that the objects the routers own have a
// real owner and the garbage collector can be seen to remove them with it.
const rolloutCRD = `
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: rollouts.ramp.dev}
spec:
  group: ramp.dev
  scope: Namespaced
  names: {kind: Rollout, listKind: RolloutList, plural: rollouts, singular: rollout}
  versions:
  - name: v1alpha1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec: {type: object, x-kubernetes-preserve-unknown-fields: true}
`

// TestRoutersOnAPIServer runs every router's story against a real kube-apiserver with the
// traffic layers' CRDs installed (test/k8s/crds, then the upstream ones in testdata/crds over
// them), and checks that what a router creates is controlled by its (stored) rollout, so the
// garbage collector removes it with the rollout. It is skipped when the control-plane binaries
// are not built (`make k8s-bins`; `make test` builds them first).
func TestRoutersOnAPIServer(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a control plane")
	}
	if _, err := k8senv.BinDir(); err != nil {
		t.Skipf("no control plane: %v", err)
	}
	env := k8senv.Start(t)
	// The minimal stand-ins first, then the upstream HTTPRoute and VirtualService CRDs over them.
	env.ApplyFiles(t, "../../test/k8s/crds", "testdata/crds")
	ctx := context.Background()
	if _, err := env.Apply(ctx, []byte(rolloutCRD)); err != nil {
		t.Fatal(err)
	}
	c := env.Client
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: routerNS}}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range routerCases {
		t.Run(tc.name, func(t *testing.T) {
			for _, o := range tc.objects(t) {
				if err := c.Create(ctx, o); err != nil {
					t.Fatalf("create %s: %v", o.GetName(), err)
				}
			}
			ro := loadRollout(t, rolloutDoc(tc.routing))
			ro.Name = "chat-" + strings.ToLower(tc.name) // one Rollout per router
			stored := &unstructured.Unstructured{Object: map[string]any{
				"apiVersion": "ramp.dev/v1alpha1", "kind": "Rollout",
				"metadata": map[string]any{"name": ro.Name, "namespace": routerNS},
				"spec":     map[string]any{},
			}}
			if err := c.Create(ctx, stored); err != nil {
				t.Fatal(err)
			}
			ro.UID = stored.GetUID() // the owner the router's objects point at exists
			routerStory(t, c, tc, ro)

			owned := ownedObject(tc.name, ro.Name)
			if owned == nil {
				return
			}
			if err := c.Get(ctx, client.ObjectKeyFromObject(owned), owned); err != nil {
				t.Fatal(err)
			}
			if ref := metav1.GetControllerOf(owned); ref == nil || ref.UID != stored.GetUID() {
				t.Fatalf("%s is controlled by %v, want the rollout %s", owned.GetName(), ref, stored.GetUID())
			}
		})
	}
}

// ownedObject is the object a router creates and the rollout owns, or nil when it creates
// none.
func ownedObject(router, rollout string) client.Object {
	switch router {
	case "smi":
		u := &unstructured.Unstructured{}
		u.SetGroupVersionKind(trafficSplitGVK)
		u.SetNamespace(routerNS)
		u.SetName(rollout)
		return u
	case "nginx":
		return &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Namespace: routerNS, Name: CanaryIngressName(rollout, "chat-api")}}
	}
	return nil
}
