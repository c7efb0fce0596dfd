package kube

import (
	"context"
	"maps"
	"strconv"
	"strings"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"ramp.dev/ramp/api/v1alpha1"
)

const albRouting = "        managedRoutes: [{name: testers}]\n        alb: {ingress: chat-api-alb, servicePort: 8080}"

// albForward is the action annotation ramp writes for these weights.
func albForward(stable, canary int) string {
	return `{"type":"forward","forwardConfig":{"targetGroups":[` +
		`{"serviceName":"chat-api","servicePort":8080,"weight":` + strconv.Itoa(stable) + `},` +
		`{"serviceName":"chat-api-canary","servicePort":8080,"weight":` + strconv.Itoa(canary) + `}]}}`
}

func getIngress(t *testing.T, c client.Client, name string) *networkingv1.Ingress {
	t.Helper()
	var ing networkingv1.Ingress
	if err := c.Get(context.Background(), client.ObjectKey{Namespace: routerNS, Name: name}, &ing); err != nil {
		t.Fatal(err)
	}
	return &ing
}

// wantPaths checks the Ingress's paths, as "path -> service:port".
func wantPaths(t *testing.T, ing *networkingv1.Ingress, want ...string) {
	t.Helper()
	var got []string
	for _, r := range ing.Spec.Rules {
		for _, p := range r.HTTP.Paths {
			port := p.Backend.Service.Port.Name
			if port == "" {
				port = strconv.Itoa(int(p.Backend.Service.Port.Number))
			}
			got = append(got, p.Path+" -> "+p.Backend.Service.Name+":"+port)
		}
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("paths:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestALBAnnotationsThroughACanary: the Ingress's annotations and paths, exactly, at each
// step of a canary (5%, a header route, 50%, 100%) and after the abort (0%, the header route
// gone); the team's own annotation and admin path are never touched.
func TestALBAnnotationsThroughACanary(t *testing.T) {
	ctx := context.Background()
	c := newFake(t, albIngress())
	ro := loadRollout(t, rolloutDoc(albRouting))
	r := NewALB(c)
	testers := v1alpha1.SetHeaderRoute{Name: "testers", Match: []v1alpha1.HeaderMatch{
		{HeaderName: "X-Version", HeaderValue: v1alpha1.StringMatch{Exact: "canary"}},
		{HeaderName: "x-user", HeaderValue: v1alpha1.StringMatch{Prefix: "tester-"}},
	}}
	const (
		scheme     = "alb.ingress.kubernetes.io/scheme"
		rootAction = "alb.ingress.kubernetes.io/actions.chat-api"
		hrAction   = "alb.ingress.kubernetes.io/actions.testers"
		hrConds    = "alb.ingress.kubernetes.io/conditions.testers"
	)
	rootPaths := []string{"/ -> chat-api:use-annotation", "/admin -> admin:9090"}
	headerPaths := []string{"/ -> testers:use-annotation", "/ -> chat-api:use-annotation", "/admin -> admin:9090"}
	steps := []struct {
		name   string
		routes Routes
		ann    map[string]string
		paths  []string
	}{
		{"setWeight 5", chatRoutes(5), map[string]string{scheme: "internet-facing", rootAction: albForward(95, 5)}, rootPaths},
		{"setHeaderRoute", chatRoutes(5, testers), map[string]string{
			scheme: "internet-facing", rootAction: albForward(95, 5),
			hrAction: `{"type":"forward","forwardConfig":{"targetGroups":[{"serviceName":"chat-api-canary","servicePort":8080,"weight":100}]}}`,
			hrConds:  `[{"field":"http-header","httpHeaderConfig":{"httpHeaderName":"X-Version","values":["canary"]}},{"field":"http-header","httpHeaderConfig":{"httpHeaderName":"x-user","values":["tester-*"]}}]`,
		}, headerPaths},
		{"setWeight 50", chatRoutes(50, testers), map[string]string{
			scheme: "internet-facing", rootAction: albForward(50, 50),
			hrAction: `{"type":"forward","forwardConfig":{"targetGroups":[{"serviceName":"chat-api-canary","servicePort":8080,"weight":100}]}}`,
			hrConds:  `[{"field":"http-header","httpHeaderConfig":{"httpHeaderName":"X-Version","values":["canary"]}},{"field":"http-header","httpHeaderConfig":{"httpHeaderName":"x-user","values":["tester-*"]}}]`,
		}, headerPaths},
		{"setWeight 100", chatRoutes(100), map[string]string{scheme: "internet-facing", rootAction: albForward(0, 100)}, rootPaths},
		{"abort", chatRoutes(0), map[string]string{scheme: "internet-facing", rootAction: albForward(100, 0)}, rootPaths},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			if err := r.SetRoutes(ctx, ro, st.routes); err != nil {
				t.Fatal(err)
			}
			ing := getIngress(t, c, "chat-api-alb")
			if !maps.Equal(ing.Annotations, st.ann) {
				b, _ := yaml.Marshal(ing.Annotations)
				w, _ := yaml.Marshal(st.ann)
				t.Errorf("annotations:\n%s\nwant:\n%s", b, w)
			}
			wantPaths(t, ing, st.paths...)
			got, err := r.ObservedRoutes(ctx, ro)
			if err != nil {
				t.Fatal(err)
			}
			if d := Drift(st.routes, got); d != "" {
				t.Errorf("read back: %s", d)
			}
		})
	}
}

// TestALBDriftRepaired: a hand edit of the action annotation, or of the header route's
// conditions, is what ObservedRoutes reports, and the next SetRoutes writes ramp's annotations
// back exactly.
func TestALBDriftRepaired(t *testing.T) {
	ctx := context.Background()
	hr := v1alpha1.SetHeaderRoute{Name: "testers", Match: []v1alpha1.HeaderMatch{{HeaderName: "x-version", HeaderValue: v1alpha1.StringMatch{Exact: "canary"}}}}
	tests := []struct {
		name  string
		edit  func(ing *networkingv1.Ingress)
		drift string
	}{
		{"weights edited", func(ing *networkingv1.Ingress) {
			ing.Annotations["alb.ingress.kubernetes.io/actions.chat-api"] = `{"type":"forward","forwardConfig":{"targetGroups":[{"serviceName":"chat-api","servicePort":8080,"weight":1},{"serviceName":"chat-api-canary","servicePort":"8080","weight":3}]}}`
		}, "canaryWeight: want 10, got 75"},
		{"canary dropped from the action", func(ing *networkingv1.Ingress) {
			ing.Annotations["alb.ingress.kubernetes.io/actions.chat-api"] = `{"type":"forward","forwardConfig":{"targetGroups":[{"serviceName":"chat-api","servicePort":8080}]}}`
		}, `canaryService: want "chat-api-canary", got ""; canaryWeight: want 10, got 0`},
		{"backend set back to the Service", func(ing *networkingv1.Ingress) {
			for _, p := range ing.Spec.Rules[0].HTTP.Paths {
				if p.Backend.Service.Name == "chat-api" {
					p.Backend.Service.Port = networkingv1.ServiceBackendPort{Number: 8080}
				}
			}
		}, "canaryWeight: want 10, got 0"},
		{"header condition edited", func(ing *networkingv1.Ingress) {
			ing.Annotations["alb.ingress.kubernetes.io/conditions.testers"] = `[{"field":"http-header","httpHeaderConfig":{"httpHeaderName":"x-version","values":["canary","beta"]}}]`
		}, `headerRoutes: want [testers{x-version="canary"}], got [testers{x-version="canary,beta"}]`},
		{"header conditions removed", func(ing *networkingv1.Ingress) {
			delete(ing.Annotations, "alb.ingress.kubernetes.io/conditions.testers")
		}, `canaryWeight: want 10, got 100; headerRoutes: want [testers{x-version="canary"}], got []`},
		{"header path removed", func(ing *networkingv1.Ingress) {
			ing.Spec.Rules[0].HTTP.Paths = ing.Spec.Rules[0].HTTP.Paths[1:]
		}, `headerRoutes: want [testers{x-version="canary"}], got []`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newFake(t, albIngress())
			ro := loadRollout(t, rolloutDoc(albRouting))
			r := NewALB(c)
			want := chatRoutes(10, hr)
			if err := r.SetRoutes(ctx, ro, want); err != nil {
				t.Fatal(err)
			}
			set := getIngress(t, c, "chat-api-alb")

			ing := set.DeepCopy()
			tt.edit(ing)
			if err := c.Update(ctx, ing); err != nil {
				t.Fatal(err)
			}
			got, err := r.ObservedRoutes(ctx, ro)
			if err != nil {
				t.Fatal(err)
			}
			if d := Drift(want, got); d != tt.drift {
				t.Errorf("Drift = %q\nwant    %q", d, tt.drift)
			}

			if err := r.SetRoutes(ctx, ro, want); err != nil {
				t.Fatal(err)
			}
			repaired := getIngress(t, c, "chat-api-alb")
			if !maps.Equal(repaired.Annotations, set.Annotations) {
				t.Errorf("annotations after repair:\n%v\nwant:\n%v", repaired.Annotations, set.Annotations)
			}
			b1, _ := yaml.Marshal(repaired.Spec)
			b2, _ := yaml.Marshal(set.Spec)
			if string(b1) != string(b2) {
				t.Errorf("spec after repair:\n%s\nwant:\n%s", b1, b2)
			}
		})
	}
}

// TestALBRefuses: what the Ingress or the routes cannot carry is an error naming it.
func TestALBRefuses(t *testing.T) {
	ctx := context.Background()
	regex := v1alpha1.SetHeaderRoute{Name: "testers", Match: []v1alpha1.HeaderMatch{{HeaderName: "x-version", HeaderValue: v1alpha1.StringMatch{Regex: "^c"}}}}
	tests := []struct {
		name    string
		routing string
		routes  Routes
		err     string
	}{
		{"no path to the root service", "        alb: {ingress: chat-api-alb, servicePort: 8080, rootService: chat-api-root}", chatRoutes(5),
			`set routes on ingress carepath-demo/chat-api-alb: no rule path of ingress chat-api-alb has backend Service "chat-api-root" (the rollout's alb rootService, default stableService)`},
		{"missing ingress", "        alb: {ingress: elsewhere, servicePort: 8080}", chatRoutes(5),
			`set routes on ingress carepath-demo/elsewhere: ingresses.networking.k8s.io "elsewhere" not found`},
		{"regex", albRouting, chatRoutes(5, regex),
			`set routes on ingress carepath-demo/chat-api-alb: header route "testers": alb cannot match header x-version by regex`},
		{"unmanaged route", albRouting, chatRoutes(5, v1alpha1.SetHeaderRoute{Name: "beta", Match: canaryHeader.Match}),
			`set routes on ingress carepath-demo/chat-api-alb: header route "beta" is not in trafficRouting.managedRoutes`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newFake(t, albIngress())
			before := getIngress(t, c, "chat-api-alb")
			err := NewALB(c).SetRoutes(ctx, loadRollout(t, rolloutDoc(tt.routing)), tt.routes)
			if err == nil || err.Error() != tt.err {
				t.Errorf("err = %v\nwant %s", err, tt.err)
			}
			if after := getIngress(t, c, "chat-api-alb"); after.ResourceVersion != before.ResourceVersion {
				t.Errorf("the Ingress was written")
			}
		})
	}
}

// TestALBRootService: with rootService and another annotation prefix, the action is named after
// the root Service and written under that prefix; the stable Service's own paths stay as they are.
func TestALBRootService(t *testing.T) {
	ctx := context.Background()
	ing := albIngress()
	p := ing.Spec.Rules[0].HTTP.Paths[0]
	p.Path = "/v1"
	p.Backend.Service = &networkingv1.IngressServiceBackend{Name: "chat-api-root", Port: networkingv1.ServiceBackendPort{Name: "use-annotation"}}
	ing.Spec.Rules[0].HTTP.Paths = append(ing.Spec.Rules[0].HTTP.Paths, p)
	c := newFake(t, ing)
	ro := loadRollout(t, rolloutDoc("        alb: {ingress: chat-api-alb, servicePort: 8080, rootService: chat-api-root, annotationPrefix: alb.example.com}"))
	if err := NewALB(c).SetRoutes(ctx, ro, chatRoutes(30)); err != nil {
		t.Fatal(err)
	}
	got := getIngress(t, c, "chat-api-alb")
	if a := got.Annotations["alb.example.com/actions.chat-api-root"]; a != albForward(70, 30) {
		t.Errorf("action = %s\nwant %s", a, albForward(70, 30))
	}
	if len(got.Annotations) != 2 {
		t.Errorf("annotations %v; want the team's and the action", got.Annotations)
	}
	wantPaths(t, got, "/ -> chat-api:8080", "/admin -> admin:9090", "/v1 -> chat-api-root:use-annotation")
	obs, err := NewALB(c).ObservedRoutes(ctx, ro)
	if err != nil {
		t.Fatal(err)
	}
	if d := Drift(chatRoutes(30), obs); d != "" {
		t.Errorf("read back: %s", d)
	}
}
