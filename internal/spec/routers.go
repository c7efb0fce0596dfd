package spec

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"

	"ramp.dev/ramp/api/v1alpha1"
)

// Router describes what one traffic router can do. This table is the one place that says it:
// validation checks a rollout against its router's description, and Kubernetes mode's adapter
// reads the same description (where the router's request metrics come from, which objects
// it reads back). Adding a router means a description here and its implementation in
// internal/kube.
type Router struct {
	// Name is the trafficRouting field that picks the router; "service" is Kubernetes mode
	// without one, "proxy" local mode's own proxy.
	Name string
	// Title names the router in messages.
	Title string
	// ExactWeights says the layer splits traffic by percent; false means weights are
	// approximated by pod counts.
	ExactWeights bool
	// HeaderRoutes says setHeaderRoute steps can be carried out.
	HeaderRoutes bool
	// MaxManagedRoutes and MaxHeaderMatches bound the header routes and the headers one route
	// matches; 0 means no bound. HeaderMatchVia says how the layer matches ("canary-by-header").
	MaxManagedRoutes, MaxHeaderMatches int
	HeaderMatchVia                     string
	// PrefixMatch and RegexMatch say a header can be matched by prefix and by regular
	// expression (exact always can).
	PrefixMatch, RegexMatch bool
	// CookieMatch says a header route can match cookies.
	CookieMatch bool
	// Mirror says canary.mirror can be carried out (copies of requests sent to the canary);
	// Stickiness canary.stickiness (each user kept on one revision as the weight grows).
	Mirror, Stickiness bool
	// Metrics is where the requests the judge and builtin metrics count come from: "proxy"
	// (ramp's own), the router's name when it exports request metrics ramp reads from
	// Prometheus, or "" for none (a rollout's spec.appMetrics then names the app's own
	// series, which any router can use, and which spec.appMetrics.prefer may choose over the
	// router's).
	Metrics string
	// Objects are the traffic layer's objects the router reads back (Kubernetes mode watches
	// them for drift). Empty means none besides the Services.
	Objects []RoutedObject

	// noHeaderRoutes says why a setHeaderRoute step cannot be carried out.
	noHeaderRoutes string
	// noStickiness says why canary.stickiness cannot be carried out, after "which"; empty
	// means the general reason.
	noStickiness string
	// mirrorUnbounded says the router mirrors without canary.mirror's maxConcurrent and
	// maxBodyBytes, which are then refused.
	mirrorUnbounded bool
	// picked reports whether tr names the router; nil for service and proxy.
	picked func(tr *v1alpha1.TrafficRouting) bool
	// validate checks the router's own fields; tp is the trafficRouting path.
	validate func(l *errList, tp string, c *v1alpha1.CanaryStrategy)
	// checkMatch checks one header match of a setHeaderRoute step beyond the capabilities
	// above; mp is the match's path. Nil means none.
	checkMatch func(l *errList, mp string, m v1alpha1.HeaderMatch)
}

// RoutedObject is one object a router reads.
type RoutedObject struct {
	// Kind is the object's kind ("HTTPRoute").
	Kind string
	// Name returns the object's name for a rollout of the router.
	Name func(ro *v1alpha1.Rollout) string
	// Made says ramp makes the object itself; false means the user creates it and the
	// rollout refers to it.
	Made bool
}

// Router names.
const (
	RouterGatewayAPI = "gatewayAPI"
	RouterIstio      = "istio"
	RouterSMI        = "smi"
	RouterNginx      = "nginx"
	RouterALB        = "alb"
	RouterService    = "service"
	RouterProxy      = "proxy"
)

// trafficRouting is ro's canary trafficRouting; an empty one when it has none.
func trafficRouting(ro *v1alpha1.Rollout) *v1alpha1.TrafficRouting {
	if c := ro.Spec.Strategy.Canary; c != nil && c.TrafficRouting != nil {
		return c.TrafficRouting
	}
	return &v1alpha1.TrafficRouting{}
}

// routers are every router, those a trafficRouting field picks first.
var routers = []Router{
	{
		// A RequestMirror filter with percent (standard since Gateway API v1.3) mirrors.
		Name: RouterGatewayAPI, Title: RouterGatewayAPI, ExactWeights: true, HeaderRoutes: true, RegexMatch: true, Mirror: true,
		Objects: []RoutedObject{{Kind: "HTTPRoute", Name: func(ro *v1alpha1.Rollout) string { return trafficRouting(ro).GatewayAPI.HTTPRoute }}},
		picked:  func(tr *v1alpha1.TrafficRouting) bool { return tr.GatewayAPI != nil },
		validate: func(l *errList, tp string, c *v1alpha1.CanaryStrategy) {
			tr := c.TrafficRouting
			if tr.GatewayAPI.HTTPRoute == "" {
				l.add(tp+".gatewayAPI.httpRoute", nil, "is required")
			}
			for i, r := range tr.ManagedRoutes {
				if r.Name == "" {
					continue
				}
				for _, msg := range validation.IsDNS1123Label(r.Name) {
					l.add(fmt.Sprintf("%s.managedRoutes[%d].name", tp, i), r.Name, "is not a DNS-1123 label, which gatewayAPI needs for an HTTPRoute rule name: %s", msg)
				}
			}
		},
		mirrorUnbounded: true,
		noStickiness:    "weighs each request on its own: an HTTPRoute's sessionPersistence, which could keep a user on one backend, is in Gateway API's experimental channel only",
	},
	{
		// An http route's mirror and mirrorPercentage mirror.
		Name: RouterIstio, Title: RouterIstio, ExactWeights: true, HeaderRoutes: true, PrefixMatch: true, RegexMatch: true, Metrics: RouterIstio, Mirror: true,
		Objects: []RoutedObject{{Kind: "VirtualService", Name: func(ro *v1alpha1.Rollout) string { return trafficRouting(ro).Istio.VirtualService.Name }}},
		picked:  func(tr *v1alpha1.TrafficRouting) bool { return tr.Istio != nil },
		validate: func(l *errList, tp string, c *v1alpha1.CanaryStrategy) {
			tr := c.TrafficRouting
			if tr.Istio.VirtualService.Name == "" {
				l.add(tp+".istio.virtualService.name", nil, "is required")
			}
		},
		mirrorUnbounded: true,
		noStickiness:    "weighs each request on its own: a DestinationRule's consistentHash keeps a user on one pod of a Service, not on one revision",
	},
	{
		Name: RouterSMI, Title: RouterSMI, ExactWeights: true,
		noHeaderRoutes: "cannot be used with trafficRouting.smi: a TrafficSplit has no header routes",
		Objects: []RoutedObject{{Kind: "TrafficSplit", Made: true, Name: func(ro *v1alpha1.Rollout) string {
			if n := trafficRouting(ro).SMI.TrafficSplitName; n != "" {
				return n
			}
			return ro.Name
		}}},
		picked: func(tr *v1alpha1.TrafficRouting) bool { return tr.SMI != nil },
	},
	{
		Name: RouterNginx, Title: RouterNginx, ExactWeights: true, HeaderRoutes: true, RegexMatch: true,
		MaxManagedRoutes: 1, MaxHeaderMatches: 1, HeaderMatchVia: "canary-by-header", Metrics: RouterNginx,
		Objects: []RoutedObject{{Kind: "Ingress", Name: func(ro *v1alpha1.Rollout) string { return trafficRouting(ro).Nginx.StableIngress }}},
		picked:  func(tr *v1alpha1.TrafficRouting) bool { return tr.Nginx != nil },
		validate: func(l *errList, tp string, c *v1alpha1.CanaryStrategy) {
			tr := c.TrafficRouting
			if tr.Nginx.StableIngress == "" {
				l.add(tp+".nginx.stableIngress", nil, "is required")
			}
		},
	},
	{
		// A rule of an ALB has at most five match evaluations; its host and path take two.
		// Header values match without case, with * and ? as wildcards: a prefix is "value*".
		Name: RouterALB, Title: RouterALB, ExactWeights: true, HeaderRoutes: true, PrefixMatch: true,
		MaxHeaderMatches: 3, HeaderMatchVia: "ALB rule conditions: five match evaluations a rule, two of them its host and path",
		Objects:    []RoutedObject{{Kind: "Ingress", Name: func(ro *v1alpha1.Rollout) string { return trafficRouting(ro).ALB.Ingress }}},
		picked:     func(tr *v1alpha1.TrafficRouting) bool { return tr.ALB != nil },
		validate:   validateALB,
		checkMatch: checkALBMatch,
	},
	{
		Name: RouterService, Title: "service (plain Service selectors)",
	},
	{
		Name: RouterProxy, Title: "proxy (ramp's own)", ExactWeights: true, HeaderRoutes: true, PrefixMatch: true, RegexMatch: true,
		CookieMatch: true, Mirror: true, Stickiness: true, Metrics: RouterProxy,
	},
}

func init() {
	for i := range routers {
		r := &routers[i]
		if !r.HeaderRoutes && r.noHeaderRoutes == "" {
			r.noHeaderRoutes = fmt.Sprintf("cannot be done by the %s router, which cannot route by header; use trafficRouting %s", r.Title, orList(namedRouters(func(r Router) bool { return r.HeaderRoutes })))
		}
	}
}

// Routers returns every router's description.
func Routers() []Router { return append([]Router(nil), routers...) }

// LookupRouter returns the router called name.
func LookupRouter(name string) (Router, bool) {
	for _, r := range routers {
		if r.Name == name {
			return r, true
		}
	}
	return Router{}, false
}

// NamedRouter returns the name of the router c's trafficRouting picks (the first, when it
// wrongly picks several), or "" when it names none.
func NamedRouter(c *v1alpha1.CanaryStrategy) string {
	if c == nil || c.TrafficRouting == nil {
		return ""
	}
	for _, r := range routers {
		if r.picked != nil && r.picked(c.TrafficRouting) {
			return r.Name
		}
	}
	return ""
}

// RouterOf returns the router that carries ro's traffic: the one its canary trafficRouting
// names, else Kubernetes mode's Services (with spec.workloadRef), else local mode's proxy.
func RouterOf(ro *v1alpha1.Rollout) Router { return routerOf(&ro.Spec) }

func routerOf(s *v1alpha1.RolloutSpec) Router {
	name := NamedRouter(s.Strategy.Canary)
	switch {
	case name != "":
	case s.WorkloadRef != nil:
		name = RouterService
	default:
		name = RouterProxy
	}
	r, _ := LookupRouter(name)
	return r
}

// namedRouters returns the names of the routers a trafficRouting field picks that keep
// accepts.
func namedRouters(keep func(Router) bool) []string {
	var out []string
	for _, r := range routers {
		if r.picked != nil && keep(r) {
			out = append(out, r.Name)
		}
	}
	return out
}

// routersThat returns the names of every router (service and proxy too) that keep accepts.
func routersThat(keep func(Router) bool) []string {
	var out []string
	for _, r := range routers {
		if keep(r) {
			out = append(out, r.Name)
		}
	}
	return out
}

// orList joins names as "a, b or c".
func orList(names []string) string {
	if len(names) < 2 {
		return strings.Join(names, "")
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}

// count spells n for messages: "one", "2".
func count(n int) string {
	if n == 1 {
		return "one"
	}
	return fmt.Sprint(n)
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// validateTrafficRouters checks a canary against its router's description: at most one
// router, its required names, and that every setHeaderRoute step, mirror and stickiness can
// be carried out by that router. A router that cannot do something says so here, never by
// silently doing nothing at run time.
func validateTrafficRouters(l *errList, path string, s *v1alpha1.RolloutSpec) {
	c := s.Strategy.Canary
	tp := path + ".trafficRouting"
	if tr := c.TrafficRouting; tr != nil {
		var set []string
		for _, r := range routers {
			if r.picked == nil || !r.picked(tr) {
				continue
			}
			set = append(set, r.Name)
			if r.validate != nil {
				r.validate(l, tp, c)
			}
		}
		if len(set) > 1 {
			l.add(tp, nil, "has %s; give at most one router", strings.Join(set, " and "))
		}
		if len(set) == 1 {
			if c.StableService == "" {
				l.add(path+".stableService", nil, "is required with trafficRouting.%s", set[0])
			}
			if c.CanaryService == "" {
				l.add(path+".canaryService", nil, "is required with trafficRouting.%s", set[0])
			}
			if c.StableService != "" && c.StableService == c.CanaryService {
				l.add(path+".canaryService", c.CanaryService, "is the same as stableService")
			}
		}
	}
	r := routerOf(s)
	if r.MaxManagedRoutes > 0 && c.TrafficRouting != nil && len(c.TrafficRouting.ManagedRoutes) > r.MaxManagedRoutes {
		l.add(tp+".managedRoutes", nil, "has %d routes; %s supports %s header route%s", len(c.TrafficRouting.ManagedRoutes), r.Title, count(r.MaxManagedRoutes), plural(r.MaxManagedRoutes))
	}
	if c.Mirror != nil && !r.Mirror {
		l.add(path+".mirror", nil, "cannot be done by the %s router, which cannot mirror requests; only %s can", r.Title, orList(routersThat(func(r Router) bool { return r.Mirror })))
	}
	if m := c.Mirror; m != nil && r.Mirror && r.mirrorUnbounded {
		if m.MaxConcurrent != 0 {
			l.add(path+".mirror.maxConcurrent", m.MaxConcurrent, "cannot be done by the %s router, which does not limit the copies in flight; leave it out", r.Title)
		}
		if m.MaxBodyBytes != 0 {
			l.add(path+".mirror.maxBodyBytes", m.MaxBodyBytes, "cannot be done by the %s router, which copies every body; leave it out", r.Title)
		}
	}
	if c.Stickiness != nil && !r.Stickiness {
		why := r.noStickiness
		if why == "" {
			why = "cannot keep users on one revision"
		}
		l.add(path+".stickiness", nil, "cannot be done by the %s router, which %s; only %s can", r.Title, why, orList(routersThat(func(r Router) bool { return r.Stickiness })))
	}
	for i := range c.Steps {
		hr := c.Steps[i].SetHeaderRoute
		if hr == nil {
			continue
		}
		sp := fmt.Sprintf("%s.steps[%d].setHeaderRoute", path, i)
		if !r.HeaderRoutes {
			l.add(sp, nil, "%s", r.noHeaderRoutes)
			continue
		}
		if r.MaxHeaderMatches > 0 && len(hr.Match) > r.MaxHeaderMatches {
			via := ""
			if r.HeaderMatchVia != "" {
				via = " (" + r.HeaderMatchVia + ")"
			}
			l.add(sp+".match", nil, "has %d headers; %s matches %s header%s%s", len(hr.Match), r.Title, count(r.MaxHeaderMatches), plural(r.MaxHeaderMatches), via)
		}
		for j, m := range hr.Match {
			mp := fmt.Sprintf("%s.match[%d]", sp, j)
			if !r.PrefixMatch && m.HeaderValue.Prefix != "" {
				l.add(mp+".headerValue.prefix", m.HeaderValue.Prefix, "cannot be used with %s; use exact or regex", r.Title)
			}
			if !r.RegexMatch && m.HeaderValue.Regex != "" {
				l.add(mp+".headerValue.regex", m.HeaderValue.Regex, "cannot be used with %s; use exact or prefix", r.Title)
			}
			if r.checkMatch != nil {
				r.checkMatch(l, mp, m)
			}
		}
		if !r.CookieMatch && len(hr.CookieMatch) > 0 {
			l.add(sp+".cookieMatch", nil, "cannot be done by the %s router, which cannot match cookies; only %s can", r.Title, RouterProxy)
		}
	}
}
