package kube

import (
	"context"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/spec"
)

// virtualServiceGVKs are the VirtualService versions ramp speaks, in the order it tries them:
// v1beta1 is served by every Istio since 1.5, v1 by Istio 1.22 and later.
var virtualServiceGVKs = []schema.GroupVersionKind{
	{Group: "networking.istio.io", Version: "v1beta1", Kind: "VirtualService"},
	{Group: "networking.istio.io", Version: "v1", Kind: "VirtualService"},
}

// Istio routes through an Istio VirtualService (spec.strategy.canary.trafficRouting.istio).
// The named http routes (or the only one) are weighed: their destinations must be the stable
// and canary Services (host "svc", "svc.ns" or "svc.ns.svc.<domain>"); the canary destination
// is added beside the stable one when missing. Each header route becomes an http route named
// after it, ahead of all others (Istio takes the first match), with the weighed routes'
// matches plus the route's headers, sending all its traffic to the canary. While the canary
// is mirrored, each weighed route also has mirror (the canary destination) and
// mirrorPercentage; Istio copies that share of all the route's requests, those weighed to
// the canary included.
type Istio struct {
	c client.Client
}

var _ Router = (*Istio)(nil)

// NewIstio returns the Istio router working through c.
func NewIstio(c client.Client) *Istio { return &Istio{c: c} }

func (i *Istio) config(ro *v1alpha1.Rollout) (*v1alpha1.CanaryStrategy, *v1alpha1.TrafficRouting, types.NamespacedName, error) {
	c, tr, err := trafficRouting(ro)
	if err != nil {
		return nil, nil, types.NamespacedName{}, err
	}
	if tr.Istio == nil || tr.Istio.VirtualService.Name == "" {
		return nil, nil, types.NamespacedName{}, fmt.Errorf("rollout %s: spec.strategy.canary.trafficRouting.istio.virtualService.name: %w", ro.Name, errNoRouting)
	}
	return c, tr, types.NamespacedName{Namespace: ro.Namespace, Name: tr.Istio.VirtualService.Name}, nil
}

// withVersion runs fn with the first VirtualService version the cluster serves.
func withVersion(fn func(gvk schema.GroupVersionKind) error) error {
	var err error
	for _, gvk := range virtualServiceGVKs {
		if err = fn(gvk); !meta.IsNoMatchError(err) {
			return err
		}
	}
	return err
}

// SetRoutes weighs the VirtualService's routes and puts the header routes ahead of them.
func (i *Istio) SetRoutes(ctx context.Context, ro *v1alpha1.Rollout, r Routes) error {
	_, tr, key, err := i.config(ro)
	if err != nil {
		return err
	}
	if err := checkWeight(r.CanaryWeight); err != nil {
		return fmt.Errorf("set routes on virtualservice %s: %w", key, err)
	}
	if err := checkMirror(r, spec.RouterIstio); err != nil {
		return fmt.Errorf("set routes on virtualservice %s: %w", key, err)
	}
	managed := managedRouteNames(tr)
	hrs := activeHeaderRoutes(r.HeaderRoutes)
	for _, hr := range hrs {
		if !managed[hr.Name] {
			return fmt.Errorf("set routes on virtualservice %s: header route %q is not in trafficRouting.managedRoutes", key, hr.Name)
		}
	}
	err = withVersion(func(gvk schema.GroupVersionKind) error {
		_, err := mutateUnstructured(ctx, i.c, gvk, key, func(u *unstructured.Unstructured) error {
			return setVirtualServiceRoutes(u, ro.Namespace, tr.Istio.VirtualService.Routes, r, hrs, managed)
		})
		return err
	})
	if err != nil {
		return fmt.Errorf("set routes on virtualservice %s: %w", key, err)
	}
	return nil
}

// hostIs says whether a destination host names Service svc in namespace ns.
func hostIs(host, svc, ns string) bool {
	return host == svc || host == svc+"."+ns || strings.HasPrefix(host, svc+"."+ns+".svc")
}

// weighedRoutes returns the indexes of the http routes to weigh: those named, or else the only
// route that is not ramp's.
func weighedRoutes(http []any, names []string, managed map[string]bool) ([]int, error) {
	var idx, own []int
	found := map[string]bool{}
	for j, hv := range http {
		name := asString(asMap(hv)["name"])
		if managed[name] {
			continue
		}
		own = append(own, j)
		if slices.Contains(names, name) {
			idx = append(idx, j)
			found[name] = true
		}
	}
	if len(names) == 0 {
		if len(own) != 1 {
			return nil, fmt.Errorf("has %d http routes; name the ones to weigh in spec.strategy.canary.trafficRouting.istio.virtualService.routes", len(own))
		}
		return own, nil
	}
	for _, n := range names {
		if !found[n] {
			return nil, fmt.Errorf("has no http route named %q", n)
		}
	}
	return idx, nil
}

// setVirtualServiceRoutes rewrites spec.http of a VirtualService as SetRoutes says.
func setVirtualServiceRoutes(u *unstructured.Unstructured, ns string, names []string, r Routes, hrs []v1alpha1.SetHeaderRoute, managed map[string]bool) error {
	http, _, err := unstructured.NestedSlice(u.Object, "spec", "http")
	if err != nil {
		return err
	}
	idx, err := weighedRoutes(http, names, managed)
	if err != nil {
		return err
	}
	var matches []any
	var canaryDest map[string]any
	for _, j := range idx {
		h := asMap(http[j])
		dests := asSlice(h["route"])
		si, ci := -1, -1
		for k, d := range dests {
			host := asString(asMap(asMap(d)["destination"])["host"])
			switch {
			case hostIs(host, r.StableService, ns):
				si = k
			case hostIs(host, r.CanaryService, ns):
				ci = k
			default:
				return fmt.Errorf("http[%d].route[%d]: host %q is neither the stable (%q) nor the canary (%q) Service", j, k, host, r.StableService, r.CanaryService)
			}
		}
		if si < 0 {
			return fmt.Errorf("http[%d] has no destination to stable Service %q", j, r.StableService)
		}
		if ci < 0 {
			cd := runtime.DeepCopyJSONValue(dests[si]).(map[string]any)
			dest := asMap(cd["destination"])
			dest["host"] = r.CanaryService
			delete(dest, "subset")
			dests = append(dests, cd)
			ci = len(dests) - 1
		}
		asMap(dests[si])["weight"] = int64(100 - r.CanaryWeight)
		asMap(dests[ci])["weight"] = int64(r.CanaryWeight)
		h["route"] = dests
		if err := setIstioMirror(h, j, r, ns, asMap(asMap(dests[ci])["destination"])); err != nil {
			return err
		}
		if canaryDest == nil {
			canaryDest = runtime.DeepCopyJSONValue(asMap(dests[ci])["destination"]).(map[string]any)
		}
		ms := asSlice(h["match"])
		if len(ms) == 0 {
			ms = []any{map[string]any{}}
		}
		matches = append(matches, ms...)
	}
	var out []any
	for _, hr := range hrs {
		var ms []any
		for _, m := range matches {
			mm := runtime.DeepCopyJSONValue(m).(map[string]any)
			headers := asMap(mm["headers"])
			if headers == nil {
				headers = map[string]any{}
			}
			for _, hm := range hr.Match {
				v := hm.HeaderValue
				sm := map[string]any{"exact": v.Exact}
				switch {
				case v.Regex != "":
					sm = map[string]any{"regex": v.Regex}
				case v.Prefix != "":
					sm = map[string]any{"prefix": v.Prefix}
				}
				headers[strings.ToLower(hm.HeaderName)] = sm // Istio wants header names in lower case
			}
			mm["headers"] = headers
			ms = append(ms, mm)
		}
		out = append(out, map[string]any{
			"name":  hr.Name,
			"match": ms,
			"route": []any{map[string]any{"destination": runtime.DeepCopyJSONValue(canaryDest), "weight": int64(100)}},
		})
	}
	for _, hv := range http {
		if !managed[asString(asMap(hv)["name"])] {
			out = append(out, hv)
		}
	}
	return unstructured.SetNestedSlice(u.Object, out, "spec", "http")
}

// setIstioMirror sets ramp's mirror on the weighed http route h (http[j]): r.MirrorPercent
// percent of its requests copied to the canary destination, or none. A mirror the route
// has to another host is the user's: it stays, and ramp will not replace it.
func setIstioMirror(h map[string]any, j int, r Routes, ns string, canary map[string]any) error {
	m := asMap(h["mirror"])
	ours := m != nil && hostIs(asString(m["host"]), r.CanaryService, ns)
	if m != nil && !ours || h["mirrors"] != nil {
		if r.MirrorPercent > 0 {
			return fmt.Errorf("http[%d] has a mirror of its own; ramp mirrors to canary Service %q only on a route without mirror or mirrors", j, r.CanaryService)
		}
		return nil
	}
	if r.MirrorPercent == 0 {
		if ours {
			for _, k := range []string{"mirror", "mirrorPercentage", "mirrorPercent", "mirror_percent"} {
				delete(h, k)
			}
		}
		return nil
	}
	h["mirror"] = runtime.DeepCopyJSONValue(canary)
	h["mirrorPercentage"] = map[string]any{"value": int64(r.MirrorPercent)}
	delete(h, "mirrorPercent") // deprecated forms, which mirrorPercentage replaces
	delete(h, "mirror_percent")
	return nil
}

// istioMirrorPercent is the percent of the http route h's requests it copies to the canary
// Service: mirrorPercentage (rounded), else the deprecated mirrorPercent, else Istio's
// default of 100; 0 when it mirrors elsewhere or not at all.
func istioMirrorPercent(h map[string]any, canary, ns string) int32 {
	if m := asMap(h["mirror"]); m == nil || !hostIs(asString(m["host"]), canary, ns) {
		return 0
	}
	if mp, ok := h["mirrorPercentage"]; ok {
		v, _ := asNumber(asMap(mp)["value"])
		return int32(math.Round(v))
	}
	for _, k := range []string{"mirrorPercent", "mirror_percent"} {
		if v, ok := asInt(h[k]); ok {
			return int32(v)
		}
	}
	return 100
}

// ObservedRoutes reads the canary weight off the weighed routes (an error when they disagree)
// and the header routes off ramp's named routes.
func (i *Istio) ObservedRoutes(ctx context.Context, ro *v1alpha1.Rollout) (Routes, error) {
	c, tr, key, err := i.config(ro)
	if err != nil {
		return Routes{}, err
	}
	var u *unstructured.Unstructured
	err = withVersion(func(gvk schema.GroupVersionKind) error {
		u, err = getUnstructured(ctx, i.c, gvk, key)
		return err
	})
	if err != nil {
		return Routes{}, fmt.Errorf("read routes of virtualservice %s: %w", key, err)
	}
	out := specRoutes(c)
	managed := managedRouteNames(tr)
	http, _, _ := unstructured.NestedSlice(u.Object, "spec", "http")
	idx, err := weighedRoutes(http, tr.Istio.VirtualService.Routes, managed)
	if err != nil {
		return Routes{}, fmt.Errorf("read routes of virtualservice %s: %w", key, err)
	}
	base := map[string]bool{}
	for n, j := range idx {
		h := asMap(http[j])
		dests := asSlice(h["route"])
		var sw, cw int64
		for _, d := range dests {
			w, ok := asInt(asMap(d)["weight"])
			if !ok && len(dests) == 1 {
				w = 100 // Istio's default for a lone destination
			}
			host := asString(asMap(asMap(d)["destination"])["host"])
			switch {
			case hostIs(host, out.StableService, ro.Namespace):
				sw += w
			case hostIs(host, out.CanaryService, ro.Namespace):
				cw += w
			}
		}
		pct := int32(0)
		if sw+cw > 0 {
			pct = int32(cw * 100 / (sw + cw))
		}
		mirror := istioMirrorPercent(h, out.CanaryService, ro.Namespace)
		if n == 0 {
			out.CanaryWeight, out.MirrorPercent = pct, mirror
			if ms := asSlice(h["match"]); len(ms) > 0 {
				for name := range asMap(asMap(ms[0])["headers"]) {
					base[name] = true
				}
			}
		} else if pct != out.CanaryWeight {
			return Routes{}, fmt.Errorf("read routes of virtualservice %s: http[%d] sends %d%% to the canary but http[%d] %d%%", key, idx[0], out.CanaryWeight, j, pct)
		} else if mirror != out.MirrorPercent {
			return Routes{}, fmt.Errorf("read routes of virtualservice %s: http[%d] mirrors %d%% to the canary but http[%d] %d%%", key, idx[0], out.MirrorPercent, j, mirror)
		}
	}
	for _, hv := range http {
		h := asMap(hv)
		if !managed[asString(h["name"])] {
			continue
		}
		dests := asSlice(h["route"])
		if len(dests) != 1 || !hostIs(asString(asMap(asMap(dests[0])["destination"])["host"]), out.CanaryService, ro.Namespace) {
			continue // a header route that does not send to the canary is no header route
		}
		hr := v1alpha1.SetHeaderRoute{Name: asString(h["name"])}
		if ms := asSlice(h["match"]); len(ms) > 0 {
			headers := asMap(asMap(ms[0])["headers"])
			for _, name := range slices.Sorted(maps.Keys(headers)) {
				if base[name] {
					continue
				}
				sm := asMap(headers[name])
				hr.Match = append(hr.Match, v1alpha1.HeaderMatch{HeaderName: name, HeaderValue: v1alpha1.StringMatch{
					Exact: asString(sm["exact"]), Prefix: asString(sm["prefix"]), Regex: asString(sm["regex"]),
				}})
			}
		}
		out.HeaderRoutes = append(out.HeaderRoutes, hr)
	}
	return out, nil
}
