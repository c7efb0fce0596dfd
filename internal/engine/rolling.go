package engine

import (
	"fmt"
	"slices"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/spec"
)

// rolling replaces old instances with new ones a few at a time: at most maxSurge instances
// above replicas, and never fewer than replicas-maxUnavailable available. Traffic follows
// the ready instances.
func (d *decision) rolling() {
	ru := d.spec.Strategy.RollingUpdate
	if ru == nil {
		ru = &v1alpha1.RollingUpdateStrategy{}
	}
	rev, n := d.newRev, d.replicas
	surge := scaledValue(ru.MaxSurge, spec.DefaultMaxSurge, n, true)
	unavail := scaledValue(ru.MaxUnavailable, spec.DefaultMaxUnavailable, n, false)
	if surge == 0 && unavail == 0 {
		unavail = 1
	}

	if ru.Analysis != nil {
		run := d.ensureRun(v1alpha1.AnalysisKindBackground, nil, *ru.Analysis, d.st.StableRevision)
		if _, aborted := d.judge(run); aborted {
			return
		}
	}
	// pre-rollout: while it holds, the update is paused before its first new instance (the
	// paused path below changes no instance count).
	if prev, _ := d.prevDesired(rev); prev == 0 {
		if _, aborted := d.gate(fmt.Sprintf("the rolling update to revision %d starts", rev), nil, 0, v1alpha1.WebhookPreRollout); aborted {
			return
		}
	}

	// The old revisions: everything but rev that was desired last time or still runs.
	olds := map[int64]int32{}
	for _, r := range d.in.Rollout.Status.Revisions {
		if r.Revision != rev && r.Desired > 0 {
			olds[r.Revision] = r.Desired
		}
	}
	if _, ok := olds[d.st.StableRevision]; !ok {
		if _, seen := d.prevDesired(d.st.StableRevision); !seen {
			olds[d.st.StableRevision] = n
		}
	}
	newDesired, _ := d.prevDesired(rev)
	newReady, newAvail := d.counts(rev)

	// The pause point: scale up no further than it, and hold once it is reached.
	hold := int32(-1)
	if ru.Pause != nil && d.beforePausePoint() {
		var aborted bool
		if hold, aborted = d.rollingPause(ru.Pause, newAvail); aborted {
			return
		}
	}

	if !d.isPaused() {
		// Scale up within the surge.
		var oldDesired, oldAvail int32
		for r, want := range olds {
			oldDesired += want
			_, a := d.counts(r)
			oldAvail += min(a, want)
		}
		prev := newDesired
		if room := n + surge - (newDesired + oldDesired); room > 0 && newDesired < n {
			newDesired += min(room, n-newDesired)
		}
		if hold >= 0 {
			newDesired = min(newDesired, max(hold, prev))
		}
		// Scale down old within the availability bound: unavailable old instances may go at
		// once; available ones while enough others are available.
		removable := (oldDesired - oldAvail) + max(0, newAvail+oldAvail-(n-unavail))
		removable = min(removable, oldDesired)
		keys := make([]int64, 0, len(olds))
		for r := range olds {
			keys = append(keys, r)
		}
		slices.Sort(keys) // oldest revisions go first
		for _, r := range keys {
			cut := min(removable, olds[r])
			olds[r] -= cut
			removable -= cut
		}
	}
	newDesired = min(newDesired, n)

	for r, want := range olds {
		if want > 0 {
			d.scale(r, want)
		}
	}
	d.keepWarm(rev, olds)
	d.scale(rev, newDesired)
	if d.checkHealth(rev, newDesired) {
		return
	}

	// Traffic follows ready instances, so each instance gets an equal share.
	weights := map[int64]int32{}
	total := newReady
	for r, want := range olds {
		if want > 0 {
			ready, _ := d.counts(r)
			total += min(ready, want)
		}
	}
	if total == 0 {
		weights[d.st.StableRevision] = 100
	} else {
		left := int32(100)
		keys := make([]int64, 0, len(olds))
		for r, want := range olds {
			if want > 0 {
				keys = append(keys, r)
			}
		}
		slices.Sort(keys)
		for _, r := range keys {
			ready, _ := d.counts(r)
			w := 100 * min(ready, olds[r]) / total
			weights[r] = w
			left -= w
		}
		weights[rev] = left
	}
	d.out.Routes.Weights = weights
	d.st.CanaryWeight = weights[rev]

	oldLeft := int32(0)
	for _, want := range olds {
		oldLeft += want
	}
	if newAvail >= n && oldLeft == 0 {
		d.promote(rev)
		return
	}
	if !d.gateWaiting && !slices.ContainsFunc(d.st.PauseConditions, func(c v1alpha1.PauseCondition) bool { return c.Reason == v1alpha1.PauseReasonRollingUpdate }) {
		d.st.Message = fmt.Sprintf("rolling update to revision %d: %d/%d new instances available, %d old left", rev, newAvail, n, oldLeft)
	}
}

// keepWarm keeps running, out of rotation, the old instances the update took out of
// rotation, when the rollout has a watch window: a switch back (an abort during the update,
// or the watch window after it) then needs no start-up. olds are the instances each old
// revision keeps in rotation. A workload that rolls itself (Capabilities.RollsItself)
// follows Output.Workload, not Scale, and keeps no warm instances.
func (d *decision) keepWarm(rev int64, olds map[int64]int32) {
	if spec.WatchWindow(&d.spec.Strategy) <= 0 {
		return
	}
	for _, rs := range d.in.Rollout.Status.Revisions {
		r := rs.Revision
		if r == rev || rs.Desired+rs.Warm == 0 {
			continue
		}
		var running int32
		for _, in := range d.in.Instances[r] {
			if !in.Terminating {
				running++
			}
		}
		running = min(running, rs.Desired+rs.Warm)
		if want := olds[r]; running > want {
			if d.warm == nil {
				d.warm = map[int64]int32{}
			}
			d.warm[r] = running - want
			d.scale(r, running)
		}
	}
}

// PausePoint is the number of instances of the new revision at which a rolling update with
// pause p holds, out of replicas: at least 1 and at most replicas.
func PausePoint(p *v1alpha1.RollingUpdatePause, replicas int32) int32 {
	n := scaledValue(&p.Updated, "", replicas, true)
	return max(1, min(n, replicas))
}

// beforePausePoint reports whether the rolling update under way has not yet gone past its
// pause point (status.currentStepIndex 0).
func (d *decision) beforePausePoint() bool {
	return d.st.CurrentStepIndex != nil && *d.st.CurrentStepIndex == 0
}

// rollingPause holds the update once newAvail instances of the new revision reach the pause
// point, runs the pause's analysis, and lets the update go on when the analysis succeeded
// and the duration passed, or on promote. It returns the pause point while the update must
// not go past it (-1 once it may), and whether the rollout was aborted.
func (d *decision) rollingPause(p *v1alpha1.RollingUpdatePause, newAvail int32) (hold int32, aborted bool) {
	rev, n := d.newRev, d.replicas
	at := PausePoint(p, n)
	pass := func(why string) int32 {
		one := int32(1)
		d.st.CurrentStepIndex = &one
		d.unpause(v1alpha1.PauseReasonRollingUpdate)
		now := metav1.NewTime(d.now)
		d.st.StepStartTime = &now
		d.st.LastProgressTime = &now
		d.event(EventNormal, "RollingUpdateResumed", fmt.Sprintf("rolling update to revision %d goes on past %d/%d new instances: %s", rev, at, n, why))
		return -1
	}
	if d.st.Promote || d.st.PromoteFull {
		d.st.Promote = false
		return pass("promoted"), false
	}
	if newAvail < at {
		return at, false
	}
	var since metav1.Time
	for _, c := range d.st.PauseConditions {
		if c.Reason == v1alpha1.PauseReasonRollingUpdate {
			since = c.StartTime
		}
	}
	if since.IsZero() {
		d.pause(v1alpha1.PauseReasonRollingUpdate)
		since = metav1.NewTime(d.now)
		what := "until `ramp promote`"
		switch {
		case p.Analysis != nil:
			what = "while analysis runs"
		case p.Duration != nil:
			what = "for " + duration(p.Duration).String()
		}
		d.event(EventNormal, "RollingUpdatePaused", fmt.Sprintf("rolling update to revision %d holds at %d/%d new instances %s", rev, newAvail, n, what))
		if newAvail > at {
			d.event(EventWarning, "RollingUpdatePastPausePoint", fmt.Sprintf("rolling update to revision %d reached %d/%d new instances, past its pause point of %d, before it could hold: the workload rolled on by itself (a change that also resumed it, or a pause that came late)", rev, newAvail, n, at))
		}
	}
	waiting := []string{}
	if p.Duration != nil {
		end := since.Add(duration(p.Duration))
		if d.now.Before(end) {
			d.requeue(end)
			waiting = append(waiting, fmt.Sprintf("until %s", end.UTC().Format(time.RFC3339)))
		}
	}
	if p.Analysis != nil {
		run := d.ensureRun(v1alpha1.AnalysisKindPause, nil, *p.Analysis, d.st.StableRevision)
		passed, aborted := d.judge(run)
		if aborted {
			return at, true
		}
		if !passed {
			waiting = append(waiting, "for analysis "+run.Name)
		}
	} else if p.Duration == nil {
		waiting = append(waiting, "for `ramp promote`")
	}
	if len(waiting) == 0 {
		why := "the pause ended"
		if p.Analysis != nil {
			why = "analysis succeeded"
		}
		return pass(why), false
	}
	if !slices.ContainsFunc(d.st.PauseConditions, func(c v1alpha1.PauseCondition) bool { return c.Reason == v1alpha1.PauseReasonInconclusive }) {
		past := ""
		if newAvail > at {
			past = fmt.Sprintf(" (past its pause point of %d)", at)
		}
		d.st.Message = fmt.Sprintf("rolling update to revision %d holds at %d/%d new instances%s, waiting %s", rev, newAvail, n, past, strings.Join(waiting, " and "))
	}
	return at, false
}
