package kube

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"

	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/spec"
)

// albUseAnnotation is the backend port name that makes the AWS Load Balancer Controller take a
// path's action from the actions annotation named by the backend's Service name.
const albUseAnnotation = "use-annotation"

// ALB routes through the AWS Load Balancer Controller's Ingress annotations (spec.strategy.
// canary.trafficRouting.alb). On the Ingress the user owns, ramp points every path whose
// backend is rootService (default stableService) at the action of that name (backend port
// name use-annotation) and writes that action: a forward to the stable and canary Services'
// target groups, weighted. A header route is a copy of each such path, put just ahead of it,
// whose backend names the route: its action forwards everything to the canary Service, and
// its conditions annotation holds one http-header condition per header (a prefix is written
// "value*"; ALB compares values without case). ramp changes nothing else on the Ingress.
type ALB struct {
	c client.Client
}

var _ Router = (*ALB)(nil)

// NewALB returns the ALB router working through c.
func NewALB(c client.Client) *ALB { return &ALB{c: c} }

// albConfig is what a rollout says about its ALB routing.
type albConfig struct {
	c       *v1alpha1.CanaryStrategy
	key     types.NamespacedName // the Ingress
	root    string
	port    int32
	prefix  string // of the annotations, with its slash
	managed map[string]bool
}

func (a *ALB) config(ro *v1alpha1.Rollout) (albConfig, error) {
	c, tr, err := trafficRouting(ro)
	if err != nil {
		return albConfig{}, err
	}
	if tr.ALB == nil || tr.ALB.Ingress == "" {
		return albConfig{}, fmt.Errorf("rollout %s: spec.strategy.canary.trafficRouting.alb.ingress: %w", ro.Name, errNoRouting)
	}
	return albConfig{
		c:       c,
		key:     types.NamespacedName{Namespace: ro.Namespace, Name: tr.ALB.Ingress},
		root:    spec.ALBRootService(c),
		port:    tr.ALB.ServicePort,
		prefix:  spec.ALBAnnotationPrefix(tr.ALB) + "/",
		managed: managedRouteNames(tr),
	}, nil
}

func (cfg albConfig) actionKey(name string) string {
	return cfg.prefix + spec.ALBActionsAnnotation + name
}

func (cfg albConfig) conditionsKey(name string) string {
	return cfg.prefix + spec.ALBConditionsAnnotation + name
}

// The JSON of the annotations, as the AWS Load Balancer Controller documents it: an action
// (ramp writes forward actions with a forwardConfig) and a list of rule conditions.
type (
	albAction struct {
		Type           string            `json:"type"`
		TargetGroupARN string            `json:"targetGroupARN,omitempty"`
		ForwardConfig  *albForwardConfig `json:"forwardConfig,omitempty"`
	}
	albForwardConfig struct {
		TargetGroups []albTargetGroup `json:"targetGroups"`
	}
	albTargetGroup struct {
		ServiceName    string              `json:"serviceName,omitempty"`
		ServicePort    *intstr.IntOrString `json:"servicePort,omitempty"`
		TargetGroupARN string              `json:"targetGroupARN,omitempty"`
		// TargetGroupName is read only, to name a target group ramp did not write.
		TargetGroupName string `json:"targetGroupName,omitempty"`
		Weight          *int32 `json:"weight,omitempty"`
	}
	albCondition struct {
		Field            string               `json:"field"`
		HTTPHeaderConfig *albHTTPHeaderConfig `json:"httpHeaderConfig,omitempty"`
	}
	albHTTPHeaderConfig struct {
		HTTPHeaderName string   `json:"httpHeaderName"`
		Values         []string `json:"values,omitempty"`
		// RegexValues is read only: ramp never writes regular expressions.
		RegexValues []string `json:"regexValues,omitempty"`
	}
)

// albJSON encodes v as an annotation value: compact, without HTML escapes.
func albJSON(v any) (string, error) {
	var b bytes.Buffer
	e := json.NewEncoder(&b)
	e.SetEscapeHTML(false)
	if err := e.Encode(v); err != nil {
		return "", err
	}
	return strings.TrimSuffix(b.String(), "\n"), nil
}

// forward is the action that sends each Service its weight.
func (cfg albConfig) forward(services []string, weights []int32) albAction {
	port := intstr.FromInt32(cfg.port)
	fc := &albForwardConfig{}
	for i, s := range services {
		w := weights[i]
		fc.TargetGroups = append(fc.TargetGroups, albTargetGroup{ServiceName: s, ServicePort: &port, Weight: &w})
	}
	return albAction{Type: "forward", ForwardConfig: fc}
}

// albAnnotations are the values of the annotations ramp owns for routes r; "" means the
// annotation is removed.
func albAnnotations(cfg albConfig, r Routes) (map[string]string, error) {
	out := map[string]string{}
	root, err := albJSON(cfg.forward([]string{r.StableService, r.CanaryService}, []int32{100 - r.CanaryWeight, r.CanaryWeight}))
	if err != nil {
		return nil, err
	}
	out[cfg.actionKey(cfg.root)] = root
	for name := range cfg.managed {
		out[cfg.actionKey(name)], out[cfg.conditionsKey(name)] = "", ""
	}
	for _, hr := range activeHeaderRoutes(r.HeaderRoutes) {
		conds, err := albConditions(hr)
		if err != nil {
			return nil, err
		}
		action, err := albJSON(cfg.forward([]string{r.CanaryService}, []int32{100}))
		if err != nil {
			return nil, err
		}
		out[cfg.actionKey(hr.Name)] = action
		if out[cfg.conditionsKey(hr.Name)], err = albJSON(conds); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// albConditions are the http-header conditions of hr, one a header: all must hold.
func albConditions(hr v1alpha1.SetHeaderRoute) ([]albCondition, error) {
	var out []albCondition
	for _, m := range hr.Match {
		v := m.HeaderValue
		var value string
		switch {
		case v.Regex != "":
			return nil, fmt.Errorf("header route %q: alb cannot match header %s by regex", hr.Name, m.HeaderName)
		case v.Prefix != "":
			value = v.Prefix
		default:
			value = v.Exact
		}
		if strings.ContainsAny(value, "*?") {
			return nil, fmt.Errorf("header route %q: header %s value %q has * or ?, which ALB takes as wildcards", hr.Name, m.HeaderName, value)
		}
		if v.Prefix != "" {
			value += "*"
		}
		out = append(out, albCondition{Field: "http-header", HTTPHeaderConfig: &albHTTPHeaderConfig{HTTPHeaderName: m.HeaderName, Values: []string{value}}})
	}
	return out, nil
}

// isHeaderPath reports a path ramp put in for a header route: its backend names a managed
// route, with the use-annotation port.
func (cfg albConfig) isHeaderPath(p *networkingv1.HTTPIngressPath) bool {
	s := p.Backend.Service
	return s != nil && cfg.managed[s.Name] && s.Port.Name == albUseAnnotation
}

// setALBPaths points the paths to the root Service at its action, and puts ahead of each of
// them a path for each header route (named routes), in order, after removing the header paths
// set before. It fails when no path goes to the root Service.
func setALBPaths(cfg albConfig, s *networkingv1.IngressSpec, routes []string) error {
	roots := 0
	for i := range s.Rules {
		h := s.Rules[i].HTTP
		if h == nil {
			continue
		}
		var paths []networkingv1.HTTPIngressPath
		for _, p := range h.Paths {
			if cfg.isHeaderPath(&p) {
				continue
			}
			if b := p.Backend.Service; b != nil && b.Name == cfg.root {
				roots++
				for _, name := range routes {
					hp := *p.DeepCopy()
					hp.Backend.Service = &networkingv1.IngressServiceBackend{Name: name, Port: networkingv1.ServiceBackendPort{Name: albUseAnnotation}}
					paths = append(paths, hp)
				}
				p = *p.DeepCopy()
				p.Backend.Service.Port = networkingv1.ServiceBackendPort{Name: albUseAnnotation}
			}
			paths = append(paths, p)
		}
		h.Paths = paths
	}
	if roots == 0 {
		return fmt.Errorf("no rule path of ingress %s has backend Service %q (the rollout's alb rootService, default stableService)", cfg.key.Name, cfg.root)
	}
	return nil
}

// SetRoutes writes the action and header-route annotations and paths on the Ingress.
func (a *ALB) SetRoutes(ctx context.Context, ro *v1alpha1.Rollout, r Routes) error {
	cfg, err := a.config(ro)
	if err != nil {
		return err
	}
	if err := checkWeight(r.CanaryWeight); err != nil {
		return fmt.Errorf("set routes on ingress %s: %w", cfg.key, err)
	}
	if err := checkMirror(r, spec.RouterALB); err != nil {
		return fmt.Errorf("set routes on ingress %s: %w", cfg.key, err)
	}
	var routes []string
	for _, hr := range activeHeaderRoutes(r.HeaderRoutes) {
		if !cfg.managed[hr.Name] {
			return fmt.Errorf("set routes on ingress %s: header route %q is not in trafficRouting.managedRoutes", cfg.key, hr.Name)
		}
		routes = append(routes, hr.Name)
	}
	ann, err := albAnnotations(cfg, r)
	if err != nil {
		return fmt.Errorf("set routes on ingress %s: %w", cfg.key, err)
	}
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var ing networkingv1.Ingress
		if err := a.c.Get(ctx, cfg.key, &ing); err != nil {
			return err
		}
		before := ing.DeepCopy()
		if err := setALBPaths(cfg, &ing.Spec, routes); err != nil {
			return err
		}
		for k, v := range ann {
			if v == "" {
				delete(ing.Annotations, k)
				continue
			}
			if ing.Annotations == nil {
				ing.Annotations = map[string]string{}
			}
			ing.Annotations[k] = v
		}
		if equality.Semantic.DeepEqual(before, &ing) {
			return nil
		}
		return a.c.Update(ctx, &ing)
	})
	if err != nil {
		return fmt.Errorf("set routes on ingress %s: %w", cfg.key, err)
	}
	return nil
}

// ObservedRoutes reads what the ALB does by the Ingress: the canary's share of the root
// action's weights (none when no root path uses the action: those paths then go to the root
// Service itself), and the header routes whose paths, action and conditions send matching
// requests to the canary, in the Ingress's order.
func (a *ALB) ObservedRoutes(ctx context.Context, ro *v1alpha1.Rollout) (Routes, error) {
	cfg, err := a.config(ro)
	if err != nil {
		return Routes{}, err
	}
	var ing networkingv1.Ingress
	if err := a.c.Get(ctx, cfg.key, &ing); err != nil {
		return Routes{}, fmt.Errorf("read routes of ingress %s: %w", cfg.key, err)
	}
	out := specRoutes(cfg.c)
	usesAction := false
	var headerPaths []string
	seen := map[string]bool{}
	for _, rule := range ing.Spec.Rules {
		if rule.HTTP == nil {
			continue
		}
		for _, p := range rule.HTTP.Paths {
			switch s := p.Backend.Service; {
			case s == nil:
			case cfg.isHeaderPath(&p):
				if !seen[s.Name] {
					seen[s.Name] = true
					headerPaths = append(headerPaths, s.Name)
				}
			case s.Name == cfg.root && s.Port.Name == albUseAnnotation:
				usesAction = true
			}
		}
	}
	if usesAction {
		stable, canary, share, err := cfg.readForward(ing.Annotations, cfg.root)
		if err != nil {
			return Routes{}, fmt.Errorf("read routes of ingress %s: %w", cfg.key, err)
		}
		out.StableService, out.CanaryService, out.CanaryWeight = stable, canary, share
	} else {
		out.StableService = cfg.root
	}
	for _, name := range headerPaths {
		_, canary, share, err := cfg.readForward(ing.Annotations, name)
		if err != nil || canary != cfg.c.CanaryService || share != 100 {
			continue // not a route to the canary; Drift shows it missing
		}
		raw, ok := ing.Annotations[cfg.conditionsKey(name)]
		if !ok {
			// A path without conditions sends every request of the path to the canary.
			out.CanaryWeight = 100
			continue
		}
		hr, err := readALBConditions(name, raw)
		if err != nil {
			return Routes{}, fmt.Errorf("read routes of ingress %s: annotation %s: %w", cfg.key, cfg.conditionsKey(name), err)
		}
		out.HeaderRoutes = append(out.HeaderRoutes, hr)
	}
	return out, nil
}

// readForward reads the forward action called name: the target groups other than the canary
// Service's (comma-joined), the canary Service when it has one, and the canary's share of the
// weights in percent, rounded. A target group without a weight counts as 1.
func (cfg albConfig) readForward(ann map[string]string, name string) (stable, canary string, share int32, err error) {
	key := cfg.actionKey(name)
	raw, ok := ann[key]
	if !ok {
		return "", "", 0, fmt.Errorf("annotation %s is missing", key)
	}
	var act albAction
	if err := json.Unmarshal([]byte(raw), &act); err != nil {
		return "", "", 0, fmt.Errorf("annotation %s: %w", key, err)
	}
	if act.Type != "forward" {
		return "", "", 0, fmt.Errorf("annotation %s: action type %q, want forward", key, act.Type)
	}
	tgs := []albTargetGroup{{TargetGroupARN: act.TargetGroupARN}}
	if act.ForwardConfig != nil {
		tgs = act.ForwardConfig.TargetGroups
	}
	var others []string
	var cw, total int64
	for _, tg := range tgs {
		w := int64(1)
		if tg.Weight != nil {
			w = int64(*tg.Weight)
		}
		total += w
		if tg.ServiceName != "" && tg.ServiceName == cfg.c.CanaryService {
			canary = tg.ServiceName
			cw += w
			continue
		}
		others = append(others, firstNonEmpty(tg.ServiceName, tg.TargetGroupName, tg.TargetGroupARN))
	}
	if total > 0 {
		share = int32((cw*100 + total/2) / total)
	}
	return strings.Join(others, ","), canary, share, nil
}

// readALBConditions reads a conditions annotation as the header route called name. A condition
// other than one http-header value is read as a match that no route of ramp's has, so that
// Drift shows it.
func readALBConditions(name, raw string) (v1alpha1.SetHeaderRoute, error) {
	var conds []albCondition
	if err := json.Unmarshal([]byte(raw), &conds); err != nil {
		return v1alpha1.SetHeaderRoute{}, err
	}
	hr := v1alpha1.SetHeaderRoute{Name: name}
	for _, c := range conds {
		h := c.HTTPHeaderConfig
		switch {
		case c.Field != "http-header" || h == nil:
			hr.Match = append(hr.Match, v1alpha1.HeaderMatch{HeaderName: ":" + c.Field})
		case len(h.RegexValues) > 0:
			hr.Match = append(hr.Match, v1alpha1.HeaderMatch{HeaderName: h.HTTPHeaderName, HeaderValue: v1alpha1.StringMatch{Regex: strings.Join(h.RegexValues, "|")}})
		case len(h.Values) == 1 && strings.HasSuffix(h.Values[0], "*") && !strings.ContainsAny(strings.TrimSuffix(h.Values[0], "*"), "*?"):
			hr.Match = append(hr.Match, v1alpha1.HeaderMatch{HeaderName: h.HTTPHeaderName, HeaderValue: v1alpha1.StringMatch{Prefix: strings.TrimSuffix(h.Values[0], "*")}})
		default:
			hr.Match = append(hr.Match, v1alpha1.HeaderMatch{HeaderName: h.HTTPHeaderName, HeaderValue: v1alpha1.StringMatch{Exact: strings.Join(h.Values, ",")}})
		}
	}
	return hr, nil
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}
