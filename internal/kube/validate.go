package kube

import (
	"fmt"
	"slices"
	"strings"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/spec"
)

// Validate reports every problem with a Rollout in Kubernetes mode: the checks of local mode
// (spec.ValidateRollout), then what only the cluster side knows: a workloadRef is required,
// the traffic router must be registered, and header routes need a router that can express
// them (spec checks what each named router can express).
func Validate(ro *v1alpha1.Rollout) spec.Errors {
	errs := spec.ValidateRollout(ro)
	if ro.Spec.WorkloadRef == nil {
		// The template problems are local mode's; the missing workloadRef is the one to fix.
		errs = slices.DeleteFunc(errs, func(e *spec.FieldError) bool { return strings.HasPrefix(e.Path, "spec.template") })
		errs = append(errs, &spec.FieldError{Path: "spec.workloadRef", Msg: "is required in Kubernetes mode: name the Deployment whose pod template this rollout ships"})
	}
	c := ro.Spec.Strategy.Canary
	if c == nil {
		return errs
	}
	name := RouterName(ro)
	if name == "" {
		name = "service"
	}
	router, err := NewRouter(name, nil)
	if err != nil {
		return append(errs, &spec.FieldError{Path: "spec.strategy.canary.trafficRouting", Msg: err.Error()})
	}
	// spec.ValidateRollout already judges the named routers' header matches.
	if name == "service" && !router.SupportsHeaderRoutes() {
		for i, st := range c.Steps {
			if st.SetHeaderRoute != nil {
				errs = append(errs, &spec.FieldError{
					Path: fmt.Sprintf("spec.strategy.canary.steps[%d].setHeaderRoute", i),
					Msg:  fmt.Sprintf("cannot be done by the %s router, which cannot route by header; use trafficRouting gatewayAPI, istio or nginx", routerTitle(name)),
				})
			}
		}
	}
	return errs
}

func routerTitle(name string) string {
	if name == "service" {
		return "service (plain Service selectors)"
	}
	return name
}
