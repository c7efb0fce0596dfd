package engine

import (
	"fmt"
	"slices"

	"ramp.dev/ramp/api/v1alpha1"
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
	surge := scaledValue(ru.MaxSurge, "25%", n, true)
	unavail := scaledValue(ru.MaxUnavailable, "25%", n, false)
	if surge == 0 && unavail == 0 {
		unavail = 1
	}

	if ru.Analysis != nil {
		run := d.ensureRun(v1alpha1.AnalysisKindBackground, nil, *ru.Analysis, d.st.StableRevision)
		if _, aborted := d.judge(run); aborted {
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

	if !d.isPaused() {
		// Scale up within the surge.
		var oldDesired, oldAvail int32
		for r, want := range olds {
			oldDesired += want
			_, a := d.counts(r)
			oldAvail += min(a, want)
		}
		if room := n + surge - (newDesired + oldDesired); room > 0 && newDesired < n {
			newDesired += min(room, n-newDesired)
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
	d.st.Message = fmt.Sprintf("rolling update to revision %d: %d/%d new instances available, %d old left", rev, newAvail, n, oldLeft)
}
