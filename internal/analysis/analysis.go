// Package analysis owns analysis runs: it takes the measurements that are due, judges each
// with the metric's conditions, and decides the phase of every metric and of the run, with
// Argo Rollouts semantics (failureLimit, inconclusiveLimit, consecutiveErrorLimit, dryRun).
//
// All of a run's state lives in its v1alpha1.AnalysisRunStatus, which the caller persists; a
// Runner keeps nothing but a cache of compiled conditions, so after a restart the caller hands
// the same status back and the run carries on where it stopped. Providers (builtin, scrape,
// prometheus, web, command) live in sub-packages and are picked by name.
package analysis

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/spec"
)

// Provider takes one measurement of a metric. A measurement outcome is data; a Go error means
// the provider could not be asked at all (it is counted as an Error measurement).
type Provider interface {
	Measure(ctx context.Context, m v1alpha1.Metric, t Target) (Value, error)
}

// Target says what a measurement looks at.
type Target struct {
	// Rollout is the rollout's name.
	Rollout string
	// Revision is the revision under analysis.
	Revision int64
	// Baseline is the revision it is compared with; zero means none.
	Baseline int64
	// Role is what the revision under analysis does: "canary" (canary and rollingUpdate
	// analysis), "preview" (blueGreen pre-promotion) or "active" (post-promotion).
	Role string
	// Namespace is the rollout's Kubernetes namespace. Empty in local mode.
	Namespace string
	// Service is the Kubernetes Service of the revision under analysis. Empty in local mode.
	Service string
	// PodTemplateHashes maps a revision number to the pod-template-hash label of its pods
	// (Kubernetes mode), for {{podTemplateHash}} and {{baselinePodTemplateHash}}. Nil in local
	// mode; a revision without pods yet has no entry.
	PodTemplateHashes map[int64]string
	// Secrets reads the Secrets of Namespace for providers' secret references. Nil in local
	// mode, where a secret reference is refused.
	Secrets SecretReader
	// Since is when the analysis run started.
	Since time.Time
	// Args are the run's arguments (template defaults merged with the rollout's values).
	Args map[string]string
	// Run is the analysis run's name, unique within the rollout (with Since, unique over
	// time). Empty when the caller names no run.
	Run string
	// Measurement numbers this measurement of the metric within the run, from 1, errors
	// included: with Run and Since it names what a provider creates for the measurement (a
	// Job), so that a restarted controller finds it. Zero when not measuring.
	Measurement int32
}

// SecretReader reads one key of a Kubernetes Secret. Its errors name the Secret and key,
// never the value.
type SecretReader interface {
	SecretValue(ctx context.Context, namespace, name, key string) ([]byte, error)
}

// Value is what a provider measured.
type Value struct {
	// Result is the measured value; conditions see it as `result`.
	Result float64
	// Baseline is the baseline's value; conditions see it as `baseline`. Nil means no
	// baseline was measured (conditions then see 0).
	Baseline *float64
	// Inconclusive says the measurement cannot judge (e.g. too few requests); conditions are
	// not evaluated.
	Inconclusive bool
	// Text describes the value for humans, e.g. "0.012 (31/2580 5xx)". Empty means Result is
	// shown as a number.
	Text string
}

// WithBaseline completes v, the measured revision's value, with base, the baseline revision's
// (err: the error measuring it). An error or an inconclusive baseline makes the whole an
// error or inconclusive, naming the baseline revision.
func WithBaseline(v, base Value, err error, baselineRevision int64) (Value, error) {
	if err != nil {
		return Value{}, fmt.Errorf("baseline revision %d: %w", baselineRevision, err)
	}
	if base.Inconclusive {
		return Value{Inconclusive: true, Text: fmt.Sprintf("baseline revision %d: %s", baselineRevision, base.Text)}, nil
	}
	v.Baseline = &base.Result
	return v, nil
}

// Runner takes the measurements of analysis runs and decides their phases. Its zero value
// has no providers (every metric is then Error). It is safe for concurrent use.
type Runner struct {
	// Providers are the measurement providers by name, the JSON name of the field of
	// v1alpha1.MetricProvider that selects them ("builtin"). Nil means none.
	Providers map[string]Provider
	// Logger receives a debug line per measurement and an info line per phase change. Nil
	// means slog.Default().
	Logger *slog.Logger

	mu       sync.Mutex
	programs map[string]*program // compiled conditions by expression text
}

const (
	// keepMeasurements is how many measurements a metric keeps, newest last.
	keepMeasurements = 10
	// errorRetryInterval is the longest wait before an errored measurement is retried (as in
	// Argo Rollouts); a shorter metric interval wins.
	errorRetryInterval = 10 * time.Second
	// DefaultWaitForData is how long a measurement without enough data to judge is taken
	// again before it counts as inconclusive, when a metric does not set waitForData.
	DefaultWaitForData = 30 * time.Second
	// waitRetryInterval is the longest wait before a measurement that lacked data is taken
	// again; a shorter metric interval wins.
	waitRetryInterval = time.Second
	// defaultConsecutiveErrorLimit applies when a metric does not set consecutiveErrorLimit.
	defaultConsecutiveErrorLimit = 4
)

// Step takes every measurement that is due at now for run (looking up templates by name),
// evaluates it, updates run in place (Metrics, Phase, Message) and returns when the next
// measurement is due (the zero time when the run is complete). At most one measurement per
// metric is taken per call, so a run that fell behind (a pause, a crash) catches up one
// interval at a time rather than in a burst; a returned time at or before now means "call
// again at once".
//
// A run whose phase is already final is left alone. An empty phase or Pending becomes
// Running; a zero StartedAt is set to now.
func (r *Runner) Step(ctx context.Context, now time.Time, rollout string, run *v1alpha1.AnalysisRunStatus, templates map[string]*v1alpha1.AnalysisTemplate) (next time.Time) {
	return r.StepFor(ctx, now, Target{Rollout: rollout}, run, templates)
}

// StepFor is Step for a target that says more than the rollout's name: Kubernetes mode gives
// the rollout's Namespace and the Service of the revision under analysis. The fields of on
// that the run decides (revision, baseline, role, start, arguments) are filled in by StepFor.
func (r *Runner) StepFor(ctx context.Context, now time.Time, on Target, run *v1alpha1.AnalysisRunStatus, templates map[string]*v1alpha1.AnalysisTemplate) (next time.Time) {
	if run.Phase.Completed() {
		return time.Time{}
	}
	rollout := on.Rollout
	log := r.logger().With("rollout", rollout, "analysis", run.Name, "revision", run.Revision)
	before := run.Phase

	metrics, args, err := resolve(run, templates)
	if err != nil {
		run.Phase = v1alpha1.AnalysisError
		run.Message = err.Error()
		log.Info("analysis run ended", "phase", run.Phase, "message", run.Message)
		return time.Time{}
	}
	if run.Phase == "" || run.Phase == v1alpha1.AnalysisPending {
		run.Phase = v1alpha1.AnalysisRunning
	}
	if run.StartedAt.IsZero() {
		run.StartedAt = metav1.NewTime(now)
	}
	target := Target{
		Rollout:           rollout,
		Namespace:         on.Namespace,
		Service:           on.Service,
		Secrets:           on.Secrets,
		PodTemplateHashes: on.PodTemplateHashes,
		Revision:          run.Revision,
		Baseline:          run.BaselineRevision,
		Role:              RoleOf(run.Kind),
		Since:             run.StartedAt.Time,
		Args:              args,
		Run:               run.Name,
	}

	for i := range metrics {
		m := &metrics[i]
		res := metricResult(run, m.Name)
		if res.Phase.Completed() {
			continue
		}
		if ctx.Err() != nil {
			// Shutting down: record nothing, the caller steps again after the restart.
			return now
		}
		due, err := r.prepare(m, res, run.StartedAt.Time)
		if err != nil {
			res.Phase = v1alpha1.AnalysisError
			res.Message = err.Error()
			log.Info("metric cannot be measured", "metric", m.Name, "error", err)
			continue
		}
		if now.Before(due) {
			next = earliest(next, due)
			continue
		}
		if !r.measure(ctx, now, m, res, target, log) {
			return now // cancelled mid-measurement
		}
		assessMetric(m, res)
		if !res.Phase.Completed() {
			due, _ := r.prepare(m, res, run.StartedAt.Time)
			next = earliest(next, due)
		}
	}

	assessRun(run, metrics)
	if run.Phase != before && run.Phase.Completed() {
		log.Info("analysis run ended", "phase", run.Phase, "message", run.Message)
	}
	if run.Phase.Completed() {
		return time.Time{}
	}
	return next
}

// RoleOf is the role of the revision an analysis of the given kind looks at.
func RoleOf(k v1alpha1.AnalysisKind) string {
	switch k {
	case v1alpha1.AnalysisKindPrePromote:
		return string(v1alpha1.RolePreview)
	case v1alpha1.AnalysisKindPostPromote:
		return string(v1alpha1.RoleActive)
	}
	return string(v1alpha1.RoleCanary)
}

func (r *Runner) logger() *slog.Logger {
	if r.Logger != nil {
		return r.Logger
	}
	return slog.Default()
}

// resolve collects the metrics of the run's templates, in order, and the run's arguments.
func resolve(run *v1alpha1.AnalysisRunStatus, templates map[string]*v1alpha1.AnalysisTemplate) ([]v1alpha1.Metric, map[string]string, error) {
	var metrics []v1alpha1.Metric
	args := map[string]string{}
	var required [][2]string    // argument, template
	seen := map[string]string{} // metric name -> template
	for _, ref := range run.Spec.Templates {
		t := templates[ref.TemplateName]
		if t == nil {
			return nil, nil, fmt.Errorf("analysis template %q not found", ref.TemplateName)
		}
		for _, m := range t.Spec.Metrics {
			if other, dup := seen[m.Name]; dup {
				return nil, nil, fmt.Errorf("metric %q is defined in both template %q and %q", m.Name, other, ref.TemplateName)
			}
			seen[m.Name] = ref.TemplateName
			metrics = append(metrics, m)
		}
		for _, a := range t.Spec.Args {
			if a.Value != nil {
				args[a.Name] = *a.Value
			} else {
				required = append(required, [2]string{a.Name, ref.TemplateName})
			}
		}
	}
	for _, a := range run.Spec.Args {
		args[a.Name] = a.Value
	}
	for _, req := range required {
		if _, ok := args[req[0]]; !ok {
			return nil, nil, fmt.Errorf("missing value for argument %q of template %q", req[0], req[1])
		}
	}
	if len(metrics) == 0 {
		return nil, nil, fmt.Errorf("analysis has no metrics (templates %s)", templateNames(run))
	}
	return metrics, args, nil
}

func templateNames(run *v1alpha1.AnalysisRunStatus) string {
	names := make([]string, 0, len(run.Spec.Templates))
	for _, t := range run.Spec.Templates {
		names = append(names, fmt.Sprintf("%q", t.TemplateName))
	}
	return "[" + strings.Join(names, ", ") + "]"
}

// metricResult returns the run's result for the named metric, adding a Pending one.
func metricResult(run *v1alpha1.AnalysisRunStatus, name string) *v1alpha1.MetricResult {
	for i := range run.Metrics {
		if run.Metrics[i].Name == name {
			return &run.Metrics[i]
		}
	}
	run.Metrics = append(run.Metrics, v1alpha1.MetricResult{Name: name, Phase: v1alpha1.AnalysisPending})
	return &run.Metrics[len(run.Metrics)-1]
}

// prepare checks that the metric can be measured (provider, durations, conditions) and
// returns when its next measurement is due.
func (r *Runner) prepare(m *v1alpha1.Metric, res *v1alpha1.MetricResult, started time.Time) (time.Time, error) {
	if _, err := r.provider(m); err != nil {
		return time.Time{}, err
	}
	for _, c := range []struct{ field, expr string }{{"successCondition", m.SuccessCondition}, {"failureCondition", m.FailureCondition}} {
		if c.expr == "" {
			continue
		}
		if _, err := r.compile(c.expr); err != nil {
			return time.Time{}, fmt.Errorf("%s %q: %w", c.field, c.expr, err)
		}
	}
	s, err := scheduleOf(m)
	if err != nil {
		return time.Time{}, err
	}
	return s.due(res, started), nil
}

// provider picks the metric's provider by the name of the one non-nil field of
// MetricProvider.
func (r *Runner) provider(m *v1alpha1.Metric) (Provider, error) {
	name, err := providerName(m.Provider)
	if err != nil {
		return nil, err
	}
	p := r.Providers[name]
	if p == nil {
		return nil, fmt.Errorf("provider %q is not available", name)
	}
	return p, nil
}

// providerName is the JSON name of the single non-nil field of p.
func providerName(p v1alpha1.MetricProvider) (string, error) {
	names := spec.ProviderNames(p)
	switch len(names) {
	case 0:
		return "", fmt.Errorf("no provider set")
	case 1:
		return names[0], nil
	default:
		return "", fmt.Errorf("more than one provider set: %s", strings.Join(names, ", "))
	}
}

// measure takes one measurement and records it in res. It reports false, recording nothing,
// when ctx ended during the measurement.
func (r *Runner) measure(ctx context.Context, now time.Time, m *v1alpha1.Metric, res *v1alpha1.MetricResult, target Target, log *slog.Logger) bool {
	p, _ := r.provider(m) // checked by prepare
	target.Measurement = res.Count + res.Error + 1
	val, err := p.Measure(ctx, *m, target)
	if err != nil && ctx.Err() != nil {
		return false
	}
	meas := v1alpha1.Measurement{StartedAt: metav1.NewTime(now), FinishedAt: metav1.NewTime(now)}
	if err != nil {
		meas.Phase = v1alpha1.AnalysisError
		meas.Message = err.Error()
	} else {
		meas.Value = valueText(val)
		meas.Phase, meas.Message = r.judge(m, val, target.Args)
		if val.Inconclusive {
			// The provider lacks data (too few requests, no series): take the measurement
			// again, up to waitForData past its due time, before it counts.
			if s, err := scheduleOf(m); err == nil && now.Before(s.waitUntil(res, target.Since)) {
				meas.Phase = v1alpha1.AnalysisPending
				meas.Message = fmt.Sprintf("waiting for data until %s (waitForData %s): %s",
					s.waitUntil(res, target.Since).UTC().Format(time.TimeOnly), s.waitForData, valueText(val))
				res.Message = meas.Message
				appendMeasurement(res, meas)
				log.Debug("waiting for data", "metric", m.Name, "value", meas.Value, "message", meas.Message)
				return true
			}
		}
	}

	switch meas.Phase {
	case v1alpha1.AnalysisSuccessful:
		res.Successful++
	case v1alpha1.AnalysisFailed:
		res.Failed++
	case v1alpha1.AnalysisInconclusive:
		res.Inconclusive++
	}
	if meas.Phase == v1alpha1.AnalysisError {
		// As in Argo Rollouts, errors do not count towards count: a metric of count 3 needs
		// 3 real measurements.
		res.Error++
		res.ConsecutiveError++
	} else {
		res.Count++
		res.ConsecutiveError = 0
	}
	if res.Message != "" && strings.HasPrefix(res.Message, "waiting for data") {
		res.Message = ""
	}
	appendMeasurement(res, meas)
	log.Debug("measured", "metric", m.Name, "phase", meas.Phase, "value", meas.Value, "message", meas.Message)
	return true
}

func earliest(a, b time.Time) time.Time {
	if a.IsZero() || b.Before(a) {
		return b
	}
	return a
}

// appendMeasurement records meas in res, keeping the last keepMeasurements.
func appendMeasurement(res *v1alpha1.MetricResult, meas v1alpha1.Measurement) {
	res.Measurements = append(res.Measurements, meas)
	if n := len(res.Measurements); n > keepMeasurements {
		res.Measurements = slices.Clone(res.Measurements[n-keepMeasurements:])
	}
}
