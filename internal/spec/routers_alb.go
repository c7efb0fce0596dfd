package spec

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"

	"ramp.dev/ramp/api/v1alpha1"
)

// The AWS Load Balancer Controller's annotations ramp writes on the alb router's Ingress, each
// after the prefix and a slash: the action of a path whose backend names it, and the
// conditions a request must also meet to take that path.
const (
	ALBActionsAnnotation    = "actions."
	ALBConditionsAnnotation = "conditions."
)

// Bounds of an ALB http-header condition.
const (
	albMaxHeaderName  = 40
	albMaxHeaderValue = 128
)

// ALBRootService is the backend name of the Ingress paths the alb router of c takes over, and
// their action's name: rootService, else stableService.
func ALBRootService(c *v1alpha1.CanaryStrategy) string {
	if c.TrafficRouting != nil && c.TrafficRouting.ALB != nil && c.TrafficRouting.ALB.RootService != "" {
		return c.TrafficRouting.ALB.RootService
	}
	return c.StableService
}

// ALBAnnotationPrefix is a's annotation prefix: annotationPrefix, else
// DefaultALBAnnotationPrefix.
func ALBAnnotationPrefix(a *v1alpha1.ALBTrafficRouting) string {
	if a != nil && a.AnnotationPrefix != "" {
		return a.AnnotationPrefix
	}
	return DefaultALBAnnotationPrefix
}

// validateALB checks trafficRouting.alb: the Ingress and port are given, and every name that
// becomes an Ingress backend (rootService and the managed routes, which are action names) is
// a Service name that makes valid annotation keys and is not taken by another.
func validateALB(l *errList, tp string, c *v1alpha1.CanaryStrategy) {
	a := c.TrafficRouting.ALB
	ap := tp + ".alb"
	if a.Ingress == "" {
		l.add(ap+".ingress", nil, "is required")
	}
	if a.ServicePort < 1 || a.ServicePort > 65535 {
		l.add(ap+".servicePort", a.ServicePort, "is required: the port (1-65535) of the stable and canary Services")
	}
	prefix := ALBAnnotationPrefix(a)
	prefixOK := true
	if a.AnnotationPrefix != "" {
		for _, msg := range validation.IsDNS1123Subdomain(a.AnnotationPrefix) {
			l.add(ap+".annotationPrefix", a.AnnotationPrefix, "is not an annotation prefix: %s", msg)
			prefixOK = false
		}
	}
	actionName := func(path, name string) {
		msgs := validation.IsDNS1035Label(name)
		for _, msg := range msgs {
			l.add(path, name, "is not a DNS-1035 label, which an Ingress backend's Service name must be: %s", msg)
		}
		if len(msgs) > 0 || !prefixOK {
			return
		}
		// A valid label and prefix leave only the annotation name's length to fail.
		for _, msg := range validation.IsQualifiedName(prefix + "/" + ALBConditionsAnnotation + name) {
			l.add(path, name, "is too long for the annotation %s/%s%s: %s", prefix, ALBConditionsAnnotation, name, msg)
		}
	}
	root := ALBRootService(c)
	rootPath := ap + ".rootService"
	if a.RootService == "" {
		rootPath = strings.TrimSuffix(tp, ".trafficRouting") + ".stableService"
	}
	if root != "" {
		actionName(rootPath, root)
		if a.RootService != "" && a.RootService == c.CanaryService {
			l.add(rootPath, root, "is the canary Service; name the Ingress paths' backend (default stableService)")
		}
	}
	for i, r := range c.TrafficRouting.ManagedRoutes {
		if r.Name == "" {
			continue
		}
		p := fmt.Sprintf("%s.managedRoutes[%d].name", tp, i)
		actionName(p, r.Name)
		for _, taken := range []string{root, c.StableService, c.CanaryService} {
			if r.Name == taken {
				l.add(p, r.Name, "is the name of a Service or of the root action; alb names each header route's Ingress path and action after the route")
				break
			}
		}
	}
}

// checkALBMatch checks a header match against an ALB http-header condition: a name of at
// most 40 characters, and a value of at most 128 in which * and ? are not taken as wildcards.
func checkALBMatch(l *errList, mp string, m v1alpha1.HeaderMatch) {
	if len(m.HeaderName) > albMaxHeaderName {
		l.add(mp+".headerName", m.HeaderName, "is longer than the %d characters of an ALB http-header condition", albMaxHeaderName)
	}
	for _, f := range []struct {
		field, v string
		max      int
	}{
		{"exact", m.HeaderValue.Exact, albMaxHeaderValue},
		{"prefix", m.HeaderValue.Prefix, albMaxHeaderValue - 1}, // written as "value*"
	} {
		if f.v == "" {
			continue
		}
		if strings.ContainsAny(f.v, "*?") {
			l.add(mp+".headerValue."+f.field, f.v, "has * or ?, which an ALB http-header condition takes as wildcards")
		}
		if len(f.v) > f.max {
			l.add(mp+".headerValue."+f.field, f.v, "is longer than the %d characters an ALB http-header condition allows it", f.max)
		}
	}
}
