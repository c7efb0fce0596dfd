package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// AnalysisTemplate is a reusable set of metrics that judge a revision.
//
// +kubebuilder:object:root=true
type AnalysisTemplate struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec AnalysisTemplateSpec `json:"spec"`
}

// AnalysisTemplateList is a list of AnalysisTemplates.
//
// +kubebuilder:object:root=true
type AnalysisTemplateList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []AnalysisTemplate `json:"items"`
}

// AnalysisTemplateSpec lists metrics and the arguments they take.
type AnalysisTemplateSpec struct {
	Metrics []Metric   `json:"metrics"`
	Args    []Argument `json:"args,omitempty"`
}

// Argument is a template argument; a nil Value must be given by the rollout.
type Argument struct {
	Name  string  `json:"name"`
	Value *string `json:"value,omitempty"`
}

// Metric is one measurement, taken count times every interval, judged by conditions.
// Names and meanings follow Argo Rollouts.
type Metric struct {
	Name string `json:"name"`
	// Interval is the time between measurements ("10s" or seconds). Nil means measure once
	// (count is then 1).
	Interval *intstr.IntOrString `json:"interval,omitempty"`
	// InitialDelay waits before the first measurement. Nil means none.
	InitialDelay *intstr.IntOrString `json:"initialDelay,omitempty"`
	// Count is the number of measurements. Nil means 1 without an interval, and unbounded
	// (until the run is stopped) with one.
	Count *int32 `json:"count,omitempty"`
	// SuccessCondition is an expression over `result` (and, with a baseline, `baseline`) that
	// is true for a successful measurement. Empty means any measurement that is not a failure
	// is successful.
	SuccessCondition string `json:"successCondition,omitempty"`
	// FailureCondition is an expression that is true for a failed measurement. Empty means a
	// measurement fails when successCondition is false.
	FailureCondition string `json:"failureCondition,omitempty"`
	// FailureLimit is how many failed measurements are tolerated; the run fails when there
	// are more. Zero means none is tolerated.
	// +kubebuilder:validation:Minimum=0
	FailureLimit int32 `json:"failureLimit,omitempty"`
	// InconclusiveLimit is how many inconclusive measurements are tolerated before the run is
	// Inconclusive. Zero means none is tolerated.
	// +kubebuilder:validation:Minimum=0
	InconclusiveLimit int32 `json:"inconclusiveLimit,omitempty"`
	// ConsecutiveErrorLimit is how many provider errors in a row are tolerated before the
	// run ends as Error. Nil means 4.
	ConsecutiveErrorLimit *int32 `json:"consecutiveErrorLimit,omitempty"`
	// DryRun records the metric's results without letting them decide the run.
	DryRun bool `json:"dryRun,omitempty"`
	// Provider is exactly one provider.
	Provider MetricProvider `json:"provider"`
}

// MetricProvider is exactly one provider.
type MetricProvider struct {
	Builtin *BuiltinMetric `json:"builtin,omitempty"`
}

// BuiltinMetric reads ramp's own per-revision measurements: the proxy's request metrics and
// the supervisor's instance metrics.
type BuiltinMetric struct {
	// Metric is one of: error-rate (share of 5xx among responses), request-count,
	// request-rate (per second), latency-p50, latency-p95, latency-p99 (seconds),
	// ttfb-p50, ttfb-p95, ttfb-p99 (seconds, time to first byte), restarts,
	// readiness-failures, cpu (cores), memory (bytes).
	// +kubebuilder:validation:Enum=error-rate;request-count;request-rate;latency-p50;latency-p95;latency-p99;ttfb-p50;ttfb-p95;ttfb-p99;restarts;readiness-failures;cpu;memory
	Metric string `json:"metric"`
	// Window is how far back the measurement looks ("30s"). Nil means since the analysis run
	// started.
	Window *intstr.IntOrString `json:"window,omitempty"`
	// Baseline also measures the baseline revision (stable, or the old active) and exposes
	// it to the conditions as `baseline`. False means `baseline` is not set.
	Baseline bool `json:"baseline,omitempty"`
	// MinRequests is the least number of requests a request metric needs; with fewer the
	// measurement is Inconclusive. Zero means 1.
	MinRequests int32 `json:"minRequests,omitempty"`
}
