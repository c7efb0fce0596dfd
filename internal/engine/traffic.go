package engine

import (
	"fmt"
	"math"
	"strings"
	"time"
)

// routeRecheck is how soon the engine decides again while it waits for the traffic layer to
// show the weight the last decision set.
const routeRecheck = 2 * time.Second

// trafficFailing reports whether carrying out earlier decisions on the traffic layer fails
// (Input.Traffic.Error). While it does, the rollout waits and says why; once it has lasted the
// progress deadline, counted from when it began or from the start of the current step,
// whichever is later, the rollout aborts (not while the user paused it).
func (d *decision) trafficFailing() (failing, aborted bool) {
	t := d.in.Traffic
	if t == nil || t.Error == "" {
		return false, false
	}
	since := t.FailingSince
	if s := d.st.StepStartTime; s != nil && s.Time.After(since) {
		since = s.Time
	}
	if since.IsZero() || since.After(d.now) {
		since = d.now
	}
	deadline := time.Duration(d.deadlineSeconds()) * time.Second
	at := since.Add(deadline)
	if !d.now.Before(at) && !d.spec.Paused {
		d.abort(fmt.Sprintf("traffic could not be routed for %s (progressDeadlineSeconds): %s", deadline, t.Error))
		return true, true
	}
	d.requeue(at)
	return true, false
}

// trafficWaitMessage says why the rollout waits on the traffic layer and when it gives up.
func (d *decision) trafficWaitMessage(what string) string {
	t := d.in.Traffic
	since := t.FailingSince
	if s := d.st.StepStartTime; s != nil && s.Time.After(since) {
		since = s.Time
	}
	if since.IsZero() || since.After(d.now) {
		since = d.now
	}
	at := since.Add(time.Duration(d.deadlineSeconds()) * time.Second)
	return fmt.Sprintf("%s waits: %s; the rollout aborts at %s (progressDeadlineSeconds %d) unless this is fixed",
		what, t.Error, at.UTC().Format(time.RFC3339), d.deadlineSeconds())
}

// weightHeld reports whether the traffic layer was seen to hold weight w for the canary; true
// when the adapter does not observe it.
func (d *decision) weightHeld(w int32) bool {
	t := d.in.Traffic
	if t == nil || t.CanaryWeight == nil || *t.CanaryWeight == w {
		return true
	}
	d.requeue(d.now.Add(routeRecheck))
	return false
}

// ReplicasForWeight is how many canary instances beside n stable ones give the canary about
// weight w percent of the requests when a Service splits them by ready instances:
// c/(n+c) ≈ w, rounded up, and at most n (so 50% and more give n, an even split).
func ReplicasForWeight(w, n int32) int32 {
	switch {
	case w <= 0 || n <= 0:
		return 0
	case w >= 50:
		return n
	}
	return int32(math.Ceil(float64(w) * float64(n) / float64(100-w)))
}

// readyShares returns each revision's ready instances and their sum.
func (d *decision) readyShares() (map[int64]int32, int32) {
	out := map[int64]int32{}
	var total int32
	for rev := range d.in.Instances {
		ready, _ := d.counts(rev)
		if ready > 0 {
			out[rev] = ready
			total += ready
		}
	}
	return out, total
}

// observeWeight fills in the canary's real share of traffic (status.observedWeight), and
// returns a note naming the replica approximation when it differs from the step's weight.
func (d *decision) observeWeight() (note string) {
	d.st.ObservedWeight = nil
	if d.spec.Strategy.Canary == nil || d.st.CanaryRevision == 0 || d.st.Abort {
		return ""
	}
	if !d.in.Capabilities.WeightsByReplicas {
		if t := d.in.Traffic; t != nil && t.CanaryWeight != nil {
			w := *t.CanaryWeight
			d.st.ObservedWeight = &w
		}
		return ""
	}
	shares, total := d.readyShares()
	if total == 0 {
		return ""
	}
	canary := shares[d.st.CanaryRevision]
	real := int32(math.Round(100 * float64(canary) / float64(total)))
	d.st.ObservedWeight = &real
	if real == d.st.CanaryWeight {
		return ""
	}
	return fmt.Sprintf("Service router: weight approximated by replicas, %d of %d ready pods = %d%% for setWeight %d", canary, total, real, d.st.CanaryWeight)
}

// approxSep starts the approximation note in a status message.
const approxSep = "; Service router: "

// withNote puts note at the end of msg, replacing an earlier one.
func withNote(msg, note string) string {
	if i := strings.Index(msg, approxSep); i >= 0 {
		msg = msg[:i]
	}
	if note == "" {
		return msg
	}
	return msg + "; " + note
}

// realWeights is each revision's real share of traffic (percent) when it is observed: with a
// layer that splits by instances, each revision's share of the ready instances; with a router
// seen to hold the canary's weight, that weight and the rest for stable. Nil when not observed.
func (d *decision) realWeights() map[int64]int32 {
	if d.spec.Strategy.Canary == nil {
		return nil
	}
	if d.in.Capabilities.WeightsByReplicas {
		shares, total := d.readyShares()
		if total == 0 {
			return nil
		}
		out := map[int64]int32{}
		for rev, n := range shares {
			out[rev] = int32(math.Round(100 * float64(n) / float64(total)))
		}
		return out
	}
	if d.st.ObservedWeight != nil && d.st.StableRevision != 0 {
		w := *d.st.ObservedWeight
		return map[int64]int32{d.st.StableRevision: 100 - w, d.st.CanaryRevision: w}
	}
	return nil
}

// stepText says where the rollout is in its strategy (status.step): "i/n" for the canary step
// being run, "n/n" when all are done; for blueGreen "1/2" while the preview runs (or after an
// abort) and "2/2" once traffic is switched; "-" for a rolling update or a canary with no steps.
func (d *decision) stepText() string {
	switch {
	case d.spec.Strategy.Canary != nil:
		n := len(d.spec.Strategy.Canary.Steps)
		if n == 0 || d.st.CurrentStepIndex == nil {
			return "-"
		}
		return fmt.Sprintf("%d/%d", min(int(*d.st.CurrentStepIndex)+1, n), n)
	case d.spec.Strategy.BlueGreen != nil:
		if d.st.PreviewRevision != 0 || d.st.Abort && d.st.StableRevision != 0 {
			return "1/2"
		}
		return "2/2"
	}
	return "-"
}
