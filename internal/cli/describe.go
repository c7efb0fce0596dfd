package cli

import (
	"fmt"
	"slices"
	"strconv"

	"ramp.dev/ramp/api/v1alpha1"
)

// strategyName names the rollout's strategy.
func strategyName(r *v1alpha1.Rollout) string {
	if n := r.Spec.Strategy.Name(); n != "" {
		return n
	}
	return "-"
}

// stepText is status.step (what the STEP printer column shows): "i/n" for a canary, the step
// being run (1-based) or n when all are done; "1/2" or "2/2" for blueGreen (before and after
// the switch). A status written before status.step existed gets the canary's from its index.
func stepText(r *v1alpha1.Rollout) string {
	if r.Status.Step != "" {
		return r.Status.Step
	}
	c := r.Spec.Strategy.Canary
	if c == nil || len(c.Steps) == 0 || r.Status.CurrentStepIndex == nil {
		return "-"
	}
	n := len(c.Steps)
	return fmt.Sprintf("%d/%d", min(int(*r.Status.CurrentStepIndex)+1, n), n)
}

// newRevision is the revision being rolled out: canary, preview, or the current one.
func newRevision(r *v1alpha1.Rollout) int64 {
	switch st := r.Status; {
	case st.CanaryRevision != 0:
		return st.CanaryRevision
	case st.PreviewRevision != 0:
		return st.PreviewRevision
	}
	return r.Status.CurrentRevision
}

// baseRevision is the revision serving production: active for blueGreen, else stable.
func baseRevision(r *v1alpha1.Rollout) int64 {
	if r.Spec.Strategy.BlueGreen != nil && r.Status.ActiveRevision != 0 {
		return r.Status.ActiveRevision
	}
	return r.Status.StableRevision
}

// readyOf is "ready/desired" of one revision; "0/0" when it has no entry.
func readyOf(r *v1alpha1.Rollout, rev int64) string {
	for _, rs := range r.Status.Revisions {
		if rs.Revision == rev {
			return fmt.Sprintf("%d/%d", rs.Ready, rs.Desired)
		}
	}
	return "0/0"
}

// readyTotal is "ready/desired" over every revision.
func readyTotal(r *v1alpha1.Rollout) string {
	var ready, desired int32
	for _, rs := range r.Status.Revisions {
		ready += rs.Ready
		desired += rs.Desired
	}
	return fmt.Sprintf("%d/%d", ready, desired)
}

func revText(n int64) string {
	if n == 0 {
		return "-"
	}
	return strconv.FormatInt(n, 10)
}

// progress is the state of a rollout as `ramp status` sees it.
type progress int

const (
	progressWaiting progress = iota
	progressDone
	progressDegraded
)

// describeProgress returns one line saying where the rollout is, and whether it is done.
func describeProgress(r *v1alpha1.Rollout) (string, progress) {
	name, st := r.Name, r.Status
	if r.Generation > 0 && st.ObservedGeneration < r.Generation {
		return fmt.Sprintf("Waiting for rollout %s: spec update to be observed...", name), progressWaiting
	}
	switch st.Phase {
	case v1alpha1.PhaseHealthy:
		return fmt.Sprintf("rollout %q successfully rolled out (revision %d)", name, max(st.CurrentRevision, baseRevision(r))), progressDone
	case v1alpha1.PhaseDegraded:
		msg := st.Message
		if msg == "" {
			msg = "aborted"
		}
		return fmt.Sprintf("rollout %q is degraded: %s", name, msg), progressDegraded
	}
	detail := progressDetail(r)
	if st.Phase == v1alpha1.PhasePaused && slices.ContainsFunc(st.PauseConditions, func(c v1alpha1.PauseCondition) bool { return c.Reason == v1alpha1.PauseReasonGate }) {
		// A gate webhook holds it: promote and resume do not skip a gate; its 2xx does.
		return fmt.Sprintf("Rollout %s held by a gate webhook: %s", name, st.Message), progressWaiting
	}
	if st.Phase == v1alpha1.PhasePaused {
		reason := "paused"
		if len(st.PauseConditions) > 0 {
			reason = string(st.PauseConditions[0].Reason)
		}
		line := fmt.Sprintf("Rollout %s paused (%s): %s; run `ramp promote %s` or `ramp resume %s` to continue", name, reason, detail, name, name)
		return line, progressWaiting
	}
	line := fmt.Sprintf("Waiting for rollout %s: %s", name, detail)
	if st.Message != "" {
		line += " (" + st.Message + ")"
	}
	return line, progressWaiting
}

// progressDetail says how far the new revision got, per strategy.
func progressDetail(r *v1alpha1.Rollout) string {
	st := r.Status
	rev := newRevision(r)
	switch strategyName(r) {
	case "canary":
		s := ""
		if step := stepText(r); step != "-" {
			s = "step " + step + ", "
		}
		return fmt.Sprintf("%scanary weight %d%%, %s canary ready", s, st.CanaryWeight, readyOf(r, rev))
	case "blueGreen":
		return fmt.Sprintf("preview revision %s %s ready, active revision %s", revText(rev), readyOf(r, rev), revText(st.ActiveRevision))
	case "rollingUpdate":
		return fmt.Sprintf("revision %s %s ready, weight %d%%", revText(rev), readyOf(r, rev), st.CanaryWeight)
	}
	return fmt.Sprintf("revision %s %s ready", revText(rev), readyOf(r, rev))
}
