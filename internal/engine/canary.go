package engine

import (
	"fmt"
	"math"
	"slices"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/spec"
)

// canary runs the canary steps: stable keeps its full scale while the canary takes a share
// of traffic step by step, then the canary becomes stable.
func (d *decision) canary() {
	c := d.spec.Strategy.Canary
	rev, stable := d.newRev, d.st.StableRevision
	steps := c.Steps
	if d.st.CurrentStepIndex == nil {
		zero := int32(0)
		d.st.CurrentStepIndex = &zero
	}
	idx := int(*d.st.CurrentStepIndex)
	// While the traffic layer fails to do what ramp set, no step completes and nothing is
	// promoted: the status would tell traffic goes where it does not.
	failing, aborted := d.trafficFailing()
	if aborted {
		return
	}
	if d.preRolloutHeld() {
		return
	}
	if d.st.PromoteFull && !failing {
		if idx < len(steps) {
			d.event(EventNormal, "PromotedFull", fmt.Sprintf("revision %d promoted past all remaining steps", rev))
		}
		idx = len(steps)
		d.st.PauseConditions = nil
	}

	// held: an inconclusive background analysis paused the rollout, and a paused rollout
	// takes no step (nor promotes) until `ramp resume` runs the analysis again or `ramp
	// promote` goes on without it.
	held := false
	if c.Analysis != nil && !d.st.PromoteFull {
		run := d.ensureRun(v1alpha1.AnalysisKindBackground, nil, *c.Analysis, stable)
		if _, aborted := d.judge(run); aborted {
			return
		}
		held = run.Phase == v1alpha1.AnalysisInconclusive
	}
	// The sequential judge watches the canary from the first step until promotion; the
	// adapter feeds it. Its failure aborts like any analysis run's.
	if spec.Judge(c).Enabled && !d.st.PromoteFull {
		run := d.ensureRun(v1alpha1.AnalysisKindJudge, nil, v1alpha1.RolloutAnalysis{}, stable)
		if _, aborted := d.judge(run); aborted {
			return
		}
	}

	for idx < len(steps) && !d.spec.Paused && !held {
		done, aborted := d.canaryStep(idx, steps[idx])
		if aborted {
			return
		}
		if failing || d.gated {
			break // a promote waits too; it never skips a gate
		}
		if !done && d.st.Promote {
			d.st.Promote = false
			done = true
			d.event(EventNormal, "Promoted", fmt.Sprintf("step %d/%d skipped by promote", idx+1, len(steps)))
		}
		if !done {
			break
		}
		idx++
		i := int32(idx)
		d.st.CurrentStepIndex = &i
		now := metav1.NewTime(d.now)
		d.st.StepStartTime = &now
		d.st.LastProgressTime = &now
		d.st.PauseConditions = slices.DeleteFunc(d.st.PauseConditions, func(c v1alpha1.PauseCondition) bool {
			return c.Reason != v1alpha1.PauseReasonUser
		})
		d.event(EventNormal, "StepCompleted", fmt.Sprintf("step %d/%d completed", idx, len(steps)))
		if steps[idx-1].SetWeight != nil && d.in.Capabilities.WeightsByReplicas {
			if note := d.observeWeight(); note != "" {
				d.event(EventWarning, "WeightApproximated", fmt.Sprintf("step %d/%d: %s", idx, len(steps), note))
			}
		}
	}
	i := int32(idx)
	d.st.CurrentStepIndex = &i

	desired := d.canaryDesired()
	if idx >= len(steps) {
		desired = d.replicas
	}
	d.scale(stable, d.replicas)
	d.scale(rev, desired)
	if d.checkHealth(rev, desired) {
		return
	}
	d.canaryRoutes()

	note := d.observeWeight()
	if idx < len(steps) || held {
		switch {
		case idx >= len(steps):
			if d.st.Message == "" || !d.isPaused() {
				d.st.Message = fmt.Sprintf("all %d steps done; promotion held: the background analysis was inconclusive (resume measures again, promote goes on)", len(steps))
			}
		case failing:
			d.st.Message = d.trafficWaitMessage(fmt.Sprintf("step %d/%d (%s)", idx+1, len(steps), describeStep(steps[idx])))
		case d.st.Message == "" || !d.isPaused():
			d.st.Message = fmt.Sprintf("step %d/%d: %s; canary weight %d%%", idx+1, len(steps), describeStep(steps[idx]), d.st.CanaryWeight)
		}
		d.st.Message = withNote(d.st.Message, note)
		return
	}
	if failing {
		d.st.Message = d.trafficWaitMessage(fmt.Sprintf("promotion of revision %d", rev))
		return
	}
	// All steps done: promote once the canary runs at full scale.
	_, avail := d.counts(rev)
	if avail < d.replicas {
		d.st.Message = fmt.Sprintf("promoting revision %d: %d/%d instances available", rev, avail, d.replicas)
		return
	}
	if open, _ := d.gate(fmt.Sprintf("promoting revision %d", rev), nil, d.st.CanaryWeight, v1alpha1.WebhookConfirmPromotion); !open {
		return // held, or aborted
	}
	d.promote(rev)
}

// promote makes rev stable and sends all traffic to it; the old stable stops.
func (d *decision) promote(rev int64) {
	old := d.st.StableRevision
	d.st.StableRevision = rev
	d.st.CanaryRevision = 0
	runs := d.st.Analysis
	d.resetProgress()
	// Finished analysis runs of this revision stay visible; running ones stop.
	for _, r := range runs {
		if r.Phase.Completed() {
			d.st.Analysis = append(d.st.Analysis, r)
			d.wanted[r.Name] = true
		} else {
			delete(d.wanted, r.Name)
		}
	}
	d.setDoneStep()
	d.warm = nil
	d.out.Scale = map[int64]int32{rev: d.replicas}
	d.out.Routes = Routes{Weights: map[int64]int32{rev: 100}}
	d.openWatch(rev, old)
	msg := fmt.Sprintf("revision %d promoted to stable, replacing revision %d", rev, old)
	if w := d.st.Watch; w != nil {
		msg += fmt.Sprintf("; revision %d stays warm until %s (watch window)", old, w.Until.UTC().Format(time.RFC3339))
	}
	d.event(EventNormal, "RolloutCompleted", msg)
	d.inform(v1alpha1.WebhookPostRollout, rev)
	d.healthy()
	d.watchNote()
}

// canaryStep runs one step and reports whether it is done.
func (d *decision) canaryStep(idx int, step v1alpha1.CanaryStep) (done, aborted bool) {
	rev := d.newRev
	switch {
	case step.SetWeight != nil:
		if w := *step.SetWeight; w > d.st.CanaryWeight {
			i := int32(idx)
			what := fmt.Sprintf("step %d/%d sets the canary weight from %d%% to %d%%", idx+1, len(d.spec.Strategy.Canary.Steps), d.st.CanaryWeight, w)
			open, aborted := d.gate(what, &i, w, v1alpha1.WebhookConfirmTrafficIncrease)
			if aborted || !open {
				d.gated = !aborted
				return false, aborted
			}
		}
		d.st.CanaryWeight = *step.SetWeight
		_, avail := d.counts(rev)
		return avail >= d.canaryDesired() && d.weightHeld(*step.SetWeight), false
	case step.Pause != nil:
		if step.Pause.Duration == nil {
			d.pause(v1alpha1.PauseReasonStep)
			d.st.Message = fmt.Sprintf("step %d/%d: paused until `ramp promote`; canary weight %d%%", idx+1, len(d.spec.Strategy.Canary.Steps), d.st.CanaryWeight)
			return false, false
		}
		start := d.now
		if d.st.StepStartTime != nil {
			start = d.st.StepStartTime.Time
		}
		end := start.Add(duration(step.Pause.Duration))
		if d.now.Before(end) {
			d.pause(v1alpha1.PauseReasonStep)
			d.requeue(end)
			d.st.Message = fmt.Sprintf("step %d/%d: paused for %s; canary weight %d%%", idx+1, len(d.spec.Strategy.Canary.Steps), duration(step.Pause.Duration), d.st.CanaryWeight)
			return false, false
		}
		d.unpause(v1alpha1.PauseReasonStep)
		return true, false
	case step.Analysis != nil:
		i := int32(idx)
		run := d.ensureRun(v1alpha1.AnalysisKindStep, &i, *step.Analysis, d.st.StableRevision)
		d.endEarly(run)
		passed, aborted := d.judge(run)
		return passed, aborted
	case step.SetHeaderRoute != nil:
		hr := *step.SetHeaderRoute
		d.st.HeaderRoutes = slices.DeleteFunc(d.st.HeaderRoutes, func(r v1alpha1.SetHeaderRoute) bool { return r.Name == hr.Name })
		if len(hr.Match)+len(hr.CookieMatch) > 0 {
			d.st.HeaderRoutes = append(d.st.HeaderRoutes, hr)
		}
		return true, false
	case step.SetCanaryScale != nil:
		s := step.SetCanaryScale
		switch {
		case s.Replicas != nil:
			n := *s.Replicas
			d.st.CanaryScale = &n
		case s.Weight != nil:
			n := int32(math.Ceil(float64(*s.Weight) * float64(d.replicas) / 100))
			d.st.CanaryScale = &n
		default:
			d.st.CanaryScale = nil
		}
		_, avail := d.counts(rev)
		return avail >= d.canaryDesired(), false
	}
	return true, false
}

// canaryDesired is the canary's instance count: set by setCanaryScale, or in proportion to
// its weight (when the traffic layer splits by instances, the count that gives about that
// weight beside stable's: ReplicasForWeight), and at least one so header routes and health
// checks have an instance.
func (d *decision) canaryDesired() int32 {
	if d.st.CanaryScale != nil {
		return *d.st.CanaryScale
	}
	if d.in.Capabilities.WeightsByReplicas {
		return max(ReplicasForWeight(d.st.CanaryWeight, d.replicas), 1)
	}
	n := int32(math.Ceil(float64(d.st.CanaryWeight) * float64(d.replicas) / 100))
	return max(n, 1)
}

func (d *decision) canaryRoutes() {
	w := d.st.CanaryWeight
	d.out.Routes.Weights = map[int64]int32{d.st.StableRevision: 100 - w, d.newRev: w}
}

func describeStep(s v1alpha1.CanaryStep) string {
	switch {
	case s.SetWeight != nil:
		return fmt.Sprintf("setWeight %d", *s.SetWeight)
	case s.Pause != nil && s.Pause.Duration != nil:
		return fmt.Sprintf("pause %s", duration(s.Pause.Duration))
	case s.Pause != nil:
		return "pause"
	case s.Analysis != nil:
		return "analysis"
	case s.SetHeaderRoute != nil:
		return "setHeaderRoute " + s.SetHeaderRoute.Name
	case s.SetCanaryScale != nil:
		return "setCanaryScale"
	}
	return "empty step"
}

// endEarly ends a running step analysis run with success when the judge has shown the canary
// no worse than stable on the requests since that run began (and the spec allows it).
func (d *decision) endEarly(run *v1alpha1.AnalysisRunStatus) {
	c := d.spec.Strategy.Canary
	if run.Phase.Completed() || !spec.Judge(c).Enabled || !spec.Judge(c).EndAnalysisEarly {
		return
	}
	name := fmt.Sprintf("%s-%d", v1alpha1.AnalysisKindJudge, d.newRev)
	for _, j := range d.st.Analysis {
		if j.Name != name || j.Phase.Completed() || j.NoWorseFor != run.Name {
			continue
		}
		run.Phase = v1alpha1.AnalysisSuccessful
		run.Message = "ended early by the judge: " + j.Message
		d.event(EventNormal, "AnalysisEndedEarly", fmt.Sprintf("analysis %s ended early: %s", run.Name, j.Message))
		return
	}
}
