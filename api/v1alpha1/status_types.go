package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// RolloutPhase is the coarse state of a rollout.
type RolloutPhase string

const (
	// PhaseProgressing: a new revision is being rolled out.
	PhaseProgressing RolloutPhase = "Progressing"
	// PhasePaused: waiting for a pause step, a human (`ramp promote`/`ramp resume`) or an
	// inconclusive analysis.
	PhasePaused RolloutPhase = "Paused"
	// PhaseHealthy: one revision runs and takes all traffic.
	PhaseHealthy RolloutPhase = "Healthy"
	// PhaseDegraded: the rollout was aborted (by a human or by ramp) or failed; traffic is on
	// stable.
	PhaseDegraded RolloutPhase = "Degraded"
)

// Role is what a revision does in a rollout.
type Role string

const (
	RoleStable  Role = "stable"
	RoleCanary  Role = "canary"
	RoleActive  Role = "active"
	RolePreview Role = "preview"
	// RoleOld is a revision that is being scaled down.
	RoleOld Role = "old"
)

// RolloutStatus is what ramp observed and decided. The engine owns it.
type RolloutStatus struct {
	Phase   RolloutPhase `json:"phase,omitempty"`
	Message string       `json:"message,omitempty"`

	// ObservedGeneration is the spec generation the status was computed for.
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// CurrentRevision is the revision of the current spec.template (the one being rolled
	// out, or the stable one when nothing is in progress). Zero before the first apply.
	CurrentRevision int64 `json:"currentRevision,omitempty"`
	// StableRevision serves production. Zero before the first revision is ready.
	StableRevision int64 `json:"stableRevision,omitempty"`
	// CanaryRevision is the revision in canary (canary and rollingUpdate); zero when none.
	CanaryRevision int64 `json:"canaryRevision,omitempty"`
	// ActiveRevision takes the traffic (blueGreen); zero for other strategies.
	ActiveRevision int64 `json:"activeRevision,omitempty"`
	// PreviewRevision runs beside active before the switch (blueGreen); zero when none.
	PreviewRevision int64 `json:"previewRevision,omitempty"`

	// CurrentStepIndex is the index of the canary step being run; len(steps) when all steps
	// are done. Nil for other strategies.
	CurrentStepIndex *int32 `json:"currentStepIndex,omitempty"`
	// Step says where the rollout is in its strategy, as `ramp get` shows it: "2/5" for the
	// canary step being run (1-based; "5/5" when all are done); for blueGreen "1/2" while the
	// preview runs (or after an abort) and "2/2" once traffic is switched; "-" for a rolling
	// update or a canary without steps.
	Step string `json:"step,omitempty"`
	// CanaryWeight is the percent of traffic the canary (or, in a rolling update, the new
	// revision) gets by the current step: the weight ramp sets.
	CanaryWeight int32 `json:"canaryWeight"`
	// ObservedWeight is the canary's real share of traffic (percent) as last observed: the
	// weight the routing object holds, or, with plain Services (no trafficRouting), the
	// canary's ready instances over all ready instances the Service selects. Nil when not
	// observed (local mode, where the proxy takes CanaryWeight at once) or no canary runs.
	ObservedWeight *int32 `json:"observedWeight,omitempty"`
	// CanaryScale is the canary instance count set by setCanaryScale; nil means the canary
	// scales with its weight.
	CanaryScale *int32 `json:"canaryScale,omitempty"`
	// HeaderRoutes are the header routes in force.
	HeaderRoutes []SetHeaderRoute `json:"headerRoutes,omitempty"`

	// Revisions is one entry per revision that has instances or traffic.
	Revisions []RevisionStatus `json:"revisions,omitempty"`

	// Abort is set when the rollout was aborted; `ramp retry` clears it.
	Abort bool `json:"abort,omitempty"`
	// AbortedRevision is the revision that was aborted; a retry runs it again.
	AbortedRevision int64 `json:"abortedRevision,omitempty"`
	// PromoteFull skips all remaining steps and analysis on the next decision.
	PromoteFull bool `json:"promoteFull,omitempty"`
	// Promote asks to end the current pause or step on the next decision.
	Promote bool `json:"promote,omitempty"`

	// PauseConditions say why the rollout waits.
	PauseConditions []PauseCondition `json:"pauseConditions,omitempty"`
	// StepStartTime is when the current step started.
	StepStartTime *metav1.Time `json:"stepStartTime,omitempty"`
	// LastProgressTime is the last time the rollout made progress; the progress deadline is
	// counted from it.
	LastProgressTime *metav1.Time `json:"lastProgressTime,omitempty"`
	// ReadyTime is when the new revision (canary or preview) was first fully ready.
	ReadyTime *metav1.Time `json:"readyTime,omitempty"`
	// ScaleDownAt says when an old revision is scaled down (scaleDownDelaySeconds), by
	// revision.
	ScaleDownAt map[string]metav1.Time `json:"scaleDownAt,omitempty"`
	// Watch is the watch window after the last promotion (scaleDownDelaySeconds): the
	// previous revision's instances are kept warm and the new stable is judged against its
	// record until Until. Nil when no window is open.
	Watch *WatchStatus `json:"watch,omitempty"`

	// RestartedAt is the spec.restartAt of the last restart that completed: every instance of
	// the stable revision started after it. Nil when no restart completed.
	RestartedAt *metav1.Time `json:"restartedAt,omitempty"`

	// Analysis holds the analysis runs the engine wants running, and their last results.
	Analysis []AnalysisRunStatus `json:"analysis,omitempty"`

	// Gates are the gate webhooks of the revision under way (and of the last promotion or
	// abort) and their last answers.
	Gates []GateStatus `json:"gates,omitempty"`

	// Conditions are Kubernetes mode's standard conditions (types Valid, ReferencesFound,
	// Reconciled, Progressing, Healthy); local mode leaves them empty.
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// Condition types of RolloutStatus.Conditions (Kubernetes mode).
const (
	// ConditionValid is False when the spec fails validation (reason InvalidSpec); the
	// rollout is then left as it is.
	ConditionValid = "Valid"
	// ConditionReconciled is False when the controller could not carry out its last decision
	// (a missing Deployment, an API error); the message says why.
	ConditionReconciled = "Reconciled"
	// ConditionProgressing is True while a revision rolls out (phase Progressing or Paused).
	ConditionProgressing = "Progressing"
	// ConditionHealthy is True when one revision runs and takes all traffic (phase Healthy).
	ConditionHealthy = "Healthy"
	// ConditionReferencesFound is False (reason MissingReferences) while a Service or routing
	// object the rollout names does not exist; the message names them. The rollout is not
	// refused (they may be created after it), but no step completes until they exist.
	ConditionReferencesFound = "ReferencesFound"
)

// RevisionStatus is the state of one revision.
type RevisionStatus struct {
	Revision int64 `json:"revision"`
	Role     Role  `json:"role"`
	// Weight is the percent of traffic this revision receives: the real share when it is
	// observed (see RolloutStatus.ObservedWeight), else the share ramp sets.
	Weight int32 `json:"weight"`
	// Desired is the number of instances ramp wants for this revision, in rotation.
	Desired int32 `json:"desired"`
	// Warm is the number of instances kept running out of rotation besides Desired: a
	// rolling update in local mode takes old instances out of rotation instead of stopping
	// them while a watch window is set (scaleDownDelaySeconds), so that a switch back needs
	// no start-up.
	Warm int32 `json:"warm,omitempty"`
	// Ready is the number of instances that pass their readiness probe.
	Ready int32 `json:"ready"`
	// Available is the number of instances ready for at least minReadySeconds.
	Available int32 `json:"available"`
	// PodTemplateHash is the revision's pod-template-hash label in Kubernetes mode, which
	// the stable, canary, active and preview Services select; empty in local mode.
	PodTemplateHash string `json:"podTemplateHash,omitempty"`
}

// PauseReason says why a rollout pauses.
type PauseReason string

const (
	PauseReasonStep         PauseReason = "CanaryPauseStep"
	PauseReasonUser         PauseReason = "UserPause"
	PauseReasonInconclusive PauseReason = "InconclusiveAnalysis"
	PauseReasonBlueGreen    PauseReason = "BlueGreenPause"
	// PauseReasonRollingUpdate holds a rolling update at spec.strategy.rollingUpdate.pause.
	PauseReasonRollingUpdate PauseReason = "RollingUpdatePause"
	// PauseReasonGate holds the rollout at a gate webhook (spec.webhooks) that has not
	// answered 2xx.
	PauseReasonGate PauseReason = "GateWebhook"
)

// PauseCondition records one reason to wait.
type PauseCondition struct {
	Reason    PauseReason `json:"reason"`
	StartTime metav1.Time `json:"startTime"`
}

// AnalysisPhase is the result of an analysis run or a measurement.
type AnalysisPhase string

const (
	AnalysisPending      AnalysisPhase = "Pending"
	AnalysisRunning      AnalysisPhase = "Running"
	AnalysisSuccessful   AnalysisPhase = "Successful"
	AnalysisFailed       AnalysisPhase = "Failed"
	AnalysisInconclusive AnalysisPhase = "Inconclusive"
	AnalysisError        AnalysisPhase = "Error"
)

// Completed reports whether the phase is final.
func (p AnalysisPhase) Completed() bool {
	switch p {
	case AnalysisSuccessful, AnalysisFailed, AnalysisInconclusive, AnalysisError:
		return true
	}
	return false
}

// WatchStatus is an open watch window after a promotion.
type WatchStatus struct {
	// Revision is the revision promoted, now stable.
	Revision int64 `json:"revision"`
	// PreviousRevision is the stable revision it replaced, whose instances are kept warm;
	// traffic switches back to it when Revision degrades.
	PreviousRevision int64 `json:"previousRevision"`
	// Since is when Revision was promoted.
	Since metav1.Time `json:"since"`
	// Until is when the window closes and PreviousRevision's instances stop.
	Until metav1.Time `json:"until"`
}

// AnalysisKind says which part of a strategy started an analysis run.
type AnalysisKind string

const (
	AnalysisKindStep        AnalysisKind = "step"
	AnalysisKindBackground  AnalysisKind = "background"
	AnalysisKindPrePromote  AnalysisKind = "prePromotion"
	AnalysisKindPostPromote AnalysisKind = "postPromotion"
	// AnalysisKindPause runs while a rolling update holds at its pause point.
	AnalysisKindPause AnalysisKind = "pause"
	// AnalysisKindJudge is the sequential judge of a canary (spec.strategy.canary.judge). It
	// has no templates; the adapter feeds it.
	AnalysisKindJudge AnalysisKind = "judge"
	// AnalysisKindWatch judges the new stable against the previous revision's record in the
	// watch window after promotion (local mode). It has no templates; the adapter feeds it.
	AnalysisKindWatch AnalysisKind = "watch"
)

// AnalysisRunStatus is one analysis run as the rollout sees it. The engine adds it when the
// strategy wants it running; the analysis runner fills in Phase, Message and Metrics.
type AnalysisRunStatus struct {
	// Name is unique within the rollout: <kind>-<revision>[-<step>].
	Name string       `json:"name"`
	Kind AnalysisKind `json:"kind"`
	// Revision is the revision under analysis (canary, preview or new active).
	Revision int64 `json:"revision"`
	// BaselineRevision is the revision it is compared with (stable or old active).
	BaselineRevision int64 `json:"baselineRevision,omitempty"`
	// Step is the canary step index for step analysis.
	Step      *int32          `json:"step,omitempty"`
	Spec      RolloutAnalysis `json:"spec"`
	StartedAt metav1.Time     `json:"startedAt"`
	Phase     AnalysisPhase   `json:"phase"`
	Message   string          `json:"message,omitempty"`
	// Metrics holds each metric's measurements.
	Metrics []MetricResult `json:"metrics,omitempty"`
	// NoWorseFor is set on a judge run: the name of the running step analysis run for which
	// the judge has shown, on the requests since that run began, that the canary is no worse
	// than stable (Message says how). The engine then ends that run with success. Empty
	// means none.
	NoWorseFor string `json:"noWorseFor,omitempty"`
}

// MetricResult holds the measurements of one metric in one analysis run.
type MetricResult struct {
	Name             string        `json:"name"`
	Phase            AnalysisPhase `json:"phase"`
	Message          string        `json:"message,omitempty"`
	Count            int32         `json:"count"`
	Successful       int32         `json:"successful"`
	Failed           int32         `json:"failed"`
	Inconclusive     int32         `json:"inconclusive"`
	Error            int32         `json:"error"`
	ConsecutiveError int32         `json:"consecutiveError"`
	// Measurements keeps the last few measurements, newest last.
	Measurements []Measurement `json:"measurements,omitempty"`
}

// Measurement is one observation of a metric.
type Measurement struct {
	Phase AnalysisPhase `json:"phase"`
	// Value is the measured value, as text.
	Value      string      `json:"value,omitempty"`
	Message    string      `json:"message,omitempty"`
	StartedAt  metav1.Time `json:"startedAt"`
	FinishedAt metav1.Time `json:"finishedAt"`
}
