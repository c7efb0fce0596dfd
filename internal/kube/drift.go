package kube

import (
	"fmt"
	"slices"
	"strings"

	"ramp.dev/ramp/api/v1alpha1"
)

// Drift says how the routes a traffic layer shows (got, from ObservedRoutes) differ from the
// routes ramp set (want), for a log line or an event: "" when they agree. Header names compare
// without case and the headers of one route in any order, as every router matches them so;
// header routes without matches in want count as removed.
func Drift(want, got Routes) string {
	var diffs []string
	if want.StableService != got.StableService {
		diffs = append(diffs, fmt.Sprintf("stableService: want %q, got %q", want.StableService, got.StableService))
	}
	if want.CanaryService != got.CanaryService {
		diffs = append(diffs, fmt.Sprintf("canaryService: want %q, got %q", want.CanaryService, got.CanaryService))
	}
	if want.CanaryWeight != got.CanaryWeight {
		diffs = append(diffs, fmt.Sprintf("canaryWeight: want %d, got %d", want.CanaryWeight, got.CanaryWeight))
	}
	if want.MirrorPercent != got.MirrorPercent {
		diffs = append(diffs, fmt.Sprintf("mirror: want %d%%, got %d%%", want.MirrorPercent, got.MirrorPercent))
	}
	w, g := formatHeaderRoutes(want.HeaderRoutes), formatHeaderRoutes(got.HeaderRoutes)
	if w != g {
		diffs = append(diffs, fmt.Sprintf("headerRoutes: want [%s], got [%s]", w, g))
	}
	return strings.Join(diffs, "; ")
}

// formatHeaderRoutes renders active header routes in a canonical form, e.g.
// `testers{x-version=canary}, beta{x-beta~^y}`.
func formatHeaderRoutes(hrs []v1alpha1.SetHeaderRoute) string {
	var routes []string
	for _, hr := range activeHeaderRoutes(hrs) {
		var ms []string
		for _, m := range hr.Match {
			name := strings.ToLower(m.HeaderName)
			v := m.HeaderValue
			switch {
			case v.Regex != "":
				ms = append(ms, fmt.Sprintf("%s~%q", name, v.Regex))
			case v.Prefix != "":
				ms = append(ms, fmt.Sprintf("%s^=%q", name, v.Prefix))
			default:
				ms = append(ms, fmt.Sprintf("%s=%q", name, v.Exact))
			}
		}
		slices.Sort(ms)
		routes = append(routes, hr.Name+"{"+strings.Join(ms, ", ")+"}")
	}
	return strings.Join(routes, ", ")
}
