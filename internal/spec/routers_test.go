package spec

import (
	"fmt"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"ramp.dev/ramp/api/v1alpha1"
)

// routedRollout is a valid canary rollout whose traffic router is name.
func routedRollout(t *testing.T, name string) *v1alpha1.Rollout {
	t.Helper()
	ro := &v1alpha1.Rollout{ObjectMeta: metav1.ObjectMeta{Name: "chat-api"}}
	c := &v1alpha1.CanaryStrategy{
		TrafficRouting: &v1alpha1.TrafficRouting{ManagedRoutes: []v1alpha1.ManagedRoute{{Name: "testers"}}},
		Steps:          []v1alpha1.CanaryStep{{SetWeight: ptr(int32(25))}},
	}
	ro.Spec.Strategy.Canary = c
	kube := func() {
		ro.Spec.WorkloadRef = &v1alpha1.WorkloadRef{Name: "chat-api"}
		c.StableService, c.CanaryService = "chat-api", "chat-api-canary"
	}
	tr := c.TrafficRouting
	switch name {
	case RouterGatewayAPI:
		kube()
		tr.GatewayAPI = &v1alpha1.GatewayAPITrafficRouting{HTTPRoute: "chat-api"}
	case RouterIstio:
		kube()
		tr.Istio = &v1alpha1.IstioTrafficRouting{VirtualService: v1alpha1.IstioVirtualService{Name: "chat-api"}}
	case RouterSMI:
		kube()
		tr.SMI = &v1alpha1.SMITrafficRouting{}
	case RouterNginx:
		kube()
		tr.Nginx = &v1alpha1.NginxTrafficRouting{StableIngress: "chat-api"}
	case RouterALB:
		kube()
		tr.ALB = &v1alpha1.ALBTrafficRouting{Ingress: "chat-api", ServicePort: 8080}
	case RouterService:
		kube()
	case RouterProxy:
		ro.Spec.Template.Process = &v1alpha1.ProcessTemplate{Command: "chat-api"}
	default:
		t.Fatalf("no test rollout for router %q: add one", name)
	}
	if got := RouterOf(ro).Name; got != name {
		t.Fatalf("RouterOf(rollout for %s) = %s", name, got)
	}
	if errs := ValidateRollout(ro); len(errs) > 0 {
		t.Fatalf("rollout for %s is invalid: %v", name, errs)
	}
	return ro
}

func headerStep(matches ...v1alpha1.HeaderMatch) v1alpha1.CanaryStep {
	return v1alpha1.CanaryStep{SetHeaderRoute: &v1alpha1.SetHeaderRoute{Name: "testers", Match: matches}}
}

var exactMatch = v1alpha1.HeaderMatch{HeaderName: "x-version", HeaderValue: v1alpha1.StringMatch{Exact: "canary"}}

// TestRouterCapabilitiesDriveValidation: for every router and every thing a router may or may
// not do, a rollout that asks for it is refused at the field's path exactly when the router's
// description says it cannot.
func TestRouterCapabilitiesDriveValidation(t *testing.T) {
	features := []struct {
		name string
		can  func(r Router) bool
		ask  func(c *v1alpha1.CanaryStrategy)
		path string
	}{
		{"header routes", func(r Router) bool { return r.HeaderRoutes },
			func(c *v1alpha1.CanaryStrategy) { c.Steps = append(c.Steps, headerStep(exactMatch)) },
			"spec.strategy.canary.steps[1].setHeaderRoute"},
		{"prefix match", func(r Router) bool { return !r.HeaderRoutes || r.PrefixMatch },
			func(c *v1alpha1.CanaryStrategy) {
				c.Steps = append(c.Steps, headerStep(v1alpha1.HeaderMatch{HeaderName: "x-version", HeaderValue: v1alpha1.StringMatch{Prefix: "can"}}))
			},
			"spec.strategy.canary.steps[1].setHeaderRoute.match[0].headerValue.prefix"},
		{"regex match", func(r Router) bool { return !r.HeaderRoutes || r.RegexMatch },
			func(c *v1alpha1.CanaryStrategy) {
				c.Steps = append(c.Steps, headerStep(v1alpha1.HeaderMatch{HeaderName: "x-version", HeaderValue: v1alpha1.StringMatch{Regex: "^can"}}))
			},
			"spec.strategy.canary.steps[1].setHeaderRoute.match[0].headerValue.regex"},
		{"two headers", func(r Router) bool { return !r.HeaderRoutes || r.MaxHeaderMatches == 0 || r.MaxHeaderMatches >= 2 },
			func(c *v1alpha1.CanaryStrategy) {
				c.Steps = append(c.Steps, headerStep(exactMatch, v1alpha1.HeaderMatch{HeaderName: "x-b", HeaderValue: v1alpha1.StringMatch{Exact: "1"}}))
			},
			"spec.strategy.canary.steps[1].setHeaderRoute.match"},
		{"cookie match", func(r Router) bool { return !r.HeaderRoutes || r.CookieMatch },
			func(c *v1alpha1.CanaryStrategy) {
				st := headerStep(exactMatch)
				st.SetHeaderRoute.CookieMatch = []v1alpha1.CookieMatch{{CookieName: "beta", CookieValue: v1alpha1.StringMatch{Exact: "yes"}}}
				c.Steps = append(c.Steps, st)
			},
			"spec.strategy.canary.steps[1].setHeaderRoute.cookieMatch"},
		{"two managed routes", func(r Router) bool { return r.MaxManagedRoutes == 0 || r.MaxManagedRoutes >= 2 },
			func(c *v1alpha1.CanaryStrategy) {
				c.TrafficRouting.ManagedRoutes = append(c.TrafficRouting.ManagedRoutes, v1alpha1.ManagedRoute{Name: "beta"})
			},
			"spec.strategy.canary.trafficRouting.managedRoutes"},
		{"mirror", func(r Router) bool { return r.Mirror },
			func(c *v1alpha1.CanaryStrategy) { c.Mirror = &v1alpha1.CanaryMirror{Percentage: 10} },
			"spec.strategy.canary.mirror"},
		{"stickiness", func(r Router) bool { return r.Stickiness },
			func(c *v1alpha1.CanaryStrategy) {
				c.Stickiness = &v1alpha1.Stickiness{Header: &v1alpha1.StickyHeader{Name: "x-user-id"}}
			},
			"spec.strategy.canary.stickiness"},
	}
	if len(Routers()) < 7 {
		t.Fatalf("Routers() = %d routers, want the five trafficRouting routers, service and proxy", len(Routers()))
	}
	for _, r := range Routers() {
		for _, f := range features {
			t.Run(r.Name+"/"+f.name, func(t *testing.T) {
				ro := routedRollout(t, r.Name)
				f.ask(ro.Spec.Strategy.Canary)
				var at []string
				refused := false
				for _, e := range ValidateRollout(ro) {
					at = append(at, e.Error())
					if e.Path != f.path {
						continue
					}
					refused = true
					if !strings.Contains(e.Error(), r.Name) {
						t.Errorf("%q does not name the router %s", e.Error(), r.Name)
					}
				}
				if want := !f.can(r); refused != want {
					t.Errorf("refused at %s: %v, want %v (errors: %q)", f.path, refused, want, at)
				}
			})
		}
	}
}

// TestRouterDescriptions: every router is found by its name, and a picked router's objects
// have names.
func TestRouterDescriptions(t *testing.T) {
	for _, r := range Routers() {
		got, ok := LookupRouter(r.Name)
		if !ok || got.Name != r.Name || r.Title == "" {
			t.Errorf("LookupRouter(%q) = %+v, %v", r.Name, got, ok)
		}
		ro := routedRollout(t, r.Name)
		for _, o := range r.Objects {
			if o.Kind == "" || o.Name(ro) == "" {
				t.Errorf("router %s: object %+v has no kind or name", r.Name, o)
			}
		}
	}
	if _, ok := LookupRouter("linkerd"); ok {
		t.Error("LookupRouter(linkerd) found a router")
	}
}

// TestMirrorAndStickinessByRouter: canary.mirror is carried out by Istio and Gateway API in
// Kubernetes mode (and local mode's proxy) and refused, at its path, by the other routers;
// canary.stickiness is refused by every Kubernetes router, with the reason.
func TestMirrorAndStickinessByRouter(t *testing.T) {
	const (
		noMirror = "spec.strategy.canary.mirror: cannot be done by the %s router, which cannot mirror requests; only gatewayAPI, istio or proxy can"
		noSticky = "spec.strategy.canary.stickiness: cannot be done by the %s router, which %s; only proxy can"
	)
	tests := []struct {
		router         string
		mirror, sticky string // the error; "" when accepted
	}{
		{RouterIstio, "", fmt.Sprintf(noSticky, "istio", "weighs each request on its own: a DestinationRule's consistentHash keeps a user on one pod of a Service, not on one revision")},
		{RouterGatewayAPI, "", fmt.Sprintf(noSticky, "gatewayAPI", "weighs each request on its own: an HTTPRoute's sessionPersistence, which could keep a user on one backend, is in Gateway API's experimental channel only")},
		{RouterSMI, fmt.Sprintf(noMirror, "smi"), fmt.Sprintf(noSticky, "smi", "cannot keep users on one revision")},
		{RouterNginx, fmt.Sprintf(noMirror, "nginx"), fmt.Sprintf(noSticky, "nginx", "cannot keep users on one revision")},
		{RouterALB, fmt.Sprintf(noMirror, "alb"), fmt.Sprintf(noSticky, "alb", "cannot keep users on one revision")},
		{RouterService, fmt.Sprintf(noMirror, "service (plain Service selectors)"), fmt.Sprintf(noSticky, "service (plain Service selectors)", "cannot keep users on one revision")},
		{RouterProxy, "", ""},
	}
	check := func(t *testing.T, ro *v1alpha1.Rollout, want string) {
		t.Helper()
		var got []string
		for _, e := range ValidateRollout(ro) {
			got = append(got, e.Error())
		}
		switch {
		case want == "" && len(got) > 0:
			t.Errorf("refused: %q; want accepted", got)
		case want != "" && (len(got) != 1 || got[0] != want):
			t.Errorf("errors %q\nwant [%q]", got, want)
		}
	}
	for _, tt := range tests {
		t.Run(tt.router+"/mirror", func(t *testing.T) {
			ro := routedRollout(t, tt.router)
			ro.Spec.Strategy.Canary.Mirror = &v1alpha1.CanaryMirror{Percentage: 10}
			check(t, ro, tt.mirror)
		})
		t.Run(tt.router+"/stickiness", func(t *testing.T) {
			ro := routedRollout(t, tt.router)
			ro.Spec.Strategy.Canary.Stickiness = &v1alpha1.Stickiness{Cookie: &v1alpha1.StickyCookie{Name: "ramp-bucket"}}
			check(t, ro, tt.sticky)
		})
	}
}

// TestMirrorLimitsAreLocalModes: maxConcurrent and maxBodyBytes limit the proxy's copies;
// Istio and Gateway API copy without them, so they are refused there.
func TestMirrorLimitsAreLocalModes(t *testing.T) {
	for _, name := range []string{RouterIstio, RouterGatewayAPI, RouterProxy} {
		t.Run(name, func(t *testing.T) {
			ro := routedRollout(t, name)
			ro.Spec.Strategy.Canary.Mirror = &v1alpha1.CanaryMirror{Percentage: 10, MaxConcurrent: 4, MaxBodyBytes: 1024}
			var got []string
			for _, e := range ValidateRollout(ro) {
				got = append(got, e.Error())
			}
			var want []string
			if name != RouterProxy {
				want = []string{
					fmt.Sprintf("spec.strategy.canary.mirror.maxConcurrent: 4 cannot be done by the %s router, which does not limit the copies in flight; leave it out", name),
					fmt.Sprintf("spec.strategy.canary.mirror.maxBodyBytes: 1024 cannot be done by the %s router, which copies every body; leave it out", name),
				}
			}
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("errors %q\nwant %q", got, want)
			}
		})
	}
}

// TestALBValidation: what an ALB and its controller's annotations cannot carry is refused at
// its field, with the value.
func TestALBValidation(t *testing.T) {
	long := strings.Repeat("a", 53) // "conditions." + 53 is one more than an annotation name's 63
	tests := []struct {
		name string
		edit func(c *v1alpha1.CanaryStrategy)
		want string // "" means valid
	}{
		{"valid", func(c *v1alpha1.CanaryStrategy) {}, ""},
		{"no ingress", func(c *v1alpha1.CanaryStrategy) { c.TrafficRouting.ALB.Ingress = "" },
			"spec.strategy.canary.trafficRouting.alb.ingress: is required"},
		{"no port", func(c *v1alpha1.CanaryStrategy) { c.TrafficRouting.ALB.ServicePort = 0 },
			"spec.strategy.canary.trafficRouting.alb.servicePort: 0 is required: the port (1-65535) of the stable and canary Services"},
		{"root service is the canary", func(c *v1alpha1.CanaryStrategy) { c.TrafficRouting.ALB.RootService = "chat-api-canary" },
			`spec.strategy.canary.trafficRouting.alb.rootService: "chat-api-canary" is the canary Service`},
		{"root service not a label", func(c *v1alpha1.CanaryStrategy) { c.TrafficRouting.ALB.RootService = "Chat_API" },
			`spec.strategy.canary.trafficRouting.alb.rootService: "Chat_API" is not a DNS-1035 label`},
		{"stable service too long for an annotation", func(c *v1alpha1.CanaryStrategy) { c.StableService = long },
			`spec.strategy.canary.stableService: "` + long + `" is too long for the annotation alb.ingress.kubernetes.io/conditions.` + long},
		{"route named as the stable service", func(c *v1alpha1.CanaryStrategy) { c.TrafficRouting.ManagedRoutes[0].Name = "chat-api" },
			`spec.strategy.canary.trafficRouting.managedRoutes[0].name: "chat-api" is the name of a Service or of the root action`},
		{"route not a label", func(c *v1alpha1.CanaryStrategy) { c.TrafficRouting.ManagedRoutes[0].Name = "x.version" },
			`spec.strategy.canary.trafficRouting.managedRoutes[0].name: "x.version" is not a DNS-1035 label`},
		{"bad prefix", func(c *v1alpha1.CanaryStrategy) { c.TrafficRouting.ALB.AnnotationPrefix = "ALB/x" },
			`spec.strategy.canary.trafficRouting.alb.annotationPrefix: "ALB/x" is not an annotation prefix`},
		{"wildcard in exact", func(c *v1alpha1.CanaryStrategy) {
			c.Steps = append(c.Steps, headerStep(v1alpha1.HeaderMatch{HeaderName: "x-version", HeaderValue: v1alpha1.StringMatch{Exact: "can*"}}))
		}, `spec.strategy.canary.steps[1].setHeaderRoute.match[0].headerValue.exact: "can*" has * or ?, which an ALB http-header condition takes as wildcards`},
		{"wildcard in prefix", func(c *v1alpha1.CanaryStrategy) {
			c.Steps = append(c.Steps, headerStep(v1alpha1.HeaderMatch{HeaderName: "x-version", HeaderValue: v1alpha1.StringMatch{Prefix: "c?"}}))
		}, `spec.strategy.canary.steps[1].setHeaderRoute.match[0].headerValue.prefix: "c?" has * or ?`},
		{"long header name", func(c *v1alpha1.CanaryStrategy) {
			c.Steps = append(c.Steps, headerStep(v1alpha1.HeaderMatch{HeaderName: "x-" + strings.Repeat("v", 39), HeaderValue: v1alpha1.StringMatch{Exact: "1"}}))
		}, `spec.strategy.canary.steps[1].setHeaderRoute.match[0].headerName: "x-vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv" is longer than the 40 characters of an ALB http-header condition`},
		{"long prefix", func(c *v1alpha1.CanaryStrategy) {
			c.Steps = append(c.Steps, headerStep(v1alpha1.HeaderMatch{HeaderName: "x-version", HeaderValue: v1alpha1.StringMatch{Prefix: strings.Repeat("p", 128)}}))
		}, `spec.strategy.canary.steps[1].setHeaderRoute.match[0].headerValue.prefix: "` + strings.Repeat("p", 128) + `" is longer than the 127 characters an ALB http-header condition allows it`},
		{"three headers", func(c *v1alpha1.CanaryStrategy) {
			m := func(n string) v1alpha1.HeaderMatch {
				return v1alpha1.HeaderMatch{HeaderName: n, HeaderValue: v1alpha1.StringMatch{Exact: "1"}}
			}
			c.Steps = append(c.Steps, headerStep(m("a"), m("b"), m("c")))
		}, ""},
		{"four headers", func(c *v1alpha1.CanaryStrategy) {
			m := func(n string) v1alpha1.HeaderMatch {
				return v1alpha1.HeaderMatch{HeaderName: n, HeaderValue: v1alpha1.StringMatch{Exact: "1"}}
			}
			c.Steps = append(c.Steps, headerStep(m("a"), m("b"), m("c"), m("d")))
		}, "spec.strategy.canary.steps[1].setHeaderRoute.match: has 4 headers; alb matches 3 headers (ALB rule conditions"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ro := routedRollout(t, RouterALB)
			tt.edit(ro.Spec.Strategy.Canary)
			errs := ValidateRollout(ro)
			if tt.want == "" {
				if len(errs) > 0 {
					t.Fatalf("errors: %v", errs)
				}
				return
			}
			if len(errs) != 1 || !strings.HasPrefix(errs[0].Error(), tt.want) {
				t.Fatalf("errors: %q\nwant one starting %q", errs, tt.want)
			}
		})
	}
}
