package kube

import (
	"context"
	"reflect"
	"strings"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/yaml"

	"ramp.dev/ramp/api/v1alpha1"
)

// wantField checks that the field at path of the stored object equals the YAML value.
func wantField(t *testing.T, c client.Client, gvk schema.GroupVersionKind, name, wantYAML string, path ...string) {
	t.Helper()
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(gvk)
	if err := c.Get(context.Background(), client.ObjectKey{Namespace: routerNS, Name: name}, u); err != nil {
		t.Fatal(err)
	}
	got, _, _ := unstructured.NestedFieldNoCopy(u.Object, path...)
	var want any
	if err := yaml.Unmarshal([]byte(wantYAML), &want); err != nil {
		t.Fatal(err)
	}
	gj, _ := yaml.Marshal(got)
	wj, _ := yaml.Marshal(want)
	if string(gj) != string(wj) {
		t.Errorf("%s %s %s:\n%s\nwant:\n%s", gvk.Kind, name, strings.Join(path, "."), gj, wj)
	}
}

func chatRoutes(w int32, hrs ...v1alpha1.SetHeaderRoute) Routes {
	return Routes{StableService: "chat-api", CanaryService: "chat-api-canary", CanaryWeight: w, HeaderRoutes: hrs}
}

// TestIstioUserDocument: the header route and weights of the user's deployment document.
func TestIstioUserDocument(t *testing.T) {
	c := newFake(t, obj(t, `
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: {name: chat-api, namespace: carepath-demo}
spec:
  hosts: [chat-api]
  http:
  - route:
    - destination: {host: chat-api, port: {number: 8080}}
`))
	ro := loadRollout(t, rolloutDoc("        managedRoutes: [{name: x-version-canary}]\n        istio: {virtualService: {name: chat-api}}"))
	r := NewIstio(c)
	hr := v1alpha1.SetHeaderRoute{Name: "x-version-canary", Match: []v1alpha1.HeaderMatch{{HeaderName: "X-Version", HeaderValue: v1alpha1.StringMatch{Exact: "canary"}}}}
	if err := r.SetRoutes(context.Background(), ro, chatRoutes(10, hr)); err != nil {
		t.Fatal(err)
	}
	wantField(t, c, virtualServiceGVKs[0], "chat-api", `
- name: x-version-canary
  match: [{headers: {x-version: {exact: canary}}}]
  route: [{destination: {host: chat-api-canary, port: {number: 8080}}, weight: 100}]
- route:
  - destination: {host: chat-api, port: {number: 8080}}
    weight: 90
  - destination: {host: chat-api-canary, port: {number: 8080}}
    weight: 10
`, "spec", "http")

	if err := r.SetRoutes(context.Background(), ro, chatRoutes(0)); err != nil {
		t.Fatal(err)
	}
	wantField(t, c, virtualServiceGVKs[0], "chat-api", `
- route:
  - destination: {host: chat-api, port: {number: 8080}}
    weight: 100
  - destination: {host: chat-api-canary, port: {number: 8080}}
    weight: 0
`, "spec", "http")
}

func TestIstioRefuses(t *testing.T) {
	tests := []struct {
		name, routing, http, err string
	}{
		{"foreign destination", "istio: {virtualService: {name: chat-api}}",
			"[{route: [{destination: {host: chat-api}, weight: 50}, {destination: {host: billing}, weight: 50}]}]",
			`http[0].route[1]: host "billing" is neither the stable ("chat-api") nor the canary ("chat-api-canary") Service`},
		{"no stable destination", "istio: {virtualService: {name: chat-api}}",
			"[{route: [{destination: {host: chat-api-canary}}]}]",
			`http[0] has no destination to stable Service "chat-api"`},
		{"two routes, none named", "istio: {virtualService: {name: chat-api}}",
			"[{route: [{destination: {host: chat-api}}]}, {route: [{destination: {host: chat-api}}]}]",
			"has 2 http routes; name the ones to weigh in spec.strategy.canary.trafficRouting.istio.virtualService.routes"},
		{"named route missing", "istio: {virtualService: {name: chat-api, routes: [primary]}}",
			"[{name: other, route: [{destination: {host: chat-api}}]}]",
			`has no http route named "primary"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newFake(t, obj(t, "apiVersion: networking.istio.io/v1beta1\nkind: VirtualService\nmetadata: {name: chat-api, namespace: carepath-demo}\nspec: {http: "+tt.http+"}\n"))
			ro := loadRollout(t, rolloutDoc("        "+tt.routing))
			err := NewIstio(c).SetRoutes(context.Background(), ro, chatRoutes(10))
			want := "set routes on virtualservice carepath-demo/chat-api: " + tt.err
			if err == nil || err.Error() != want {
				t.Errorf("err = %v\nwant %s", err, want)
			}
		})
	}
}

// TestIstioV1Only: a cluster that serves VirtualService only at v1 works too. The fake client
// does not know served versions, so an interceptor answers v1beta1 as a real client's REST
// mapper does.
func TestIstioV1Only(t *testing.T) {
	v1 := virtualServiceGVKs[1]
	vs := obj(t, strings.Replace(virtualServiceYAML, "v1beta1", "v1", 1))
	noV1beta1 := func(obj client.Object) error {
		if gvk := obj.GetObjectKind().GroupVersionKind(); gvk == virtualServiceGVKs[0] {
			return &meta.NoKindMatchError{GroupKind: gvk.GroupKind(), SearchedVersions: []string{gvk.Version}}
		}
		return nil
	}
	c := fake.NewClientBuilder().WithScheme(newScheme(t, v1)).WithObjects(vs).WithInterceptorFuncs(interceptor.Funcs{
		Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			if err := noV1beta1(obj); err != nil {
				return err
			}
			return c.Get(ctx, key, obj, opts...)
		},
	}).Build()
	ro := loadRollout(t, rolloutDoc("        istio: {virtualService: {name: chat-api}}"))
	r := NewIstio(c)
	if err := r.SetRoutes(context.Background(), ro, chatRoutes(25)); err != nil {
		t.Fatal(err)
	}
	got, err := r.ObservedRoutes(context.Background(), ro)
	if err != nil {
		t.Fatal(err)
	}
	if d := Drift(chatRoutes(25), got); d != "" {
		t.Error(d)
	}
}

// TestGatewayAPIRules: the weighed rule gets the canary ref, the header rule goes ahead with
// the weighed rule's path, and rules for other Services stay as they were.
func TestGatewayAPIRules(t *testing.T) {
	c := newFake(t, obj(t, httpRouteYAML))
	ro := loadRollout(t, rolloutDoc("        managedRoutes: [{name: testers}]\n        gatewayAPI: {httpRoute: chat-api}"))
	r := NewGatewayAPI(c)
	hr := v1alpha1.SetHeaderRoute{Name: "testers", Match: []v1alpha1.HeaderMatch{
		{HeaderName: "x-version", HeaderValue: v1alpha1.StringMatch{Exact: "canary"}},
		{HeaderName: "x-user", HeaderValue: v1alpha1.StringMatch{Regex: "^tester-"}},
	}}
	if err := r.SetRoutes(context.Background(), ro, chatRoutes(25, hr)); err != nil {
		t.Fatal(err)
	}
	wantField(t, c, httpRouteGVK, "chat-api", `
- name: testers
  matches:
  - path: {type: PathPrefix, value: /v1/chat}
    headers:
    - {name: x-version, type: Exact, value: canary}
    - {name: x-user, type: RegularExpression, value: ^tester-}
  backendRefs: [{name: chat-api-canary, port: 8080, weight: 1}]
- matches: [{path: {type: PathPrefix, value: /v1/chat}}]
  backendRefs: [{name: chat-api, port: 8080, weight: 75}, {name: chat-api-canary, port: 8080, weight: 25}]
- matches: [{path: {type: PathPrefix, value: /admin}}]
  backendRefs: [{name: admin, port: 9090}]
`, "spec", "rules")

	// A weighed rule that also sends to another Service is refused.
	setUnstructured(t, c, httpRouteGVK, "chat-api", func(u *unstructured.Unstructured) {
		rules, _, _ := unstructured.NestedSlice(u.Object, "spec", "rules")
		asMap(rules[1])["backendRefs"] = append(asSlice(asMap(rules[1])["backendRefs"]), map[string]any{"name": "billing"})
		_ = unstructured.SetNestedSlice(u.Object, rules, "spec", "rules")
	})
	err := r.SetRoutes(context.Background(), ro, chatRoutes(25))
	if err == nil || !strings.Contains(err.Error(), `rules[1].backendRefs[2]: Service "billing" is neither`) {
		t.Errorf("err = %v, want a refusal of the billing backendRef", err)
	}
}

// TestSMITrafficSplit: ramp creates the TrafficSplit, owned by the rollout, and will not take
// over one that another controller owns.
func TestSMITrafficSplit(t *testing.T) {
	c := newFake(t)
	ro := loadRollout(t, rolloutDoc("        smi: {rootService: chat-api-root, trafficSplitName: chat-split}"))
	if err := NewSMI(c).SetRoutes(context.Background(), ro, chatRoutes(30)); err != nil {
		t.Fatal(err)
	}
	wantField(t, c, trafficSplitGVK, "chat-split", `
service: chat-api-root
backends: [{service: chat-api, weight: 70}, {service: chat-api-canary, weight: 30}]
`, "spec")
	wantField(t, c, trafficSplitGVK, "chat-split", `[{apiVersion: ramp.dev/v1alpha1, kind: Rollout, name: chat-api, uid: rollout-uid, controller: true, blockOwnerDeletion: true}]`, "metadata", "ownerReferences")

	other := ro.DeepCopy()
	other.Name, other.UID = "billing", "billing-uid"
	err := NewSMI(c).SetRoutes(context.Background(), other, chatRoutes(30))
	if err == nil || !strings.Contains(err.Error(), "chat-split is controlled by Rollout chat-api, not by this rollout") {
		t.Errorf("err = %v, want a refusal to take over", err)
	}
}

// TestNginxCanaryIngress: the canary Ingress carries only the stable Service's paths, sent to
// the canary Service, and the canary annotations follow the routes.
func TestNginxCanaryIngress(t *testing.T) {
	c := newFake(t, stableIngress())
	ro := loadRollout(t, rolloutDoc("        managedRoutes: [{name: testers}]\n        nginx: {stableIngress: chat-api}"))
	r := NewNginx(c)
	get := func() *networkingv1.Ingress {
		t.Helper()
		var ing networkingv1.Ingress
		if err := c.Get(context.Background(), client.ObjectKey{Namespace: routerNS, Name: "chat-api-chat-api-canary"}, &ing); err != nil {
			t.Fatal(err)
		}
		return &ing
	}
	regex := v1alpha1.SetHeaderRoute{Name: "testers", Match: []v1alpha1.HeaderMatch{{HeaderName: "X-User", HeaderValue: v1alpha1.StringMatch{Regex: "^tester-.*"}}}}
	if err := r.SetRoutes(context.Background(), ro, chatRoutes(25, regex)); err != nil {
		t.Fatal(err)
	}
	ing := get()
	wantAnn := map[string]string{
		nginxCanary: "true", nginxWeight: "25", nginxByHeader: "X-User", nginxByHeaderPattern: "^tester-.*",
		headerRouteAnnotation: "testers",
	}
	if !reflect.DeepEqual(ing.Annotations, wantAnn) {
		t.Errorf("annotations = %v, want %v", ing.Annotations, wantAnn)
	}
	paths := ing.Spec.Rules[0].HTTP.Paths
	if len(ing.Spec.Rules) != 1 || len(paths) != 1 || paths[0].Path != "/" || paths[0].Backend.Service.Name != "chat-api-canary" || *ing.Spec.IngressClassName != "nginx" {
		t.Errorf("canary ingress spec = %+v, want host chat.example.com, path / to chat-api-canary, class nginx", ing.Spec)
	}
	if !metav1.IsControlledBy(ing, ro) {
		t.Errorf("canary ingress is not controlled by the rollout: %v", ing.OwnerReferences)
	}

	// An annotation someone else put on the canary Ingress stays; the header route goes.
	ing.Annotations["team"] = "care"
	if err := c.Update(context.Background(), ing); err != nil {
		t.Fatal(err)
	}
	if err := r.SetRoutes(context.Background(), ro, chatRoutes(50)); err != nil {
		t.Fatal(err)
	}
	wantAnn = map[string]string{nginxCanary: "true", nginxWeight: "50", "team": "care"}
	if got := get().Annotations; !reflect.DeepEqual(got, wantAnn) {
		t.Errorf("annotations = %v, want %v", got, wantAnn)
	}

	two := chatRoutes(50, regex, v1alpha1.SetHeaderRoute{Name: "testers", Match: canaryHeader.Match})
	if err := r.SetRoutes(context.Background(), ro, two); err == nil || !strings.Contains(err.Error(), "2 header routes; nginx supports one") {
		t.Errorf("two header routes: err = %v", err)
	}
}

func mirroredRoutes(w, pct int32, hrs ...v1alpha1.SetHeaderRoute) Routes {
	r := chatRoutes(w, hrs...)
	r.MirrorPercent = pct
	return r
}

// TestIstioMirror: at a mirroring step the weighed route copies its requests to the canary
// destination, the header route does not; promotion or abort (no mirror) takes the copies
// away and leaves the route as it was. A mirror of the user's own stays and is not replaced.
func TestIstioMirror(t *testing.T) {
	c := newFake(t, obj(t, `
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: {name: chat-api, namespace: carepath-demo}
spec:
  hosts: [chat-api]
  http:
  - route:
    - destination: {host: chat-api, port: {number: 8080}}
`))
	ro := loadRollout(t, rolloutDoc("        managedRoutes: [{name: x-version-canary}]\n        istio: {virtualService: {name: chat-api}}"))
	r := NewIstio(c)
	hr := v1alpha1.SetHeaderRoute{Name: "x-version-canary", Match: []v1alpha1.HeaderMatch{{HeaderName: "X-Version", HeaderValue: v1alpha1.StringMatch{Exact: "canary"}}}}
	if err := r.SetRoutes(context.Background(), ro, mirroredRoutes(0, 20, hr)); err != nil {
		t.Fatal(err)
	}
	wantField(t, c, virtualServiceGVKs[0], "chat-api", `
- name: x-version-canary
  match: [{headers: {x-version: {exact: canary}}}]
  route: [{destination: {host: chat-api-canary, port: {number: 8080}}, weight: 100}]
- route:
  - destination: {host: chat-api, port: {number: 8080}}
    weight: 100
  - destination: {host: chat-api-canary, port: {number: 8080}}
    weight: 0
  mirror: {host: chat-api-canary, port: {number: 8080}}
  mirrorPercentage: {value: 20}
`, "spec", "http")

	// Promoted: all traffic on the (new) stable Service, no copies.
	if err := r.SetRoutes(context.Background(), ro, chatRoutes(0)); err != nil {
		t.Fatal(err)
	}
	wantField(t, c, virtualServiceGVKs[0], "chat-api", `
- route:
  - destination: {host: chat-api, port: {number: 8080}}
    weight: 100
  - destination: {host: chat-api-canary, port: {number: 8080}}
    weight: 0
`, "spec", "http")

	// The user's own mirror: kept when ramp mirrors nothing, and not replaced.
	setUnstructured(t, c, virtualServiceGVKs[0], "chat-api", func(u *unstructured.Unstructured) {
		http, _, _ := unstructured.NestedSlice(u.Object, "spec", "http")
		asMap(http[0])["mirror"] = map[string]any{"host": "chat-api-shadow"}
		_ = unstructured.SetNestedSlice(u.Object, http, "spec", "http")
	})
	if err := r.SetRoutes(context.Background(), ro, chatRoutes(10)); err != nil {
		t.Fatal(err)
	}
	wantField(t, c, virtualServiceGVKs[0], "chat-api", `
- route:
  - destination: {host: chat-api, port: {number: 8080}}
    weight: 90
  - destination: {host: chat-api-canary, port: {number: 8080}}
    weight: 10
  mirror: {host: chat-api-shadow}
`, "spec", "http")
	err := r.SetRoutes(context.Background(), ro, mirroredRoutes(10, 20))
	want := `set routes on virtualservice carepath-demo/chat-api: http[0] has a mirror of its own; ramp mirrors to canary Service "chat-api-canary" only on a route without mirror or mirrors`
	if err == nil || err.Error() != want {
		t.Errorf("err = %v\nwant %s", err, want)
	}
	got, err := r.ObservedRoutes(context.Background(), ro)
	if err != nil || got.MirrorPercent != 0 {
		t.Errorf("ObservedRoutes = %+v, %v; want no mirror to the canary", got, err)
	}
}

// TestGatewayAPIMirror: at a mirroring step the weighed rule gets a RequestMirror filter to
// the canary Service beside its own filters; the header rule and the other Service's rule get
// none; promotion or abort (no mirror) takes it away and leaves the rule's own filters.
func TestGatewayAPIMirror(t *testing.T) {
	c := newFake(t, obj(t, `
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: chat-api, namespace: carepath-demo}
spec:
  parentRefs: [{name: public}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /v1/chat}}]
    filters: [{type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: x-env, value: prod}]}}]
    backendRefs: [{name: chat-api, port: 8080}]
  - matches: [{path: {type: PathPrefix, value: /admin}}]
    backendRefs: [{name: admin, port: 9090}]
`))
	ro := loadRollout(t, rolloutDoc("        managedRoutes: [{name: testers}]\n        gatewayAPI: {httpRoute: chat-api}"))
	r := NewGatewayAPI(c)
	hr := v1alpha1.SetHeaderRoute{Name: "testers", Match: []v1alpha1.HeaderMatch{{HeaderName: "x-version", HeaderValue: v1alpha1.StringMatch{Exact: "canary"}}}}
	if err := r.SetRoutes(context.Background(), ro, mirroredRoutes(10, 20, hr)); err != nil {
		t.Fatal(err)
	}
	wantField(t, c, httpRouteGVK, "chat-api", `
- name: testers
  matches:
  - path: {type: PathPrefix, value: /v1/chat}
    headers: [{name: x-version, type: Exact, value: canary}]
  backendRefs: [{name: chat-api-canary, port: 8080, weight: 1}]
- matches: [{path: {type: PathPrefix, value: /v1/chat}}]
  filters:
  - {type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: x-env, value: prod}]}}
  - {type: RequestMirror, requestMirror: {backendRef: {name: chat-api-canary, port: 8080}, percent: 20}}
  backendRefs: [{name: chat-api, port: 8080, weight: 90}, {name: chat-api-canary, port: 8080, weight: 10}]
- matches: [{path: {type: PathPrefix, value: /admin}}]
  backendRefs: [{name: admin, port: 9090}]
`, "spec", "rules")

	// A fraction set by hand becomes ramp's percent again.
	setUnstructured(t, c, httpRouteGVK, "chat-api", func(u *unstructured.Unstructured) {
		rules, _, _ := unstructured.NestedSlice(u.Object, "spec", "rules")
		rm := asMap(asMap(asSlice(asMap(rules[1])["filters"])[1])["requestMirror"])
		delete(rm, "percent")
		rm["fraction"] = map[string]any{"numerator": int64(1), "denominator": int64(4)}
		_ = unstructured.SetNestedSlice(u.Object, rules, "spec", "rules")
	})
	if got, err := r.ObservedRoutes(context.Background(), ro); err != nil || got.MirrorPercent != 25 {
		t.Errorf("ObservedRoutes = %+v, %v; want a 25%% mirror", got, err)
	}
	if err := r.SetRoutes(context.Background(), ro, mirroredRoutes(10, 20)); err != nil {
		t.Fatal(err)
	}
	wantField(t, c, httpRouteGVK, "chat-api", `
- matches: [{path: {type: PathPrefix, value: /v1/chat}}]
  filters:
  - {type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: x-env, value: prod}]}}
  - {type: RequestMirror, requestMirror: {backendRef: {name: chat-api-canary, port: 8080}, percent: 20}}
  backendRefs: [{name: chat-api, port: 8080, weight: 90}, {name: chat-api-canary, port: 8080, weight: 10}]
- matches: [{path: {type: PathPrefix, value: /admin}}]
  backendRefs: [{name: admin, port: 9090}]
`, "spec", "rules")

	// Aborted: all traffic to stable, no copies; the rule's own filter stays.
	if err := r.SetRoutes(context.Background(), ro, chatRoutes(0)); err != nil {
		t.Fatal(err)
	}
	wantField(t, c, httpRouteGVK, "chat-api", `
- matches: [{path: {type: PathPrefix, value: /v1/chat}}]
  filters: [{type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: x-env, value: prod}]}}]
  backendRefs: [{name: chat-api, port: 8080, weight: 100}, {name: chat-api-canary, port: 8080, weight: 0}]
- matches: [{path: {type: PathPrefix, value: /admin}}]
  backendRefs: [{name: admin, port: 9090}]
`, "spec", "rules")
}

// TestGatewayAPIMirrorPercentDropped: an HTTPRoute CRD older than Gateway API v1.3 prunes
// requestMirror.percent, which would mirror every request; SetRoutes says so.
func TestGatewayAPIMirrorPercentDropped(t *testing.T) {
	prune := func(obj client.Object) {
		u, ok := obj.(*unstructured.Unstructured)
		if !ok {
			return
		}
		rules, _, _ := unstructured.NestedSlice(u.Object, "spec", "rules")
		for _, r := range rules {
			for _, f := range asSlice(asMap(r)["filters"]) {
				delete(asMap(asMap(f)["requestMirror"]), "percent")
			}
		}
		_ = unstructured.SetNestedSlice(u.Object, rules, "spec", "rules")
	}
	c := fake.NewClientBuilder().WithScheme(newScheme(t, thirdParty...)).WithObjects(obj(t, httpRouteYAML)).WithInterceptorFuncs(interceptor.Funcs{
		Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
			prune(obj)
			return c.Update(ctx, obj, opts...)
		},
	}).Build()
	ro := loadRollout(t, rolloutDoc("        gatewayAPI: {httpRoute: chat-api}"))
	err := NewGatewayAPI(c).SetRoutes(context.Background(), ro, mirroredRoutes(10, 20))
	want := "set routes on httproute carepath-demo/chat-api: rules[0] mirrors 100% to the canary as stored, not 20%; the installed HTTPRoute CRD must have requestMirror.percent (Gateway API v1.3 or later)"
	if err == nil || err.Error() != want {
		t.Errorf("err = %v\nwant %s", err, want)
	}
	// Mirroring every request is what the old CRD can do.
	if err := NewGatewayAPI(c).SetRoutes(context.Background(), ro, mirroredRoutes(10, 100)); err != nil {
		t.Errorf("mirror 100%%: %v", err)
	}
}
