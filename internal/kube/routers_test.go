package kube

import (
	"context"
	"slices"
	"strings"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/yaml"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/analysis/trafficmetrics"
	"ramp.dev/ramp/internal/spec"
)

const routerNS = "carepath-demo"

// newScheme knows the built-in kinds and the given third-party kinds as unstructured.
func newScheme(t *testing.T, gvks ...schema.GroupVersionKind) *runtime.Scheme {
	t.Helper()
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	for _, gvk := range gvks {
		s.AddKnownTypeWithName(gvk, &unstructured.Unstructured{})
		s.AddKnownTypeWithName(gvk.GroupVersion().WithKind(gvk.Kind+"List"), &unstructured.UnstructuredList{})
	}
	return s
}

// thirdParty are the third-party kinds the routers use, with the VirtualService at v1beta1.
var thirdParty = []schema.GroupVersionKind{httpRouteGVK, virtualServiceGVKs[0], trafficSplitGVK}

// obj parses a YAML manifest into an unstructured object.
func obj(t *testing.T, manifest string) *unstructured.Unstructured {
	t.Helper()
	u := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(manifest), &u.Object); err != nil {
		t.Fatalf("parse manifest: %v", err)
	}
	return u
}

// loadRollout parses and validates a Rollout the way users write it.
func loadRollout(t *testing.T, doc string) *v1alpha1.Rollout {
	t.Helper()
	b, err := spec.Load([]byte(doc))
	if err != nil {
		t.Fatalf("load rollout: %v", err)
	}
	ro := &b.Rollouts[0]
	ro.Namespace = routerNS
	ro.UID = "rollout-uid"
	return ro
}

// rolloutDoc is a chat-api canary rollout with trafficRouting given as YAML (indented 8).
func rolloutDoc(routing string) string {
	return `apiVersion: ramp.dev/v1alpha1
kind: Rollout
metadata: {name: chat-api}
spec:
  template: {process: {command: chat-api}}
  strategy:
    canary:
      stableService: chat-api
      canaryService: chat-api-canary
      trafficRouting:
` + routing + `
      steps: [{setWeight: 25}]
`
}

const (
	httpRouteYAML = `
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: chat-api, namespace: carepath-demo}
spec:
  parentRefs: [{name: public}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /v1/chat}}]
    backendRefs: [{name: chat-api, port: 8080}]
  - matches: [{path: {type: PathPrefix, value: /admin}}]
    backendRefs: [{name: admin, port: 9090}]
`
	virtualServiceYAML = `
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: {name: chat-api, namespace: carepath-demo}
spec:
  hosts: [chat-api]
  http:
  - name: primary
    route:
    - destination: {host: chat-api}
      weight: 100
    - destination: {host: chat-api-canary}
      weight: 0
`
)

func stableIngress() *networkingv1.Ingress {
	class := "nginx"
	pt := networkingv1.PathTypePrefix
	return &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{Name: "chat-api", Namespace: routerNS},
		Spec: networkingv1.IngressSpec{
			IngressClassName: &class,
			Rules: []networkingv1.IngressRule{{
				Host: "chat.example.com",
				IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{Paths: []networkingv1.HTTPIngressPath{
					{Path: "/", PathType: &pt, Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{Name: "chat-api", Port: networkingv1.ServiceBackendPort{Number: 8080}}}},
					{Path: "/admin", PathType: &pt, Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{Name: "admin", Port: networkingv1.ServiceBackendPort{Number: 9090}}}},
				}}},
			}},
		},
	}
}

// albIngress is the team's Ingress for the AWS Load Balancer Controller: chat-api at / and an
// admin Service beside it. Its name differs from the NGINX case's, as the cases share a
// namespace on the API server.
func albIngress() *networkingv1.Ingress {
	ing := stableIngress()
	ing.Name = "chat-api-alb"
	class := "alb"
	ing.Spec.IngressClassName = &class
	ing.Annotations = map[string]string{"alb.ingress.kubernetes.io/scheme": "internet-facing"}
	return ing
}

// routerCase is one router in a world that has what it needs.
type routerCase struct {
	name    string
	routing string // trafficRouting YAML, indented 8
	objects func(t *testing.T) []client.Object
	header  v1alpha1.SetHeaderRoute // a header route the router can express (unused when it has none)
	// tamper edits the weights by hand, as an operator with kubectl would.
	tamper func(t *testing.T, c client.Client, ro *v1alpha1.Rollout)
	// tamperMirror makes the weighed routes mirror 50% to the canary by hand (routers that
	// mirror only).
	tamperMirror func(t *testing.T, c client.Client, ro *v1alpha1.Rollout)
}

var canaryHeader = v1alpha1.SetHeaderRoute{Name: "testers", Match: []v1alpha1.HeaderMatch{
	{HeaderName: "x-version", HeaderValue: v1alpha1.StringMatch{Exact: "canary"}},
}}

// setUnstructured edits one field of a stored third-party object.
func setUnstructured(t *testing.T, c client.Client, gvk schema.GroupVersionKind, name string, edit func(u *unstructured.Unstructured)) {
	t.Helper()
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(gvk)
	if err := c.Get(context.Background(), client.ObjectKey{Namespace: routerNS, Name: name}, u); err != nil {
		t.Fatal(err)
	}
	edit(u)
	if err := c.Update(context.Background(), u); err != nil {
		t.Fatal(err)
	}
}

var routerCases = []routerCase{
	{
		name:    "gatewayAPI",
		routing: "        managedRoutes: [{name: testers}]\n        gatewayAPI: {httpRoute: chat-api}",
		objects: func(t *testing.T) []client.Object { return []client.Object{obj(t, httpRouteYAML)} },
		header: v1alpha1.SetHeaderRoute{Name: "testers", Match: []v1alpha1.HeaderMatch{
			{HeaderName: "x-version", HeaderValue: v1alpha1.StringMatch{Exact: "canary"}},
			{HeaderName: "x-user", HeaderValue: v1alpha1.StringMatch{Regex: "^tester-[0-9]+$"}},
		}},
		tamper: func(t *testing.T, c client.Client, ro *v1alpha1.Rollout) {
			setUnstructured(t, c, httpRouteGVK, "chat-api", func(u *unstructured.Unstructured) {
				rules, _, _ := unstructured.NestedSlice(u.Object, "spec", "rules")
				for _, r := range rules {
					for _, ref := range asSlice(asMap(r)["backendRefs"]) {
						if asMap(ref)["name"] == "chat-api-canary" {
							asMap(ref)["weight"] = int64(60)
						}
					}
				}
				_ = unstructured.SetNestedSlice(u.Object, rules, "spec", "rules")
			})
		},
		tamperMirror: func(t *testing.T, c client.Client, ro *v1alpha1.Rollout) {
			setUnstructured(t, c, httpRouteGVK, "chat-api", func(u *unstructured.Unstructured) {
				rules, _, _ := unstructured.NestedSlice(u.Object, "spec", "rules")
				for _, r := range rules {
					for _, f := range asSlice(asMap(r)["filters"]) {
						if rm := asMap(asMap(f)["requestMirror"]); rm != nil {
							rm["percent"] = int64(50)
						}
					}
				}
				_ = unstructured.SetNestedSlice(u.Object, rules, "spec", "rules")
			})
		},
	},
	{
		name:    "istio",
		routing: "        managedRoutes: [{name: testers}]\n        istio: {virtualService: {name: chat-api, routes: [primary]}}",
		objects: func(t *testing.T) []client.Object { return []client.Object{obj(t, virtualServiceYAML)} },
		header:  canaryHeader,
		tamper: func(t *testing.T, c client.Client, ro *v1alpha1.Rollout) {
			setUnstructured(t, c, virtualServiceGVKs[0], "chat-api", func(u *unstructured.Unstructured) {
				_ = unstructured.SetNestedSlice(u.Object, []any{map[string]any{"name": "primary", "route": []any{
					map[string]any{"destination": map[string]any{"host": "chat-api"}, "weight": int64(50)},
					map[string]any{"destination": map[string]any{"host": "chat-api-canary"}, "weight": int64(50)},
				}}}, "spec", "http")
			})
		},
		tamperMirror: func(t *testing.T, c client.Client, ro *v1alpha1.Rollout) {
			setUnstructured(t, c, virtualServiceGVKs[0], "chat-api", func(u *unstructured.Unstructured) {
				http, _, _ := unstructured.NestedSlice(u.Object, "spec", "http")
				for _, h := range http {
					if asMap(h)["name"] == "primary" {
						asMap(h)["mirrorPercentage"] = map[string]any{"value": 50.5}
					}
				}
				_ = unstructured.SetNestedSlice(u.Object, http, "spec", "http")
			})
		},
	},
	{
		name:    "smi",
		routing: "        smi: {}",
		objects: func(t *testing.T) []client.Object { return nil },
		tamper: func(t *testing.T, c client.Client, ro *v1alpha1.Rollout) {
			setUnstructured(t, c, trafficSplitGVK, ro.Name, func(u *unstructured.Unstructured) {
				_ = unstructured.SetNestedSlice(u.Object, []any{
					map[string]any{"service": "chat-api", "weight": int64(10)},
					map[string]any{"service": "chat-api-canary", "weight": int64(90)},
				}, "spec", "backends")
			})
		},
	},
	{
		name:    "nginx",
		routing: "        managedRoutes: [{name: testers}]\n        nginx: {stableIngress: chat-api}",
		objects: func(t *testing.T) []client.Object { return []client.Object{stableIngress()} },
		header:  canaryHeader,
		tamper: func(t *testing.T, c client.Client, ro *v1alpha1.Rollout) {
			var ing networkingv1.Ingress
			key := client.ObjectKey{Namespace: routerNS, Name: CanaryIngressName(ro.Name, "chat-api")}
			if err := c.Get(context.Background(), key, &ing); err != nil {
				t.Fatal(err)
			}
			ing.Annotations[nginxWeight] = "80"
			if err := c.Update(context.Background(), &ing); err != nil {
				t.Fatal(err)
			}
		},
	},
	{
		name:    "alb",
		routing: "        managedRoutes: [{name: testers}]\n        alb: {ingress: chat-api-alb, servicePort: 8080}",
		objects: func(t *testing.T) []client.Object { return []client.Object{albIngress()} },
		header: v1alpha1.SetHeaderRoute{Name: "testers", Match: []v1alpha1.HeaderMatch{
			{HeaderName: "x-version", HeaderValue: v1alpha1.StringMatch{Exact: "canary"}},
			{HeaderName: "x-user", HeaderValue: v1alpha1.StringMatch{Prefix: "tester-"}},
		}},
		tamper: func(t *testing.T, c client.Client, ro *v1alpha1.Rollout) {
			var ing networkingv1.Ingress
			if err := c.Get(context.Background(), client.ObjectKey{Namespace: routerNS, Name: "chat-api-alb"}, &ing); err != nil {
				t.Fatal(err)
			}
			ing.Annotations["alb.ingress.kubernetes.io/actions.chat-api"] = `{"type":"forward","forwardConfig":{"targetGroups":[{"serviceName":"chat-api","servicePort":8080,"weight":20},{"serviceName":"chat-api-canary","servicePort":8080,"weight":80}]}}`
			if err := c.Update(context.Background(), &ing); err != nil {
				t.Fatal(err)
			}
		},
	},
}

// writeCounter counts the writes made through it.
type writeCounter struct {
	client.Client
	writes int
}

func (w *writeCounter) Create(ctx context.Context, obj client.Object, opts ...client.CreateOption) error {
	w.writes++
	return w.Client.Create(ctx, obj, opts...)
}

func (w *writeCounter) Update(ctx context.Context, obj client.Object, opts ...client.UpdateOption) error {
	w.writes++
	return w.Client.Update(ctx, obj, opts...)
}

func (w *writeCounter) Patch(ctx context.Context, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
	w.writes++
	return w.Client.Patch(ctx, obj, patch, opts...)
}

func newFake(t *testing.T, objs ...client.Object) client.Client {
	return fake.NewClientBuilder().WithScheme(newScheme(t, thirdParty...)).WithObjects(objs...).Build()
}

// TestRouters runs every router through routerStory on the fake client.
func TestRouters(t *testing.T) {
	for _, tc := range routerCases {
		t.Run(tc.name, func(t *testing.T) {
			c := newFake(t, tc.objects(t)...)
			routerStory(t, c, tc, loadRollout(t, rolloutDoc(tc.routing)))
		})
	}
}

// routerStory takes one router through weights, header routes on and off, and a hand edit
// repaired, checking after each SetRoutes that ObservedRoutes reads back what was set.
func routerStory(t *testing.T, c client.Client, tc routerCase, ro *v1alpha1.Rollout) {
	ctx := context.Background()
	wc := &writeCounter{Client: c}
	r, err := NewRouter(tc.name, wc)
	if err != nil {
		t.Fatal(err)
	}
	if got := RouterName(ro); got != tc.name {
		t.Fatalf("RouterName = %q, want %q", got, tc.name)
	}
	set := func(want Routes) {
		t.Helper()
		if err := r.SetRoutes(ctx, ro, want); err != nil {
			t.Fatalf("SetRoutes(%+v): %v", want, err)
		}
		got, err := r.ObservedRoutes(ctx, ro)
		if err != nil {
			t.Fatalf("ObservedRoutes: %v", err)
		}
		if d := Drift(want, got); d != "" {
			t.Fatalf("read back after SetRoutes differs: %s", d)
		}
	}
	// again sets routes that are set already: nothing is written, or the controller, which
	// watches the routing objects, would wake itself up for ever.
	again := func(want Routes) {
		t.Helper()
		n := wc.writes
		set(want)
		if wc.writes != n {
			t.Errorf("SetRoutes(%+v) a second time wrote %d times; want no write", want, wc.writes-n)
		}
	}
	routes := chatRoutes
	for _, w := range []int32{0, 25, 100, 25} {
		set(routes(w))
		again(routes(w))
	}
	if err := r.SetRoutes(ctx, ro, routes(101)); err == nil {
		t.Errorf("SetRoutes with weight 101 succeeded")
	}

	if supportsHeaderRoutes(t, tc.name) {
		set(routes(25, tc.header))
		again(routes(25, tc.header))
		set(routes(100, tc.header))
		again(routes(100, tc.header))
		// A route without matches is a removed route.
		set(routes(25, v1alpha1.SetHeaderRoute{Name: tc.header.Name}))
		set(routes(25))
		if err := r.SetRoutes(ctx, ro, routes(25, v1alpha1.SetHeaderRoute{Name: "unmanaged", Match: canaryHeader.Match})); err == nil {
			t.Errorf("SetRoutes with a header route not in managedRoutes succeeded")
		}
	} else {
		err := r.SetRoutes(ctx, ro, routes(25, canaryHeader))
		if err == nil || !strings.Contains(err.Error(), "no header routes") {
			t.Errorf("SetRoutes with a header route: err = %v, want a refusal", err)
		}
	}

	mirrored := func(w int32, pct int32, hrs ...v1alpha1.SetHeaderRoute) Routes {
		r := routes(w, hrs...)
		r.MirrorPercent = pct
		return r
	}
	if canMirror(t, tc.name) {
		// Copies to the canary at weight 0, then beside a weight and a header route; gone at
		// promotion or abort, which leave the weights only.
		set(mirrored(0, 20))
		again(mirrored(0, 20))
		set(mirrored(25, 100, tc.header))
		again(mirrored(25, 100, tc.header))
		set(mirrored(25, 5))
		set(routes(0))
		again(routes(0))
		if err := r.SetRoutes(ctx, ro, mirrored(25, 101)); err == nil {
			t.Errorf("SetRoutes mirroring 101%% succeeded")
		}
		// Someone edits the mirror by hand: ramp sees it and sets it again.
		set(mirrored(25, 20))
		tc.tamperMirror(t, c, ro)
		got, err := r.ObservedRoutes(ctx, ro)
		if err != nil {
			t.Fatal(err)
		}
		if d := Drift(mirrored(25, 20), got); !strings.Contains(d, "mirror: want 20%, got 5") {
			t.Errorf("after a hand edit of the mirror Drift = %q, want a mirror difference", d)
		}
		set(mirrored(25, 20))
		set(routes(25))
	} else {
		err := r.SetRoutes(ctx, ro, mirrored(25, 10))
		if err == nil || !strings.Contains(err.Error(), "router cannot mirror requests") {
			t.Errorf("SetRoutes mirroring: err = %v, want a refusal", err)
		}
	}

	// Someone edits the weights by hand: ramp sees it and sets them again.
	want := routes(25)
	if supportsHeaderRoutes(t, tc.name) {
		want = routes(25, tc.header)
	}
	set(want)
	tc.tamper(t, c, ro)
	got, err := r.ObservedRoutes(ctx, ro)
	if err != nil {
		t.Fatal(err)
	}
	if d := Drift(want, got); !strings.Contains(d, "canaryWeight: want 25") {
		t.Errorf("after a hand edit Drift = %q, want a canaryWeight difference", d)
	}
	set(want)
}

// TestHeaderRouteSupportMatchesValidation: a router that cannot route by header is refused
// at validation, and one that can is accepted, so nothing is silently not done at run time.
func TestHeaderRouteSupportMatchesValidation(t *testing.T) {
	for _, tc := range routerCases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := NewRouter(tc.name, newFake(t)); err != nil {
				t.Fatal(err)
			}
			doc := strings.Replace(rolloutDoc(tc.routing), "steps: [{setWeight: 25}]",
				"steps: [{setHeaderRoute: {name: testers, match: [{headerName: x-version, headerValue: {exact: canary}}]}}]", 1)
			if !strings.Contains(tc.routing, "managedRoutes") {
				doc = strings.Replace(doc, "      trafficRouting:\n", "      trafficRouting:\n        managedRoutes: [{name: testers}]\n", 1)
			}
			_, err := spec.Load([]byte(doc))
			if supportsHeaderRoutes(t, tc.name) && err != nil {
				t.Errorf("router supports header routes but validation refuses: %v", err)
			}
			if !supportsHeaderRoutes(t, tc.name) && (err == nil || !strings.Contains(err.Error(), "setHeaderRoute")) {
				t.Errorf("router has no header routes but validation says %v", err)
			}
		})
	}
}

func TestNewRouterUnknown(t *testing.T) {
	_, err := NewRouter("linkerd", newFake(t))
	want := `traffic router "linkerd" is not one of ` + strings.Join(RouterNames(), ", ")
	if err == nil || err.Error() != want {
		t.Errorf("NewRouter(linkerd) err = %v, want %s", err, want)
	}
	for _, name := range []string{"gatewayAPI", "istio", "smi", "nginx", "alb"} {
		if !slices.Contains(RouterNames(), name) {
			t.Errorf("RouterNames() = %v, want %s among them", RouterNames(), name)
		}
	}
}

func TestDrift(t *testing.T) {
	base := Routes{StableService: "a", CanaryService: "b", CanaryWeight: 10}
	hr := func(name, header string, v v1alpha1.StringMatch) v1alpha1.SetHeaderRoute {
		return v1alpha1.SetHeaderRoute{Name: name, Match: []v1alpha1.HeaderMatch{{HeaderName: header, HeaderValue: v}}}
	}
	with := func(f func(r *Routes)) Routes { r := base; f(&r); return r }
	tests := []struct {
		name      string
		want, got Routes
		drift     string
	}{
		{"same", base, base, ""},
		{"weight", base, with(func(r *Routes) { r.CanaryWeight = 40 }), "canaryWeight: want 10, got 40"},
		{"service", base, with(func(r *Routes) { r.CanaryService = "c" }), `canaryService: want "b", got "c"`},
		{"mirror gone", with(func(r *Routes) { r.MirrorPercent = 20 }), base, "mirror: want 20%, got 0%"},
		{"header case does not matter",
			with(func(r *Routes) {
				r.HeaderRoutes = []v1alpha1.SetHeaderRoute{hr("t", "X-Version", v1alpha1.StringMatch{Exact: "canary"})}
			}),
			with(func(r *Routes) {
				r.HeaderRoutes = []v1alpha1.SetHeaderRoute{hr("t", "x-version", v1alpha1.StringMatch{Exact: "canary"})}
			}),
			""},
		{"removed route is no route",
			with(func(r *Routes) { r.HeaderRoutes = []v1alpha1.SetHeaderRoute{{Name: "t"}} }), base, ""},
		{"header route gone",
			with(func(r *Routes) {
				r.HeaderRoutes = []v1alpha1.SetHeaderRoute{hr("t", "x-v", v1alpha1.StringMatch{Regex: "^c"})}
			}),
			with(func(r *Routes) { r.CanaryWeight = 0 }),
			`canaryWeight: want 10, got 0; headerRoutes: want [t{x-v~"^c"}], got []`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Drift(tt.want, tt.got); got != tt.drift {
				t.Errorf("Drift = %q, want %q", got, tt.drift)
			}
		})
	}
}

// canMirror is what spec's description of router name says.
func canMirror(t *testing.T, name string) bool {
	t.Helper()
	d, ok := spec.LookupRouter(name)
	if !ok {
		t.Fatalf("spec describes no router %q", name)
	}
	return d.Mirror
}

// supportsHeaderRoutes is what spec's description of router name says.
func supportsHeaderRoutes(t *testing.T, name string) bool {
	t.Helper()
	d, ok := spec.LookupRouter(name)
	if !ok {
		t.Fatalf("spec describes no router %q", name)
	}
	return d.HeaderRoutes
}

// TestEveryDescribedRouterIsImplemented: spec.Routers and the implementations here name the
// same Kubernetes routers, every object a router reads has kinds to watch, and a router whose
// description says it exports request metrics is one whose metrics ramp reads.
func TestEveryDescribedRouterIsImplemented(t *testing.T) {
	var described []string
	for _, d := range spec.Routers() {
		if d.Name == spec.RouterProxy {
			continue // local mode's proxy, not a Kubernetes router
		}
		described = append(described, d.Name)
		for _, o := range d.Objects {
			if len(routedKinds[o.Kind]) == 0 {
				t.Errorf("router %s reads %s objects, which routedKinds has no versions of", d.Name, o.Kind)
			}
		}
		if d.Metrics != "" && !slices.Contains(trafficmetrics.Routers(), d.Metrics) {
			t.Errorf("router %s says its metrics are %q; trafficmetrics reads %v", d.Name, d.Metrics, trafficmetrics.Routers())
		}
	}
	slices.Sort(described)
	if !slices.Equal(described, RouterNames()) {
		t.Errorf("spec describes routers %v; implemented are %v", described, RouterNames())
	}
}
