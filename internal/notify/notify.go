// Package notify tells people what happens to a rollout: it turns the events of one driver
// step into notifications (rollout-started, step-completed, rollout-paused,
// analysis-inconclusive, rollout-aborted, rollout-promoted, rollout-rolled-back), formats them
// as ramp's JSON, a Slack message or a Microsoft Teams card, and sends them to the
// destinations of the rollout's spec.notifications, off the decision loop, with retries.
//
// Delivery is at least once for a notification while ramp runs: a request that timed out
// after the receiver took it is sent again, so receivers that must not see one twice dedupe
// on its id. A notification is made only after the status that caused it was stored, so a
// restarted ramp (or a new controller leader) does not decide, nor notify, the same thing
// again; notifications still queued or being retried when ramp stops are lost.
package notify

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"time"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/engine"
)

// Notification is one thing that happened to a rollout, as sent.
type Notification struct {
	// ID is the same for every attempt to send this notification, and differs between two
	// notifications.
	ID string `json:"id"`
	// Event is one of v1alpha1.NotifyEvents.
	Event     string `json:"event"`
	Rollout   string `json:"rollout"`
	Namespace string `json:"namespace,omitempty"`
	// Phase is the rollout's phase after the step.
	Phase string `json:"phase"`
	// Revision is the revision the event is about; StableRevision the stable one after it.
	Revision       int64 `json:"revision"`
	StableRevision int64 `json:"stableRevision,omitempty"`
	// Step is "2/5" for a canary at its third step of five; empty for other strategies.
	Step string `json:"step,omitempty"`
	// CanaryWeight is the weight ramp sets for the canary, percent.
	CanaryWeight int32 `json:"canaryWeight"`
	// Weights are each revision's share of traffic, percent.
	Weights []Weight `json:"weights"`
	// Reason is what ramp recorded: the event's reason (RolloutAborted, StepCompleted...) or,
	// for rollout-paused, the pause's (CanaryPauseStep, InconclusiveAnalysis, UserPause...).
	Reason string `json:"reason"`
	// Message says what happened in words; an abort's names the failing analysis and the
	// judge's explanation.
	Message string    `json:"message"`
	Time    time.Time `json:"time"`
}

// Weight is one revision's share of traffic.
type Weight struct {
	Revision int64  `json:"revision"`
	Role     string `json:"role"`
	Weight   int32  `json:"weight"`
}

// Of returns the notifications of one step of r: events are the ones the step recorded,
// oldest first, and before is r's status before it. A pause (the phase turning Paused) is
// read off the status, because no event says it.
func Of(before *v1alpha1.RolloutStatus, r *v1alpha1.Rollout, events []engine.Event, now time.Time) []Notification {
	var out []Notification
	add := func(event, reason, msg string, rev int64) {
		n := base(r, now)
		n.Event, n.Reason, n.Message, n.Revision = event, reason, msg, rev
		n.ID = id(r, event, reason, rev, now, len(out))
		out = append(out, n)
	}
	for _, e := range events {
		switch e.Reason {
		case "RolloutStarted":
			add(v1alpha1.NotifyRolloutStarted, e.Reason, e.Message, e.Revision)
		case "StepCompleted", "Promoted", "Switched":
			msg := e.Message
			if r.Spec.Strategy.Canary != nil {
				msg += fmt.Sprintf("; canary weight %d%%", r.Status.CanaryWeight)
			}
			add(v1alpha1.NotifyStepCompleted, e.Reason, msg, e.Revision)
		case "Analysis" + string(v1alpha1.AnalysisInconclusive):
			add(v1alpha1.NotifyAnalysisInconclusive, e.Reason, e.Message, e.Revision)
		case "RolloutAborted":
			if switchedBack(before, e.Revision) {
				add(v1alpha1.NotifyRolloutRolledBack, e.Reason, e.Message, e.Revision)
			} else {
				add(v1alpha1.NotifyRolloutAborted, e.Reason, e.Message, e.Revision)
			}
		case "RolloutCompleted":
			add(v1alpha1.NotifyRolloutPromoted, e.Reason, e.Message, e.Revision)
		case "RolledBack", "RolloutReverted":
			add(v1alpha1.NotifyRolloutRolledBack, e.Reason, e.Message, e.Revision)
		}
	}
	if r.Status.Phase == v1alpha1.PhasePaused && before.Phase != v1alpha1.PhasePaused {
		add(v1alpha1.NotifyRolloutPaused, pauseReason(before, r), r.Status.Message, r.Status.CurrentRevision)
	}
	return out
}

// switchedBack says an abort of rev is a switch back to the previous revision in the watch
// window (`ramp abort` after the promotion): the command aborted rev before the step, and
// rev was not under way but promoted.
func switchedBack(before *v1alpha1.RolloutStatus, rev int64) bool {
	return before.Abort && before.AbortedRevision == rev && before.StableRevision != 0 &&
		before.CanaryRevision != rev && before.PreviewRevision != rev && before.ActiveRevision != rev
}

// pauseReason is the reason of the pause r's step began: a pause condition new in it, else
// the oldest one, else the user's (spec.paused).
func pauseReason(before *v1alpha1.RolloutStatus, r *v1alpha1.Rollout) string {
	for _, c := range r.Status.PauseConditions {
		if !slices.ContainsFunc(before.PauseConditions, func(b v1alpha1.PauseCondition) bool { return b.Reason == c.Reason }) {
			return string(c.Reason)
		}
	}
	if len(r.Status.PauseConditions) > 0 {
		return string(r.Status.PauseConditions[0].Reason)
	}
	return string(v1alpha1.PauseReasonUser)
}

// base fills in what every notification of r shows.
func base(r *v1alpha1.Rollout, now time.Time) Notification {
	st := &r.Status
	n := Notification{
		Rollout: r.Name, Namespace: r.Namespace, Phase: string(st.Phase),
		StableRevision: st.StableRevision, CanaryWeight: st.CanaryWeight, Weights: []Weight{}, Time: now.UTC(),
	}
	if c := r.Spec.Strategy.Canary; c != nil && st.CurrentStepIndex != nil {
		n.Step = fmt.Sprintf("%d/%d", *st.CurrentStepIndex, len(c.Steps))
	}
	for _, rv := range st.Revisions {
		n.Weights = append(n.Weights, Weight{Revision: rv.Revision, Role: string(rv.Role), Weight: rv.Weight})
	}
	return n
}

func id(r *v1alpha1.Rollout, event, reason string, rev int64, now time.Time, i int) string {
	h := sha256.Sum256([]byte(r.Namespace + "/" + r.Name + "/" + string(r.UID) + "/" + event + "/" + reason + "/" +
		strconv.FormatInt(rev, 10) + "/" + strconv.FormatInt(now.UnixNano(), 10) + "/" + strconv.Itoa(i)))
	return hex.EncodeToString(h[:12])
}
