package analysis

import (
	"fmt"
	"strings"

	"ramp.dev/ramp/api/v1alpha1"
)

// assessMetric decides a metric's phase from its counters, as Argo Rollouts does: Failed
// when failed > failureLimit, Inconclusive when inconclusive > inconclusiveLimit (Failed
// under inconclusivePolicy Fail, never under Ignore), Error when
// consecutiveError > consecutiveErrorLimit, Successful once count measurements were taken,
// else Running. A negative limit means no limit.
func assessMetric(m *v1alpha1.Metric, res *v1alpha1.MetricResult) {
	errorLimit := int32(defaultConsecutiveErrorLimit)
	if m.ConsecutiveErrorLimit != nil {
		errorLimit = *m.ConsecutiveErrorLimit
	}
	s, _ := scheduleOf(m) // checked before measuring
	switch {
	case m.FailureLimit >= 0 && res.Failed > m.FailureLimit:
		res.Phase = v1alpha1.AnalysisFailed
		res.Message = fmt.Sprintf("%d of %d measurements failed (limit %d)", res.Failed, res.Count, m.FailureLimit)
	case m.InconclusivePolicy != v1alpha1.InconclusiveIgnore && m.InconclusiveLimit >= 0 && res.Inconclusive > m.InconclusiveLimit:
		res.Phase = v1alpha1.AnalysisInconclusive
		res.Message = fmt.Sprintf("%d of %d measurements inconclusive (limit %d)", res.Inconclusive, res.Count, m.InconclusiveLimit)
		if m.InconclusivePolicy == v1alpha1.InconclusiveFail {
			res.Phase = v1alpha1.AnalysisFailed
			res.Message = fmt.Sprintf("%d of %d measurements inconclusive (limit %d, inconclusivePolicy Fail)", res.Inconclusive, res.Count, m.InconclusiveLimit)
		}
	case errorLimit >= 0 && res.ConsecutiveError > errorLimit:
		res.Phase = v1alpha1.AnalysisError
		res.Message = fmt.Sprintf("%d consecutive errors (limit %d)", res.ConsecutiveError, errorLimit)
	case s.count > 0 && res.Count >= s.count:
		res.Phase = v1alpha1.AnalysisSuccessful
		res.Message = fmt.Sprintf("%d of %d measurements successful", res.Successful, res.Count)
		switch {
		case m.InconclusivePolicy == v1alpha1.InconclusiveIgnore && res.Inconclusive > 0:
			res.Message += fmt.Sprintf(" (%d failed within limits, %d inconclusive ignored)", res.Failed, res.Inconclusive)
		case res.Failed > 0 || res.Inconclusive > 0:
			res.Message += fmt.Sprintf(" (%d failed, %d inconclusive, within limits)", res.Failed, res.Inconclusive)
		}
	default:
		res.Phase = v1alpha1.AnalysisRunning
		if s.count > 0 {
			res.Message = fmt.Sprintf("%d of %d measurements taken", res.Count, s.count)
		} else {
			res.Message = fmt.Sprintf("%d measurements taken (runs until stopped)", res.Count)
		}
		if res.ConsecutiveError > 0 {
			res.Message += fmt.Sprintf("; %d consecutive errors (limit %d)", res.ConsecutiveError, errorLimit)
		}
	}
	if m.DryRun {
		res.Message = "dry run: " + res.Message
	}
}

// assessRun decides the run's phase from its metrics: Failed if any metric that is not a dry
// run Failed, else Error if any errored, else Inconclusive if any is inconclusive, else
// Successful when all are Successful, else Running. Dry-run metrics never decide; a run of
// only dry-run metrics is Successful once they are all complete.
func assessRun(run *v1alpha1.AnalysisRunStatus, metrics []v1alpha1.Metric) {
	first := map[v1alpha1.AnalysisPhase]*v1alpha1.MetricResult{}
	var decisive, successful, dryDone int
	var dryNotes []string
	for i := range metrics {
		res := metricResult(run, metrics[i].Name)
		if metrics[i].DryRun {
			if res.Phase.Completed() {
				dryDone++
				if res.Phase != v1alpha1.AnalysisSuccessful {
					dryNotes = append(dryNotes, fmt.Sprintf("dry-run metric %q %s", res.Name, strings.ToLower(string(res.Phase))))
				}
			}
			continue
		}
		decisive++
		if first[res.Phase] == nil {
			first[res.Phase] = res
		}
		if res.Phase == v1alpha1.AnalysisSuccessful {
			successful++
		}
	}
	for _, p := range []struct {
		phase v1alpha1.AnalysisPhase
		verb  string
	}{
		{v1alpha1.AnalysisFailed, "failed"},
		{v1alpha1.AnalysisError, "errored"},
		{v1alpha1.AnalysisInconclusive, "inconclusive"},
	} {
		if res := first[p.phase]; res != nil {
			run.Phase = p.phase
			run.Message = fmt.Sprintf("metric %q %s: %s", res.Name, p.verb, res.Message)
			if n := len(res.Measurements); n > 0 {
				run.Message += "; last: " + res.Measurements[n-1].Message
			}
			return
		}
	}
	switch {
	case decisive > 0 && successful == decisive, decisive == 0 && dryDone == len(metrics):
		run.Phase = v1alpha1.AnalysisSuccessful
		run.Message = fmt.Sprintf("%d of %d metrics successful", successful, decisive)
		if len(dryNotes) > 0 {
			run.Message += "; " + strings.Join(dryNotes, ", ")
		}
	default:
		run.Phase = v1alpha1.AnalysisRunning
		run.Message = fmt.Sprintf("%d of %d metrics successful", successful, decisive)
	}
}
