package local

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/engine"
)

// measurements takes analysis measurements off the control loop: a provider may take minutes
// (a test suite run by the command provider, a slow Prometheus), and the loop and the API must
// not wait for it. Each run has at most one measurement in flight; its result is merged into
// the rollout's status by the next reconcile.
type measurements struct {
	mu sync.Mutex
	// inFlight cancels each measurement in flight, by rollout/run name.
	inFlight map[string]context.CancelFunc
	nextDue  map[string]time.Time
	// done holds finished steps, by rollout/run name, until reconcile merges them.
	done map[string]v1alpha1.AnalysisRunStatus
}

func newMeasurements() *measurements {
	return &measurements{inFlight: map[string]context.CancelFunc{}, nextDue: map[string]time.Time{}, done: map[string]v1alpha1.AnalysisRunStatus{}}
}

// runAnalysis merges finished measurements into r's analysis runs and starts the ones that
// are due. c.mu is held.
func (c *Controller) runAnalysis(ctx context.Context, now time.Time, r *v1alpha1.Rollout) {
	m := c.measure
	for i := range r.Status.Analysis {
		run := &r.Status.Analysis[i]
		key := r.Name + "/" + run.Name
		m.mu.Lock()
		res, finished := m.done[key]
		delete(m.done, key)
		_, busy := m.inFlight[key]
		due := m.nextDue[key]
		m.mu.Unlock()

		// A result of an earlier run of the same name (a retry) does not count.
		if finished && res.StartedAt.Equal(&run.StartedAt) && !run.Phase.Completed() {
			before := run.Phase
			*run = res
			if run.Phase != before && run.Phase.Completed() {
				c.recordRunEnd(r.Name, run)
			}
		}
		if run.Phase.Completed() {
			continue
		}
		if run.Kind == v1alpha1.AnalysisKindJudge {
			// The judge reads the proxy's counters, quick enough for the loop; its scrapes of
			// business metrics run off the loop.
			before := run.Phase
			c.stepJudge(ctx, now, r, run)
			if run.Phase != before && run.Phase.Completed() {
				c.recordRunEnd(r.Name, run)
			}
			continue
		}
		if busy || now.Before(due) {
			continue
		}
		templates := map[string]*v1alpha1.AnalysisTemplate{}
		for _, ref := range run.Spec.Templates {
			t, err := c.store.GetAnalysisTemplate(ref.TemplateName)
			if err != nil {
				run.Phase = v1alpha1.AnalysisError
				run.Message = fmt.Sprintf("analysis template %q: %s", ref.TemplateName, err.Error())
				break
			}
			templates[ref.TemplateName] = t
		}
		if run.Phase.Completed() {
			continue
		}
		if run.Phase == "" || run.Phase == v1alpha1.AnalysisPending {
			run.Phase = v1alpha1.AnalysisRunning
		}
		work := *run.DeepCopy()
		mctx, cancel := context.WithCancel(ctx)
		m.mu.Lock()
		m.inFlight[key] = cancel
		m.mu.Unlock()
		go func() {
			next := c.runner.Step(mctx, now, r.Name, &work, templates)
			cancelled := mctx.Err() != nil // stopped by stopGone, or ramp is stopping
			cancel()
			m.mu.Lock()
			delete(m.inFlight, key)
			if !cancelled {
				m.done[key] = work
				m.nextDue[key] = next
			}
			m.mu.Unlock()
			c.kickLoop()
		}()
	}
	c.forgetJudges(r)
}

// recordRunEnd records the end of an analysis run as an event.
func (c *Controller) recordRunEnd(rollout string, run *v1alpha1.AnalysisRunStatus) {
	typ := engine.EventNormal
	if run.Phase != v1alpha1.AnalysisSuccessful {
		typ = engine.EventWarning
	}
	c.record(rollout, typ, "Analysis"+string(run.Phase), fmt.Sprintf("analysis %s: %s %s", run.Name, run.Phase, run.Message), run.Revision)
}

// stopGone cancels the measurements of r's runs that the engine no longer wants (an abort, a
// promotion, a new revision), so a test suite stops when its rollout does.
func (m *measurements) stopGone(r *v1alpha1.Rollout) {
	live := map[string]bool{}
	for _, run := range r.Status.Analysis {
		if !run.Phase.Completed() {
			live[r.Name+"/"+run.Name] = true
		}
	}
	prefix := r.Name + "/"
	m.mu.Lock()
	defer m.mu.Unlock()
	for key, cancel := range m.inFlight {
		if strings.HasPrefix(key, prefix) && !live[key] {
			cancel()
		}
	}
}
