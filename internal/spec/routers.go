package spec

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"

	"ramp.dev/ramp/api/v1alpha1"
)

// validateTrafficRouters checks the Kubernetes traffic router of a canary: at most one router,
// its required names, and that every setHeaderRoute step can be expressed by that router (SMI
// has no header routes; NGINX has one header route of one exact or regex header; Gateway API
// has no prefix header match). A router that cannot express a step says so here, never by
// silently doing nothing at run time.
func validateTrafficRouters(l *errList, path string, c *v1alpha1.CanaryStrategy) {
	tr := c.TrafficRouting
	if tr == nil {
		return
	}
	tp := path + ".trafficRouting"
	var set []string
	if tr.GatewayAPI != nil {
		set = append(set, "gatewayAPI")
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
	}
	if tr.Istio != nil {
		set = append(set, "istio")
		if tr.Istio.VirtualService.Name == "" {
			l.add(tp+".istio.virtualService.name", nil, "is required")
		}
	}
	if tr.SMI != nil {
		set = append(set, "smi")
	}
	if tr.Nginx != nil {
		set = append(set, "nginx")
		if tr.Nginx.StableIngress == "" {
			l.add(tp+".nginx.stableIngress", nil, "is required")
		}
		if len(tr.ManagedRoutes) > 1 {
			l.add(tp+".managedRoutes", nil, "has %d routes; nginx supports one header route", len(tr.ManagedRoutes))
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
	for i := range c.Steps {
		hr := c.Steps[i].SetHeaderRoute
		if hr == nil {
			continue
		}
		sp := fmt.Sprintf("%s.steps[%d].setHeaderRoute", path, i)
		switch {
		case tr.SMI != nil:
			l.add(sp, nil, "cannot be used with trafficRouting.smi: a TrafficSplit has no header routes")
		case tr.Nginx != nil:
			if len(hr.Match) > 1 {
				l.add(sp+".match", nil, "has %d headers; nginx matches one header (canary-by-header)", len(hr.Match))
			}
			for j, m := range hr.Match {
				if m.HeaderValue.Prefix != "" {
					l.add(fmt.Sprintf("%s.match[%d].headerValue.prefix", sp, j), m.HeaderValue.Prefix, "cannot be used with nginx; use exact or regex")
				}
			}
		case tr.GatewayAPI != nil:
			for j, m := range hr.Match {
				if m.HeaderValue.Prefix != "" {
					l.add(fmt.Sprintf("%s.match[%d].headerValue.prefix", sp, j), m.HeaderValue.Prefix, "cannot be used with gatewayAPI; use exact or regex")
				}
			}
		}
	}
}
