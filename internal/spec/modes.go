package spec

import (
	"fmt"

	"ramp.dev/ramp/api/v1alpha1"
)

// Mode is where a rollout runs: local mode (ramp's processes and proxy) or Kubernetes mode
// (the controller, Deployments and the cluster's traffic layer).
type Mode string

// Modes.
const (
	ModeLocal      Mode = "local"
	ModeKubernetes Mode = "kubernetes"
)

// RolloutMode tells r's mode from its spec: spec.workloadRef means Kubernetes mode, anything
// else (spec.template.process or upstreams) local mode.
func RolloutMode(r *v1alpha1.Rollout) Mode {
	if r.Spec.WorkloadRef != nil {
		return ModeKubernetes
	}
	return ModeLocal
}

// CheckRolloutMode reports the fields of r that mode m cannot carry out, with paths from the
// rollout ("spec.proxy"). What ValidateRollout already refuses for the mode r's spec picks
// (a template with workloadRef, a mirror the router cannot do) is not repeated here.
func CheckRolloutMode(r *v1alpha1.Rollout, m Mode) Errors {
	var l errList
	s := &r.Spec
	switch m {
	case ModeKubernetes:
		if s.Proxy != nil {
			l.add("spec.proxy", nil, "is the setting of ramp's own proxy, which only local mode has; in Kubernetes mode requests go through the cluster's traffic layer, set it there")
		}
		if c := s.Strategy.Canary; c != nil && c.TrafficRouting != nil && len(c.TrafficRouting.TrustedSources) > 0 {
			l.add("spec.strategy.canary.trafficRouting.trustedSources", nil, "is read by ramp's own proxy, which only local mode has; in Kubernetes mode the traffic layer decides whom to trust")
		}
	case ModeLocal:
		if s.WorkloadRef != nil {
			l.add("spec.workloadRef", nil, "needs Kubernetes mode (ramp controller); local mode runs spec.template.process or spec.template.upstreams")
			return l.errs
		}
		if s.AppMetrics != nil {
			l.add("spec.appMetrics", nil, "names the Prometheus series Kubernetes mode reads; local mode measures every request in its own proxy and needs none")
		}
		checkWebhooksLocal(&l, s)
		for _, ref := range NotificationSecretRefs(r) {
			l.add(ref.Path, nil, "%s", ref.LocalModeMessage())
		}
		const local = "local mode has no Services: its own proxy carries the traffic"
		if c := s.Strategy.Canary; c != nil {
			if name := NamedRouter(c); name != "" {
				l.add("spec.strategy.canary.trafficRouting."+name, nil, "needs Kubernetes mode (spec.workloadRef); local mode routes through its own proxy")
			}
			if c.StableService != "" {
				l.add("spec.strategy.canary.stableService", c.StableService, "names a Kubernetes Service; %s", local)
			}
			if c.CanaryService != "" {
				l.add("spec.strategy.canary.canaryService", c.CanaryService, "names a Kubernetes Service; %s", local)
			}
		}
		if bg := s.Strategy.BlueGreen; bg != nil {
			if bg.ActiveService != "" {
				l.add("spec.strategy.blueGreen.activeService", bg.ActiveService, "names a Kubernetes Service; %s on spec.listen", local)
			}
			if bg.PreviewService != "" {
				l.add("spec.strategy.blueGreen.previewService", bg.PreviewService, "names a Kubernetes Service; %s, use previewListen", local)
			}
		}
	}
	return l.errs
}

// CheckTemplateMode reports the metrics of t whose provider mode m cannot carry out.
func CheckTemplateMode(t *v1alpha1.AnalysisTemplate, m Mode) Errors {
	var l errList
	for i, mt := range t.Spec.Metrics {
		p := fmt.Sprintf("spec.metrics[%d].provider", i)
		switch m {
		case ModeKubernetes:
			if mt.Provider.Scrape != nil {
				l.add(p+".scrape", nil, "reads local mode's instances; in Kubernetes mode use prometheus")
			}
			if mt.Provider.Command != nil {
				l.add(p+".command", nil, "runs a command beside local mode's processes; in Kubernetes mode use job")
			}
		case ModeLocal:
			if mt.Provider.Job != nil {
				l.add(p+".job", nil, "the job provider needs Kubernetes mode; in local mode use command")
			}
			if pm := mt.Provider.Prometheus; pm != nil {
				for _, ref := range PrometheusSecretRefs(pm) {
					l.add(p+".prometheus."+ref.Path, nil, "%s", ref.LocalModeMessage())
				}
			}
		}
	}
	return l.errs
}

// ValidateForMode reports every field of b's rollouts and templates that mode m cannot carry
// out, each path led by its object ("rollout/chat-api: spec.proxy"). It returns nil or an
// Errors.
func ValidateForMode(b *Bundle, m Mode) error {
	var errs Errors
	for i := range b.Rollouts {
		r := &b.Rollouts[i]
		errs = append(errs, CheckRolloutMode(r, m).prefixed("rollout/"+r.Name)...)
	}
	for i := range b.AnalysisTemplates {
		t := &b.AnalysisTemplates[i]
		errs = append(errs, CheckTemplateMode(t, m).prefixed("analysistemplate/"+t.Name)...)
	}
	return errs.asError()
}

// CheckModes reports the fields that their mode cannot carry out, as ValidateForMode does,
// telling each object's mode from the files: a rollout's from its spec (RolloutMode), a
// template's from the rollouts in b or in others that name it. A template no rollout names
// is checked in no mode.
func (b *Bundle) CheckModes(others ...*Bundle) error {
	modes := map[string]map[Mode]bool{}
	for _, ob := range append([]*Bundle{b}, others...) {
		if ob == nil {
			continue
		}
		for i := range ob.Rollouts {
			r := &ob.Rollouts[i]
			for _, at := range analyses(r) {
				for _, ref := range at.a.Templates {
					if modes[ref.TemplateName] == nil {
						modes[ref.TemplateName] = map[Mode]bool{}
					}
					modes[ref.TemplateName][RolloutMode(r)] = true
				}
			}
		}
	}
	var errs Errors
	for i := range b.Rollouts {
		r := &b.Rollouts[i]
		errs = append(errs, CheckRolloutMode(r, RolloutMode(r)).prefixed("rollout/"+r.Name)...)
	}
	for i := range b.AnalysisTemplates {
		t := &b.AnalysisTemplates[i]
		for _, m := range []Mode{ModeLocal, ModeKubernetes} {
			if modes[t.Name][m] {
				errs = append(errs, CheckTemplateMode(t, m).prefixed("analysistemplate/"+t.Name)...)
			}
		}
	}
	return errs.asError()
}
