package server

import (
	"cmp"
	"fmt"
	"strings"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/control"
)

// The dashboard's read API answers without the token, so what it sends is built field by field
// from what is safe to show to anyone who reaches the API's address: the status, the steps,
// the revisions' numbers and causes, the analysis results and the events. Never the template
// (its env may hold secrets), the analysis arguments, or a provider's settings.

// maxViewEvents bounds the events a RolloutView carries: the newest ones.
const maxViewEvents = 200

// RolloutSummary is one line of the dashboard's list of rollouts.
type RolloutSummary struct {
	Name     string `json:"name"`
	Strategy string `json:"strategy"`
	Phase    string `json:"phase"`
	Message  string `json:"message,omitempty"`
	// Step is status.step ("2/5"), "-" without steps.
	Step string `json:"step"`
	// CanaryWeight is the weight ramp sets on the canary (or new revision); ObservedWeight the
	// share observed, when the mode observes it.
	CanaryWeight    int32  `json:"canaryWeight"`
	ObservedWeight  *int32 `json:"observedWeight,omitempty"`
	CurrentRevision int64  `json:"currentRevision"`
	StableRevision  int64  `json:"stableRevision"`
	// Revisions are the revisions with instances or traffic: role, weight and instances.
	Revisions []v1alpha1.RevisionStatus `json:"revisions"`
}

// RolloutView is everything the dashboard shows of one rollout.
type RolloutView struct {
	RolloutSummary
	// Steps describe the canary's steps ("setWeight 20", "pause 30s"); StepIndex is the one
	// being run (len(Steps) when all are done), nil without steps.
	Steps           []string                  `json:"steps"`
	StepIndex       *int32                    `json:"stepIndex,omitempty"`
	Abort           bool                      `json:"abort,omitempty"`
	AbortedRevision int64                     `json:"abortedRevision,omitempty"`
	PauseConditions []v1alpha1.PauseCondition `json:"pauseConditions,omitempty"`
	Watch           *v1alpha1.WatchStatus     `json:"watch,omitempty"`
	// Analysis holds each analysis run, the judge's included, with its metrics' measurements
	// and messages (the judge's evidence and explanation).
	Analysis []AnalysisView `json:"analysis"`
	// History lists the revisions, oldest first, without their templates.
	History []RevisionView `json:"history"`
	// Events are the newest events (at most 200), oldest first.
	Events []control.Event `json:"events"`
}

// AnalysisView is one analysis run without its arguments.
type AnalysisView struct {
	Name             string                  `json:"name"`
	Kind             v1alpha1.AnalysisKind   `json:"kind"`
	Revision         int64                   `json:"revision"`
	BaselineRevision int64                   `json:"baselineRevision,omitempty"`
	Step             *int32                  `json:"step,omitempty"`
	Templates        []string                `json:"templates,omitempty"`
	StartedAt        string                  `json:"startedAt"`
	Phase            v1alpha1.AnalysisPhase  `json:"phase"`
	Message          string                  `json:"message,omitempty"`
	Metrics          []v1alpha1.MetricResult `json:"metrics,omitempty"`
	NoWorseFor       string                  `json:"noWorseFor,omitempty"`
}

// RevisionView is one revision of the history, without its template.
type RevisionView struct {
	Number    int64  `json:"number"`
	Hash      string `json:"hash"`
	CreatedAt string `json:"createdAt"`
	Cause     string `json:"cause,omitempty"`
}

func summarize(r *v1alpha1.Rollout) RolloutSummary {
	st := r.Status
	s := RolloutSummary{
		Name: r.Name, Strategy: strategyName(r), Phase: string(st.Phase), Message: st.Message,
		Step: cmp.Or(st.Step, "-"), CanaryWeight: st.CanaryWeight, ObservedWeight: st.ObservedWeight,
		CurrentRevision: st.CurrentRevision, StableRevision: st.StableRevision,
		Revisions: st.Revisions,
	}
	if s.Revisions == nil {
		s.Revisions = []v1alpha1.RevisionStatus{}
	}
	return s
}

func viewOf(r *v1alpha1.Rollout, history []control.Revision, events []control.Event) RolloutView {
	st := r.Status
	v := RolloutView{
		RolloutSummary: summarize(r), Steps: []string{}, StepIndex: st.CurrentStepIndex,
		Abort: st.Abort, AbortedRevision: st.AbortedRevision, PauseConditions: st.PauseConditions,
		Watch: st.Watch, Analysis: []AnalysisView{}, History: []RevisionView{}, Events: []control.Event{},
	}
	if c := r.Spec.Strategy.Canary; c != nil {
		for _, step := range c.Steps {
			v.Steps = append(v.Steps, stepDescription(step))
		}
	}
	for _, a := range st.Analysis {
		av := AnalysisView{
			Name: a.Name, Kind: a.Kind, Revision: a.Revision, BaselineRevision: a.BaselineRevision, Step: a.Step,
			StartedAt: a.StartedAt.UTC().Format("2006-01-02T15:04:05Z"), Phase: a.Phase, Message: a.Message,
			Metrics: a.Metrics, NoWorseFor: a.NoWorseFor,
		}
		for _, t := range a.Spec.Templates {
			av.Templates = append(av.Templates, t.TemplateName)
		}
		v.Analysis = append(v.Analysis, av)
	}
	for _, h := range history {
		v.History = append(v.History, RevisionView{Number: h.Number, Hash: h.Hash, CreatedAt: h.CreatedAt.UTC().Format("2006-01-02T15:04:05Z"), Cause: h.Cause})
	}
	if len(events) > maxViewEvents {
		events = events[len(events)-maxViewEvents:]
	}
	v.Events = append(v.Events, events...)
	return v
}

// stepDescription says what a canary step does, in the spec's words.
func stepDescription(s v1alpha1.CanaryStep) string {
	switch {
	case s.SetWeight != nil:
		return fmt.Sprintf("setWeight %d", *s.SetWeight)
	case s.Pause != nil:
		if s.Pause.Duration == nil {
			return "pause (until promoted)"
		}
		return "pause " + s.Pause.Duration.String()
	case s.Analysis != nil:
		var names []string
		for _, t := range s.Analysis.Templates {
			names = append(names, t.TemplateName)
		}
		return "analysis " + strings.Join(names, ", ")
	case s.SetHeaderRoute != nil:
		return "setHeaderRoute " + s.SetHeaderRoute.Name
	case s.SetCanaryScale != nil:
		return "setCanaryScale"
	}
	return "-"
}

// strategyName names the rollout's strategy, "-" when none is set.
func strategyName(r *v1alpha1.Rollout) string {
	if n := r.Spec.Strategy.Name(); n != "" {
		return n
	}
	return "-"
}
