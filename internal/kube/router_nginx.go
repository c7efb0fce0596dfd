package kube

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/spec"
)

// The ingress-nginx canary annotations ramp sets, and its own note of the header route's name.
const (
	nginxAnnotationPrefix  = "nginx.ingress.kubernetes.io/canary"
	nginxCanary            = "nginx.ingress.kubernetes.io/canary"
	nginxWeight            = "nginx.ingress.kubernetes.io/canary-weight"
	nginxWeightTotal       = "nginx.ingress.kubernetes.io/canary-weight-total"
	nginxByHeader          = "nginx.ingress.kubernetes.io/canary-by-header"
	nginxByHeaderValue     = "nginx.ingress.kubernetes.io/canary-by-header-value"
	nginxByHeaderPattern   = "nginx.ingress.kubernetes.io/canary-by-header-pattern"
	headerRouteAnnotation  = "ramp.dev/header-route"
	ingressClassAnnotation = "kubernetes.io/ingress.class"
)

// Nginx routes through ingress-nginx canary annotations (spec.strategy.canary.trafficRouting.
// nginx.stableIngress). ramp creates and owns a canary Ingress named
// "<rollout>-<stableIngress>-canary": the stable Ingress's rules, keeping only the paths to the
// stable Service and sending them to the canary Service, annotated with canary-weight and, for
// the one header route NGINX can express, canary-by-header with canary-by-header-value (exact)
// or canary-by-header-pattern (regex).
type Nginx struct {
	c client.Client
}

var _ Router = (*Nginx)(nil)

// NewNginx returns the NGINX ingress router working through c.
func NewNginx(c client.Client) *Nginx { return &Nginx{c: c} }

func (n *Nginx) config(ro *v1alpha1.Rollout) (*v1alpha1.CanaryStrategy, types.NamespacedName, types.NamespacedName, error) {
	c, tr, err := trafficRouting(ro)
	if err != nil {
		return nil, types.NamespacedName{}, types.NamespacedName{}, err
	}
	if tr.Nginx == nil || tr.Nginx.StableIngress == "" {
		return nil, types.NamespacedName{}, types.NamespacedName{}, fmt.Errorf("rollout %s: spec.strategy.canary.trafficRouting.nginx.stableIngress: %w", ro.Name, errNoRouting)
	}
	stable := types.NamespacedName{Namespace: ro.Namespace, Name: tr.Nginx.StableIngress}
	return c, stable, types.NamespacedName{Namespace: ro.Namespace, Name: CanaryIngressName(ro.Name, stable.Name)}, nil
}

// CanaryIngressName is the name of the canary Ingress ramp makes beside stableIngress.
func CanaryIngressName(rollout, stableIngress string) string {
	name := rollout + "-" + stableIngress + "-canary"
	if len(name) > 253 {
		name = name[:253]
	}
	return name
}

// SetRoutes creates or updates the canary Ingress.
func (n *Nginx) SetRoutes(ctx context.Context, ro *v1alpha1.Rollout, r Routes) error {
	_, stableKey, key, err := n.config(ro)
	if err != nil {
		return err
	}
	if err := checkWeight(r.CanaryWeight); err != nil {
		return fmt.Errorf("set routes on ingress %s: %w", key, err)
	}
	if err := checkMirror(r, spec.RouterNginx); err != nil {
		return fmt.Errorf("set routes on ingress %s: %w", key, err)
	}
	managed := managedRouteNames(ro.Spec.Strategy.Canary.TrafficRouting)
	for _, hr := range activeHeaderRoutes(r.HeaderRoutes) {
		if !managed[hr.Name] {
			return fmt.Errorf("set routes on ingress %s: header route %q is not in trafficRouting.managedRoutes", key, hr.Name)
		}
	}
	var stable networkingv1.Ingress
	if err := n.c.Get(ctx, stableKey, &stable); err != nil {
		return fmt.Errorf("set routes on ingress %s: read stable ingress: %w", key, err)
	}
	want, err := canaryIngress(&stable, r)
	if err != nil {
		return fmt.Errorf("set routes on ingress %s: %w", key, err)
	}
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var cur networkingv1.Ingress
		err := n.c.Get(ctx, key, &cur)
		if isNotFound(err) {
			ing := &networkingv1.Ingress{
				ObjectMeta: metav1.ObjectMeta{
					Namespace: key.Namespace, Name: key.Name, Annotations: want.annotations,
					OwnerReferences: []metav1.OwnerReference{*ownerRef(ro)},
				},
				Spec: want.spec,
			}
			return n.c.Create(ctx, ing)
		}
		if err != nil {
			return err
		}
		if err := checkOwner(&cur, ro); err != nil {
			return err
		}
		before := cur.DeepCopy()
		ann := map[string]string{}
		for k, v := range cur.Annotations {
			if !strings.HasPrefix(k, nginxAnnotationPrefix) && k != headerRouteAnnotation && k != ingressClassAnnotation {
				ann[k] = v
			}
		}
		for k, v := range want.annotations {
			ann[k] = v
		}
		cur.Annotations = ann
		cur.Spec = want.spec
		if equality.Semantic.DeepEqual(before, &cur) {
			return nil
		}
		return n.c.Update(ctx, &cur)
	})
	if err != nil {
		return fmt.Errorf("set routes on ingress %s: %w", key, err)
	}
	return nil
}

// desiredIngress is what ramp sets on the canary Ingress.
type desiredIngress struct {
	annotations map[string]string
	spec        networkingv1.IngressSpec
}

// canaryIngress derives the canary Ingress from the stable one.
func canaryIngress(stable *networkingv1.Ingress, r Routes) (desiredIngress, error) {
	if stable.Annotations[nginxCanary] == "true" {
		return desiredIngress{}, fmt.Errorf("stable ingress %s is itself a canary ingress", stable.Name)
	}
	spec := networkingv1.IngressSpec{IngressClassName: stable.Spec.IngressClassName, TLS: stable.Spec.TLS}
	toCanary := func(b *networkingv1.IngressBackend) *networkingv1.IngressBackend {
		if b == nil || b.Service == nil || b.Service.Name != r.StableService {
			return nil
		}
		c := b.DeepCopy()
		c.Service.Name = r.CanaryService
		return c
	}
	paths := 0
	if b := toCanary(stable.Spec.DefaultBackend); b != nil {
		spec.DefaultBackend = b
		paths++
	}
	for _, rule := range stable.Spec.Rules {
		if rule.HTTP == nil {
			continue
		}
		cr := networkingv1.IngressRule{Host: rule.Host, IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{}}}
		for _, p := range rule.HTTP.Paths {
			if b := toCanary(&p.Backend); b != nil {
				p.Backend = *b
				cr.HTTP.Paths = append(cr.HTTP.Paths, p)
			}
		}
		if len(cr.HTTP.Paths) > 0 {
			spec.Rules = append(spec.Rules, cr)
			paths += len(cr.HTTP.Paths)
		}
	}
	if paths == 0 {
		return desiredIngress{}, fmt.Errorf("stable ingress %s has no backend to stable Service %q", stable.Name, r.StableService)
	}
	ann := map[string]string{
		nginxCanary: "true",
		nginxWeight: strconv.Itoa(int(r.CanaryWeight)),
	}
	if v, ok := stable.Annotations[ingressClassAnnotation]; ok {
		ann[ingressClassAnnotation] = v
	}
	hrs := activeHeaderRoutes(r.HeaderRoutes)
	switch {
	case len(hrs) > 1:
		return desiredIngress{}, fmt.Errorf("%d header routes; nginx supports one", len(hrs))
	case len(hrs) == 1:
		hr := hrs[0]
		if len(hr.Match) != 1 {
			return desiredIngress{}, fmt.Errorf("header route %q has %d headers; nginx matches one", hr.Name, len(hr.Match))
		}
		m := hr.Match[0]
		ann[headerRouteAnnotation] = hr.Name
		ann[nginxByHeader] = m.HeaderName
		switch {
		case m.HeaderValue.Regex != "":
			ann[nginxByHeaderPattern] = m.HeaderValue.Regex
		case m.HeaderValue.Prefix != "":
			return desiredIngress{}, fmt.Errorf("header route %q: nginx cannot match header %s by prefix", hr.Name, m.HeaderName)
		default:
			ann[nginxByHeaderValue] = m.HeaderValue.Exact
		}
	}
	return desiredIngress{annotations: ann, spec: spec}, nil
}

// ObservedRoutes reads the canary Ingress; a missing one (or one NGINX does not take as a
// canary) sends nothing to the canary. The canary Service is the one its backends name.
func (n *Nginx) ObservedRoutes(ctx context.Context, ro *v1alpha1.Rollout) (Routes, error) {
	c, _, key, err := n.config(ro)
	if err != nil {
		return Routes{}, err
	}
	out := specRoutes(c)
	var ing networkingv1.Ingress
	err = n.c.Get(ctx, key, &ing)
	if isNotFound(err) {
		return out, nil
	}
	if err != nil {
		return Routes{}, fmt.Errorf("read routes of ingress %s: %w", key, err)
	}
	if svc := firstBackendService(&ing); svc != "" {
		out.CanaryService = svc
	}
	a := ing.Annotations
	if a[nginxCanary] != "true" {
		return out, nil
	}
	if w, err := strconv.Atoi(a[nginxWeight]); err == nil {
		total := 100
		if t, err := strconv.Atoi(a[nginxWeightTotal]); err == nil && t > 0 {
			total = t
		}
		out.CanaryWeight = int32(min(max(w*100/total, 0), 100))
	}
	if h := a[nginxByHeader]; h != "" {
		m := v1alpha1.HeaderMatch{HeaderName: h}
		switch {
		case a[nginxByHeaderPattern] != "" && a[nginxByHeaderValue] == "":
			m.HeaderValue.Regex = a[nginxByHeaderPattern]
		case a[nginxByHeaderValue] != "":
			m.HeaderValue.Exact = a[nginxByHeaderValue]
		default:
			m.HeaderValue.Exact = "always" // NGINX's rule for canary-by-header alone
		}
		out.HeaderRoutes = []v1alpha1.SetHeaderRoute{{Name: a[headerRouteAnnotation], Match: []v1alpha1.HeaderMatch{m}}}
	}
	return out, nil
}

// firstBackendService names the Service an Ingress sends its first path (or default) to.
func firstBackendService(ing *networkingv1.Ingress) string {
	for _, rule := range ing.Spec.Rules {
		if rule.HTTP != nil {
			for _, p := range rule.HTTP.Paths {
				if p.Backend.Service != nil {
					return p.Backend.Service.Name
				}
			}
		}
	}
	if b := ing.Spec.DefaultBackend; b != nil && b.Service != nil {
		return b.Service.Name
	}
	return ""
}
