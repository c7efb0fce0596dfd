package kube

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/engine"
)

// withRoutingKinds moves the fixture onto a fake cluster that also serves the routers'
// third-party kinds and holds extra: the same objects, a new client and reconciler.
func withRoutingKinds(f *fixture, extra ...client.Object) {
	f.t.Helper()
	s := Scheme()
	for _, gvk := range thirdParty {
		s.AddKnownTypeWithName(gvk, &unstructured.Unstructured{})
		s.AddKnownTypeWithName(gvk.GroupVersion().WithKind(gvk.Kind+"List"), &unstructured.UnstructuredList{})
	}
	objs := extra
	for _, l := range []client.ObjectList{&appsv1.DeploymentList{}, &appsv1.ReplicaSetList{}, &corev1.ServiceList{}, &corev1.PodList{}, &v1alpha1.RolloutList{}} {
		if err := f.c.List(context.Background(), l, client.InNamespace(ns)); err != nil {
			f.t.Fatal(err)
		}
		items, err := meta.ExtractList(l)
		if err != nil {
			f.t.Fatal(err)
		}
		for _, o := range items {
			co := o.(client.Object)
			co.SetResourceVersion("")
			objs = append(objs, co)
		}
	}
	f.c = fake.NewClientBuilder().WithScheme(s).WithObjects(objs...).WithStatusSubresource(&v1alpha1.Rollout{}, &appsv1.ReplicaSet{}, &appsv1.Deployment{}).Build()
	f.r = NewReconciler(f.c, f.rec, ReconcilerOptions{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: func() time.Time { return f.now }})
}

// mirrorCase is a router that mirrors, with its routing object and a hand edit that takes
// the mirror away.
type mirrorCase struct {
	name     string
	routing  v1alpha1.TrafficRouting
	object   string
	unmirror func(u *unstructured.Unstructured)
	gvk      schema.GroupVersionKind
}

var mirrorCases = []mirrorCase{
	{
		name:    "istio",
		routing: v1alpha1.TrafficRouting{Istio: &v1alpha1.IstioTrafficRouting{VirtualService: v1alpha1.IstioVirtualService{Name: "chat-api"}}},
		object: `
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: {name: chat-api, namespace: team}
spec:
  hosts: [chat-api]
  http:
  - route:
    - destination: {host: chat-api-stable, port: {number: 8080}}
`,
		gvk: virtualServiceGVKs[0],
		unmirror: func(u *unstructured.Unstructured) {
			http, _, _ := unstructured.NestedSlice(u.Object, "spec", "http")
			delete(asMap(http[0]), "mirror")
			delete(asMap(http[0]), "mirrorPercentage")
			_ = unstructured.SetNestedSlice(u.Object, http, "spec", "http")
		},
	},
	{
		name:    "gatewayAPI",
		routing: v1alpha1.TrafficRouting{GatewayAPI: &v1alpha1.GatewayAPITrafficRouting{HTTPRoute: "chat-api"}},
		object: `
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: chat-api, namespace: team}
spec:
  parentRefs: [{name: public}]
  rules:
  - backendRefs: [{name: chat-api-stable, port: 8080}]
`,
		gvk: httpRouteGVK,
		unmirror: func(u *unstructured.Unstructured) {
			rules, _, _ := unstructured.NestedSlice(u.Object, "spec", "rules")
			delete(asMap(rules[0]), "filters")
			_ = unstructured.SetNestedSlice(u.Object, rules, "spec", "rules")
		},
	},
}

// Given a canary with a router that mirrors and canary.mirror, the routing object copies 20%
// of the requests to the canary Service while the canary runs, a hand edit of the mirror is
// reported and repaired, and the copies stop at promotion and at an abort.
func TestMirrorAcrossACanary(t *testing.T) {
	for _, mc := range mirrorCases {
		t.Run(mc.name, func(t *testing.T) {
			mirrorAcrossACanary(t, mc)
		})
	}
}

func mirrorAcrossACanary(t *testing.T, mc mirrorCase) {
	ro := canaryRollout(v1alpha1.CanaryStep{SetWeight: ptr(int32(10))}, v1alpha1.CanaryStep{Pause: &v1alpha1.RolloutPause{}})
	c := ro.Spec.Strategy.Canary
	c.Mirror = &v1alpha1.CanaryMirror{Percentage: 20}
	c.TrafficRouting = &mc.routing
	f := newFixture(t, ro)
	withRoutingKinds(f, obj(t, mc.object))
	router, err := NewRouter(RouterName(ro), f.c)
	if err != nil {
		t.Fatal(err)
	}
	observed := func() Routes {
		t.Helper()
		got, err := router.ObservedRoutes(context.Background(), f.rollout())
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	wantRoutes := func(weight, mirror int32) {
		t.Helper()
		ro := f.rollout()
		if got := observed(); got.CanaryWeight != weight || got.MirrorPercent != mirror {
			t.Fatalf("routing object: weight %d, mirror %d%%; want %d, %d%% (%s: %s)", got.CanaryWeight, got.MirrorPercent, weight, mirror, ro.Status.Phase, ro.Status.Message)
		}
	}

	f.settle()
	if ro := f.rollout(); ro.Status.Phase != v1alpha1.PhaseHealthy {
		t.Fatalf("first revision: %s: %s", ro.Status.Phase, ro.Status.Message)
	}
	wantRoutes(0, 0)

	// When revision 2 reaches the pause, then 10% goes to it and 20% is copied to it.
	f.setImage("chat-api:v2")
	f.settle()
	if ro := f.rollout(); ro.Status.CanaryRevision != 2 || *ro.Status.CurrentStepIndex != 1 {
		t.Fatalf("canary %d at step %d: %s", ro.Status.CanaryRevision, *ro.Status.CurrentStepIndex, ro.Status.Message)
	}
	wantRoutes(10, 20)
	for _, e := range f.seen {
		if strings.Contains(e, " TrafficDrift ") {
			t.Errorf("drift reported before any hand edit: %q", e)
		}
	}

	// When someone takes the mirror away by hand, then ramp says so and sets it again.
	setUnstructuredIn(t, f.c, mc.gvk, "chat-api", mc.unmirror)
	wantRoutes(10, 0)
	f.reconcile()
	wantRoutes(10, 20)
	found := false
	for _, e := range f.seen {
		found = found || strings.Contains(e, " TrafficDrift ") && strings.Contains(e, "mirror: want 20%, got 0%")
	}
	if !found {
		t.Errorf("no TrafficDrift event naming the mirror among %q", f.seen)
	}

	// When the canary is promoted, then the copies stop with it.
	f.command(func(ro *v1alpha1.Rollout) error { return engine.Promote(ro, true) })
	f.settle()
	if ro := f.rollout(); ro.Status.Phase != v1alpha1.PhaseHealthy || ro.Status.StableRevision != 2 {
		t.Fatalf("after promote: %s stable %d: %s", ro.Status.Phase, ro.Status.StableRevision, ro.Status.Message)
	}
	wantRoutes(0, 0)

	// When revision 3 is mirrored and then aborted, then the copies stop too, before the
	// canary Service is pointed back at stable's pods.
	f.setImage("chat-api:v3")
	f.settle()
	wantRoutes(10, 20)
	var copiedToStable []string
	inner := f.c
	f.r.client = interceptor.NewClient(inner.(client.WithWatch), interceptor.Funcs{
		Patch: func(ctx context.Context, c client.WithWatch, o client.Object, p client.Patch, opts ...client.PatchOption) error {
			if o.GetName() == "chat-api-canary" {
				if got := observed(); got.MirrorPercent != 0 {
					copiedToStable = append(copiedToStable, fmt.Sprintf("canary Service's selector changed while %d%% was mirrored", got.MirrorPercent))
				}
			}
			return c.Patch(ctx, o, p, opts...)
		},
	})
	f.command(engine.Abort)
	f.settle()
	if len(copiedToStable) > 0 {
		t.Errorf("%v", copiedToStable)
	}
	if ro := f.rollout(); ro.Status.Phase != v1alpha1.PhaseDegraded {
		t.Fatalf("after abort: %s: %s", ro.Status.Phase, ro.Status.Message)
	}
	wantRoutes(0, 0)
}

// setUnstructuredIn edits a stored third-party object in namespace ns.
func setUnstructuredIn(t *testing.T, c client.Client, gvk schema.GroupVersionKind, name string, edit func(u *unstructured.Unstructured)) {
	t.Helper()
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(gvk)
	if err := c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, u); err != nil {
		t.Fatal(err)
	}
	edit(u)
	if err := c.Update(context.Background(), u); err != nil {
		t.Fatal(err)
	}
}
