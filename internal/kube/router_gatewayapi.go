package kube

import (
	"context"
	"fmt"
	"slices"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/spec"
)

// httpRouteGVK is the Gateway API HTTPRoute kind ramp edits.
var httpRouteGVK = schema.GroupVersionKind{Group: "gateway.networking.k8s.io", Version: "v1", Kind: "HTTPRoute"}

// GatewayAPI routes through a Gateway API HTTPRoute (spec.strategy.canary.trafficRouting.
// gatewayAPI.httpRoute). Every rule with a backendRef to the stable Service is weighed: the
// stable ref gets 100-w, the canary ref w (added beside the stable ref when missing). A rule
// with a backendRef to another Service as well is an error; rules without the stable Service
// are left alone. Each header route becomes a rule named after it, ahead of the others, with
// the weighed rules' matches plus the route's headers, sending to the canary Service only.
// While the canary is mirrored, each weighed rule also has a RequestMirror filter to the
// canary Service with percent (standard since Gateway API v1.3), which copies that share of
// all the rule's requests, those weighed to the canary included.
type GatewayAPI struct {
	c client.Client
}

var _ Router = (*GatewayAPI)(nil)

// NewGatewayAPI returns the Gateway API router working through c.
func NewGatewayAPI(c client.Client) *GatewayAPI { return &GatewayAPI{c: c} }

func (g *GatewayAPI) config(ro *v1alpha1.Rollout) (*v1alpha1.CanaryStrategy, *v1alpha1.TrafficRouting, types.NamespacedName, error) {
	c, tr, err := trafficRouting(ro)
	if err != nil {
		return nil, nil, types.NamespacedName{}, err
	}
	if tr.GatewayAPI == nil || tr.GatewayAPI.HTTPRoute == "" {
		return nil, nil, types.NamespacedName{}, fmt.Errorf("rollout %s: spec.strategy.canary.trafficRouting.gatewayAPI.httpRoute: %w", ro.Name, errNoRouting)
	}
	return c, tr, types.NamespacedName{Namespace: ro.Namespace, Name: tr.GatewayAPI.HTTPRoute}, nil
}

// SetRoutes weighs the HTTPRoute's rules and puts the header routes ahead of them.
func (g *GatewayAPI) SetRoutes(ctx context.Context, ro *v1alpha1.Rollout, r Routes) error {
	_, tr, key, err := g.config(ro)
	if err != nil {
		return err
	}
	if err := checkWeight(r.CanaryWeight); err != nil {
		return fmt.Errorf("set routes on httproute %s: %w", key, err)
	}
	if err := checkMirror(r, spec.RouterGatewayAPI); err != nil {
		return fmt.Errorf("set routes on httproute %s: %w", key, err)
	}
	managed := managedRouteNames(tr)
	hrs := activeHeaderRoutes(r.HeaderRoutes)
	for _, hr := range hrs {
		if !managed[hr.Name] {
			return fmt.Errorf("set routes on httproute %s: header route %q is not in trafficRouting.managedRoutes", key, hr.Name)
		}
	}
	u, err := mutateUnstructured(ctx, g.c, httpRouteGVK, key, func(u *unstructured.Unstructured) error {
		return setHTTPRouteRules(u, r, hrs, managed)
	})
	if err != nil {
		return fmt.Errorf("set routes on httproute %s: %w", key, err)
	}
	// An HTTPRoute CRD without rule names drops them; ramp would then lose track of its rules.
	if got := len(managedRules(u, managed)); got != len(hrs) {
		return fmt.Errorf("set routes on httproute %s: %d of %d header rules kept their rules[].name; the installed HTTPRoute CRD must have rule names (Gateway API v1.2 or later)", key, got, len(hrs))
	}
	// One without requestMirror.percent drops it, and would mirror every request.
	if r.MirrorPercent > 0 {
		rules, _, _ := unstructured.NestedSlice(u.Object, "spec", "rules")
		for i, rv := range rules {
			rule := asMap(rv)
			if managed[asString(rule["name"])] || !slices.ContainsFunc(asSlice(rule["backendRefs"]), func(ref any) bool { return asString(asMap(ref)["name"]) == r.StableService }) {
				continue
			}
			if got := requestMirrorPercent(rule, r.CanaryService, key.Namespace); got != r.MirrorPercent {
				return fmt.Errorf("set routes on httproute %s: rules[%d] mirrors %d%% to the canary as stored, not %d%%; the installed HTTPRoute CRD must have requestMirror.percent (Gateway API v1.3 or later)", key, i, got, r.MirrorPercent)
			}
		}
	}
	return nil
}

// setHTTPRouteRules rewrites spec.rules of an HTTPRoute as SetRoutes says.
func setHTTPRouteRules(u *unstructured.Unstructured, r Routes, hrs []v1alpha1.SetHeaderRoute, managed map[string]bool) error {
	rules, _, err := unstructured.NestedSlice(u.Object, "spec", "rules")
	if err != nil {
		return err
	}
	var kept, matches []any
	var canaryRef map[string]any
	weighed := 0
	for i, rv := range rules {
		rule := asMap(rv)
		if managed[asString(rule["name"])] {
			continue // ramp's own header rule: made again below
		}
		refs := asSlice(rule["backendRefs"])
		si, ci := -1, -1
		for j, ref := range refs {
			switch asString(asMap(ref)["name"]) {
			case r.StableService:
				si = j
			case r.CanaryService:
				ci = j
			}
		}
		if si < 0 && ci < 0 {
			kept = append(kept, rule)
			continue
		}
		if si < 0 {
			return fmt.Errorf("rules[%d] has a backendRef to canary Service %q but none to stable Service %q", i, r.CanaryService, r.StableService)
		}
		for j, ref := range refs {
			if j != si && j != ci {
				return fmt.Errorf("rules[%d].backendRefs[%d]: Service %q is neither the stable (%q) nor the canary (%q) Service", i, j, asString(asMap(ref)["name"]), r.StableService, r.CanaryService)
			}
		}
		if ci < 0 {
			cr := runtime.DeepCopyJSONValue(refs[si]).(map[string]any)
			cr["name"] = r.CanaryService
			refs = append(refs, cr)
			ci = len(refs) - 1
		}
		asMap(refs[si])["weight"] = int64(100 - r.CanaryWeight)
		asMap(refs[ci])["weight"] = int64(r.CanaryWeight)
		rule["backendRefs"] = refs
		setRequestMirror(rule, r, u.GetNamespace(), asMap(refs[ci]))
		if canaryRef == nil {
			canaryRef = runtime.DeepCopyJSONValue(refs[ci]).(map[string]any)
			// The header rule's only backend; the weight is the one the API server defaults
			// to, so that setting the same routes again finds nothing to write.
			canaryRef["weight"] = int64(1)
		}
		ms := asSlice(rule["matches"])
		if len(ms) == 0 {
			ms = []any{map[string]any{}}
		}
		matches = append(matches, ms...)
		weighed++
		kept = append(kept, rule)
	}
	if weighed == 0 {
		return fmt.Errorf("no rule has a backendRef to stable Service %q", r.StableService)
	}
	var out []any
	for _, hr := range hrs {
		var ms []any
		for _, m := range matches {
			mm := runtime.DeepCopyJSONValue(m).(map[string]any)
			headers := asSlice(mm["headers"])
			for _, hm := range hr.Match {
				h := map[string]any{"name": hm.HeaderName, "type": "Exact", "value": hm.HeaderValue.Exact}
				switch {
				case hm.HeaderValue.Regex != "":
					h["type"], h["value"] = "RegularExpression", hm.HeaderValue.Regex
				case hm.HeaderValue.Prefix != "":
					return fmt.Errorf("header route %q: an HTTPRoute cannot match header %s by prefix", hr.Name, hm.HeaderName)
				}
				headers = append(headers, h)
			}
			mm["headers"] = headers
			ms = append(ms, mm)
		}
		out = append(out, map[string]any{
			"name":        hr.Name,
			"matches":     ms,
			"backendRefs": []any{runtime.DeepCopyJSONValue(canaryRef)},
		})
	}
	return unstructured.SetNestedSlice(u.Object, append(out, kept...), "spec", "rules")
}

// isCanaryMirror says whether the filter f is ramp's: a RequestMirror to the canary Service.
func isCanaryMirror(f map[string]any, canary, ns string) bool {
	if asString(f["type"]) != "RequestMirror" {
		return false
	}
	ref := asMap(asMap(f["requestMirror"])["backendRef"])
	kind, refNS := asString(ref["kind"]), asString(ref["namespace"])
	return asString(ref["name"]) == canary && asString(ref["group"]) == "" && (kind == "" || kind == "Service") && (refNS == "" || refNS == ns)
}

// setRequestMirror gives a weighed rule ramp's RequestMirror filter, copying r.MirrorPercent
// percent of its requests to the canary backendRef canaryRef, or takes it away. The rule's
// other filters stay.
func setRequestMirror(rule map[string]any, r Routes, ns string, canaryRef map[string]any) {
	filters := asSlice(rule["filters"])
	var kept []any
	found := false
	for _, fv := range filters {
		f := asMap(fv)
		if !isCanaryMirror(f, r.CanaryService, ns) {
			kept = append(kept, fv)
			continue
		}
		if r.MirrorPercent == 0 || found {
			continue // taken away (or a second one)
		}
		found = true
		rm := asMap(f["requestMirror"])
		rm["percent"] = int64(r.MirrorPercent)
		delete(rm, "fraction") // the API allows one of percent and fraction
		kept = append(kept, f)
	}
	if r.MirrorPercent > 0 && !found {
		ref := map[string]any{}
		for _, k := range []string{"group", "kind", "name", "namespace", "port"} {
			if v, ok := canaryRef[k]; ok {
				ref[k] = runtime.DeepCopyJSONValue(v)
			}
		}
		kept = append(kept, map[string]any{"type": "RequestMirror", "requestMirror": map[string]any{"backendRef": ref, "percent": int64(r.MirrorPercent)}})
	}
	switch {
	case len(kept) > 0:
		rule["filters"] = kept
	case len(filters) > 0:
		delete(rule, "filters")
	}
}

// requestMirrorPercent is the percent of a rule's requests its RequestMirror filter to the
// canary Service copies: percent, else fraction, else the API's default of 100; 0 when it
// has none.
func requestMirrorPercent(rule map[string]any, canary, ns string) int32 {
	for _, fv := range asSlice(rule["filters"]) {
		f := asMap(fv)
		if !isCanaryMirror(f, canary, ns) {
			continue
		}
		rm := asMap(f["requestMirror"])
		if p, ok := asInt(rm["percent"]); ok {
			return int32(p)
		}
		if fr := asMap(rm["fraction"]); fr != nil {
			num, _ := asInt(fr["numerator"])
			den, ok := asInt(fr["denominator"])
			if !ok {
				den = 100
			}
			if den > 0 {
				return int32(num * 100 / den)
			}
		}
		return 100
	}
	return 0
}

// managedRules returns ramp's header rules of an HTTPRoute, in order.
func managedRules(u *unstructured.Unstructured, managed map[string]bool) []map[string]any {
	rules, _, _ := unstructured.NestedSlice(u.Object, "spec", "rules")
	var out []map[string]any
	for _, rv := range rules {
		if rule := asMap(rv); managed[asString(rule["name"])] {
			out = append(out, rule)
		}
	}
	return out
}

// ObservedRoutes reads the canary weight off the weighed rules (an error when they disagree)
// and the header routes off ramp's named rules.
func (g *GatewayAPI) ObservedRoutes(ctx context.Context, ro *v1alpha1.Rollout) (Routes, error) {
	c, tr, key, err := g.config(ro)
	if err != nil {
		return Routes{}, err
	}
	u, err := getUnstructured(ctx, g.c, httpRouteGVK, key)
	if err != nil {
		return Routes{}, fmt.Errorf("read routes of httproute %s: %w", key, err)
	}
	out := specRoutes(c)
	managed := managedRouteNames(tr)
	rules, _, _ := unstructured.NestedSlice(u.Object, "spec", "rules")
	first := -1
	var base map[string]bool // header names the first weighed rule's first match has itself
	for i, rv := range rules {
		rule := asMap(rv)
		if managed[asString(rule["name"])] {
			continue
		}
		var sw, cw int64 = -1, 0
		for _, ref := range asSlice(rule["backendRefs"]) {
			w, ok := asInt(asMap(ref)["weight"])
			if !ok {
				w = 1 // the Gateway API default
			}
			switch asString(asMap(ref)["name"]) {
			case out.StableService:
				sw = w
			case out.CanaryService:
				cw = w
			}
		}
		if sw < 0 {
			continue
		}
		pct := int32(0)
		if sw+cw > 0 {
			pct = int32(cw * 100 / (sw + cw))
		}
		mirror := requestMirrorPercent(rule, out.CanaryService, ro.Namespace)
		if first < 0 {
			first, out.CanaryWeight, out.MirrorPercent = i, pct, mirror
			base = map[string]bool{}
			if ms := asSlice(rule["matches"]); len(ms) > 0 {
				for _, h := range asSlice(asMap(ms[0])["headers"]) {
					base[asString(asMap(h)["name"])] = true
				}
			}
		} else if pct != out.CanaryWeight {
			return Routes{}, fmt.Errorf("read routes of httproute %s: rules[%d] sends %d%% to the canary but rules[%d] %d%%", key, first, out.CanaryWeight, i, pct)
		} else if mirror != out.MirrorPercent {
			return Routes{}, fmt.Errorf("read routes of httproute %s: rules[%d] mirrors %d%% to the canary but rules[%d] %d%%", key, first, out.MirrorPercent, i, mirror)
		}
	}
	if first < 0 {
		return Routes{}, fmt.Errorf("read routes of httproute %s: no rule has a backendRef to stable Service %q", key, out.StableService)
	}
	for _, rule := range managedRules(u, managed) {
		refs := asSlice(rule["backendRefs"])
		if len(refs) != 1 || asString(asMap(refs[0])["name"]) != out.CanaryService {
			continue // a header rule that does not send to the canary is no header route
		}
		hr := v1alpha1.SetHeaderRoute{Name: asString(rule["name"])}
		if ms := asSlice(rule["matches"]); len(ms) > 0 {
			for _, h := range asSlice(asMap(ms[0])["headers"]) {
				hm := asMap(h)
				name := asString(hm["name"])
				if base[name] {
					continue
				}
				m := v1alpha1.HeaderMatch{HeaderName: name}
				if asString(hm["type"]) == "RegularExpression" {
					m.HeaderValue.Regex = asString(hm["value"])
				} else {
					m.HeaderValue.Exact = asString(hm["value"])
				}
				hr.Match = append(hr.Match, m)
			}
		}
		out.HeaderRoutes = append(out.HeaderRoutes, hr)
	}
	return out, nil
}
