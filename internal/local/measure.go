package local

import (
	"context"
	"fmt"
	"time"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/analysis"
	"ramp.dev/ramp/internal/engine"
)

// runAnalysis merges finished measurements into r's analysis runs and starts the ones that
// are due, off the control loop (analysis.Async): a provider may take minutes (a test suite
// run by the command provider, a slow Prometheus), and the loop and the API must not wait for
// it. Each run has at most one measurement in flight; its result is merged into the rollout's
// status by the next reconcile. c.mu is held.
func (c *Controller) runAnalysis(ctx context.Context, now time.Time, r *v1alpha1.Rollout) {
	for i := range r.Status.Analysis {
		run := &r.Status.Analysis[i]
		if run.Kind == v1alpha1.AnalysisKindJudge || run.Kind == v1alpha1.AnalysisKindWatch {
			if run.Phase.Completed() {
				continue
			}
			// The judge reads the proxy's counters, quick enough for the loop; its scrapes of
			// business metrics run off the loop.
			before := run.Phase
			if run.Kind == v1alpha1.AnalysisKindWatch {
				c.stepWatch(ctx, now, r, run)
			} else {
				c.stepJudge(ctx, now, r, run)
			}
			if run.Phase != before && run.Phase.Completed() {
				c.recordRunEnd(r.Name, run)
			}
			continue
		}
		before := run.Phase
		c.measure.Step(ctx, now, analysis.Target{Rollout: r.Name}, run, func() (map[string]*v1alpha1.AnalysisTemplate, error) {
			templates := map[string]*v1alpha1.AnalysisTemplate{}
			for _, ref := range run.Spec.Templates {
				t, err := c.store.GetAnalysisTemplate(ref.TemplateName)
				if err != nil {
					return nil, fmt.Errorf("analysis template %q: %s", ref.TemplateName, err.Error())
				}
				templates[ref.TemplateName] = t
			}
			return templates, nil
		})
		if run.Phase != before && run.Phase.Completed() {
			c.recordRunEnd(r.Name, run)
		}
	}
	c.forgetJudges(r)
	c.forgetWatches(r)
}

// recordRunEnd records the end of an analysis run as an event.
func (c *Controller) recordRunEnd(rollout string, run *v1alpha1.AnalysisRunStatus) {
	typ := engine.EventNormal
	if run.Phase != v1alpha1.AnalysisSuccessful {
		typ = engine.EventWarning
	}
	c.record(rollout, typ, "Analysis"+string(run.Phase), fmt.Sprintf("analysis %s: %s %s", run.Name, run.Phase, run.Message), run.Revision)
}
