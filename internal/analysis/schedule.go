package analysis

import (
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/util/intstr"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/spec"
)

// Duration reads a duration field as spec.ParseDuration does, and refuses negative ones.
func Duration(v *intstr.IntOrString) (time.Duration, error) {
	d, err := spec.ParseDuration(v)
	if err != nil {
		return 0, err
	}
	if d < 0 {
		return 0, fmt.Errorf("duration %s is negative", v.String())
	}
	return d, nil
}

// schedule is when a metric's measurements are due.
type schedule struct {
	initialDelay time.Duration
	waitForData  time.Duration // how long past its due time a measurement may wait for data
	interval     time.Duration // zero: measure once
	count        int32         // zero: unbounded
}

func scheduleOf(m *v1alpha1.Metric) (schedule, error) {
	var s schedule
	var err error
	if s.initialDelay, err = Duration(m.InitialDelay); err != nil {
		return s, fmt.Errorf("initialDelay: %w", err)
	}
	if s.interval, err = Duration(m.Interval); err != nil {
		return s, fmt.Errorf("interval: %w", err)
	}
	s.waitForData = DefaultWaitForData
	if m.WaitForData != nil {
		if s.waitForData, err = Duration(m.WaitForData); err != nil {
			return s, fmt.Errorf("waitForData: %w", err)
		}
	}
	switch {
	case m.Count != nil && *m.Count > 0:
		s.count = *m.Count
	case m.Interval == nil:
		s.count = 1
	default:
		s.count = 0 // unbounded: until the run is stopped
	}
	return s, nil
}

// due is when the next measurement of the metric is due. Measurement k (0-based, k =
// res.Count) is due at started + initialDelay + k*interval, but never sooner than one
// interval after the last measurement, so that a run that fell behind does not take several
// measurements of the same moment; an errored measurement is retried after
// min(interval, 10s) instead, and one that waited for data (Pending) after min(interval, 1s).
func (s schedule) due(res *v1alpha1.MetricResult, started time.Time) time.Time {
	due := started.Add(s.initialDelay + time.Duration(res.Count)*s.interval)
	if n := len(res.Measurements); n > 0 {
		last := res.Measurements[n-1]
		gap := s.interval
		if last.Phase == v1alpha1.AnalysisError && (gap == 0 || gap > errorRetryInterval) {
			gap = errorRetryInterval
		}
		if last.Phase == v1alpha1.AnalysisPending && (gap == 0 || gap > waitRetryInterval) {
			gap = waitRetryInterval
		}
		if after := last.StartedAt.Add(gap); after.After(due) {
			due = after
		}
	}
	return due
}

// waitUntil is how long measurement k (k = res.Count) may be taken again when the provider
// lacks the data to judge: waitForData past the time it was due.
func (s schedule) waitUntil(res *v1alpha1.MetricResult, started time.Time) time.Time {
	return started.Add(s.initialDelay + time.Duration(res.Count)*s.interval + s.waitForData)
}
