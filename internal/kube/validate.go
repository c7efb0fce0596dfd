package kube

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/types"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/spec"
)

// Validate reports every problem with a Rollout in Kubernetes mode: the checks of local mode
// (spec.ValidateRollout), then what only the cluster side knows: a workloadRef is required,
// and the traffic router must be implemented here (spec checks what each router can do).
func Validate(ro *v1alpha1.Rollout) spec.Errors {
	errs := spec.ValidateRollout(ro)
	if ro.Spec.WorkloadRef == nil {
		// The template problems are local mode's; the missing workloadRef is the one to fix.
		errs = slices.DeleteFunc(errs, func(e *spec.FieldError) bool { return strings.HasPrefix(e.Path, "spec.template") })
		errs = append(errs, &spec.FieldError{Path: "spec.workloadRef", Msg: "is required in Kubernetes mode: name the Deployment whose pod template this rollout ships"})
	}
	// Fields only local mode carries out (ramp's proxy settings, trustedSources) are refused,
	// not ignored.
	errs = append(errs, spec.CheckRolloutMode(ro, spec.ModeKubernetes)...)
	if ro.Spec.Strategy.Canary == nil {
		return errs
	}
	// spec.ValidateRollout judged the canary against its router's description.
	name := RouterName(ro)
	if name == "" {
		name = spec.RouterService
	}
	if _, err := NewRouter(name, nil); err != nil {
		return append(errs, &spec.FieldError{Path: "spec.strategy.canary.trafficRouting", Msg: err.Error()})
	}
	return errs
}

// routerTitle names router name in messages.
func routerTitle(name string) string {
	if d, ok := spec.LookupRouter(name); ok {
		return d.Title
	}
	return name
}

// analysisRef is one analysis a rollout runs, with the path of its field.
type analysisRef struct {
	path string
	a    *v1alpha1.RolloutAnalysis
}

// analysisRefs lists the analyses ro runs.
func analysisRefs(ro *v1alpha1.Rollout) []analysisRef {
	var out []analysisRef
	add := func(path string, a *v1alpha1.RolloutAnalysis) {
		if a != nil {
			out = append(out, analysisRef{path, a})
		}
	}
	s := ro.Spec.Strategy
	if c := s.Canary; c != nil {
		add("spec.strategy.canary.analysis", c.Analysis)
		for i, st := range c.Steps {
			add(fmt.Sprintf("spec.strategy.canary.steps[%d].analysis", i), st.Analysis)
		}
	}
	if bg := s.BlueGreen; bg != nil {
		add("spec.strategy.blueGreen.prePromotionAnalysis", bg.PrePromotionAnalysis)
		add("spec.strategy.blueGreen.postPromotionAnalysis", bg.PostPromotionAnalysis)
	}
	if ru := s.RollingUpdate; ru != nil {
		add("spec.strategy.rollingUpdate.analysis", ru.Analysis)
		if ru.Pause != nil {
			add("spec.strategy.rollingUpdate.pause.analysis", ru.Pause.Analysis)
		}
	}
	return out
}

// validateTemplates refuses, when the rollout is validated, the metrics of the templates it
// names that Kubernetes mode cannot measure for it (a provider only local mode has, a builtin
// metric with no router metrics or Prometheus to answer it, a metric the router's metrics do
// not give), rather than failing when the analysis runs. A template that does not exist yet is
// not refused here: it may be created later, and the analysis run reports it if it is not.
func (r *Reconciler) validateTemplates(ctx context.Context, ro *v1alpha1.Rollout) spec.Errors {
	var errs spec.Errors
	for _, ref := range analysisRefs(ro) {
		for j, tr := range ref.a.Templates {
			t := &v1alpha1.AnalysisTemplate{}
			if err := r.client.Get(ctx, types.NamespacedName{Namespace: ro.Namespace, Name: tr.TemplateName}, t); err != nil {
				continue
			}
			for _, e := range spec.CheckTemplateMode(t, spec.ModeKubernetes) {
				errs = append(errs, &spec.FieldError{
					Path: fmt.Sprintf("%s.templates[%d]", ref.path, j),
					Msg:  fmt.Sprintf("AnalysisTemplate %s: %s", tr.TemplateName, e.Error()),
				})
			}
			if !r.traffic.ownsBuiltin {
				continue
			}
			for _, e := range r.traffic.checkTemplate(ro, t) {
				errs = append(errs, &spec.FieldError{
					Path: fmt.Sprintf("%s.templates[%d]", ref.path, j),
					Msg:  fmt.Sprintf("AnalysisTemplate %s: %s", tr.TemplateName, e.Error()),
				})
			}
		}
	}
	return errs
}
