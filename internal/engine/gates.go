package engine

import (
	"fmt"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/spec"
)

// Gate webhooks (spec.webhooks). The engine decides when a webhook is asked and what its
// answer does; the driver calls it, off the decision loop, and writes each answer into
// status.gates, which the next decision reads:
//
//   - pre-rollout holds the new revision out of traffic (a canary at weight 0, a preview
//     before its pre-promotion analysis and switch, a rolling update before its first new
//     instance) until it answers 2xx;
//   - confirm-traffic-increase holds each canary setWeight step that raises the weight, and
//     the blue-green switch;
//   - confirm-promotion holds a canary's promotion and the blue-green switch;
//   - post-rollout (after a promotion) and rollback (after an abort) are called once and
//     hold nothing.
//
// A gate that holds is asked again every interval until it answers 2xx (failurePolicy
// Hold), or aborts the rollout at its first other answer (Abort), or lets it go on (Ignore).
// Each gate is one call point: a webhook per revision, or per step for
// confirm-traffic-increase, so an answer never counts for a later step or revision.

// GateCall is a gate webhook the driver is to call now: one whose gate has no answer yet, or
// a held one (failurePolicy Hold) whose last answer was not 2xx.
type GateCall struct {
	Webhook v1alpha1.Webhook
	// Revision, Step and Since name the gate in status.gates (see SameGate).
	Revision int64
	Step     *int32
	Since    metav1.Time
	// Weight is the canary weight the gate is about: the weight a confirm-traffic-increase
	// step would set, else the new revision's weight when the gate was decided.
	Weight int32
	// Phase is the rollout's phase after the decision.
	Phase v1alpha1.RolloutPhase
}

// SameGate reports whether g is the gate of call point (name, revision, step, since).
func SameGate(g *v1alpha1.GateStatus, name string, revision int64, step *int32, since metav1.Time) bool {
	return g.Name == name && g.Revision == revision && sameStep(g.Step, step) && g.Since.Equal(&since)
}

func sameStep(a, b *int32) bool {
	return a == nil && b == nil || a != nil && b != nil && *a == *b
}

// webhooks returns the rollout's webhooks of the given types.
func (d *decision) webhooks(types ...v1alpha1.WebhookType) []v1alpha1.Webhook {
	var out []v1alpha1.Webhook
	for _, w := range d.spec.Webhooks {
		if slices.Contains(types, w.Type) {
			out = append(out, w)
		}
	}
	return out
}

// gateFor returns the status entry of webhook w for the revision under way (and step), made
// when missing.
func (d *decision) gateFor(w v1alpha1.Webhook, rev int64, step *int32) *v1alpha1.GateStatus {
	for i := range d.st.Gates {
		g := &d.st.Gates[i]
		if g.Name == w.Name && g.Type == w.Type && g.Revision == rev && sameStep(g.Step, step) {
			return g
		}
	}
	g := v1alpha1.GateStatus{Name: w.Name, Type: w.Type, Revision: rev, Since: metav1.NewTime(d.now), Phase: v1alpha1.GatePending}
	if step != nil {
		s := *step
		g.Step = &s
	}
	d.st.Gates = append(d.st.Gates, g)
	return &d.st.Gates[len(d.st.Gates)-1]
}

// gate asks the blocking webhooks of the given types before what (e.g. "promoting revision
// 2"), at step (nil but for confirm-traffic-increase) and weight. It reports whether they all
// let the rollout go on, and whether one aborted it. While one holds, the rollout pauses
// (reason GateWebhook) and the message names the gate and its last answer.
func (d *decision) gate(what string, step *int32, weight int32, types ...v1alpha1.WebhookType) (open, aborted bool) {
	rev := d.newRev
	var waiting []string
	for _, w := range d.webhooks(types...) {
		g := d.gateFor(w, rev, step)
		if g.Phase == v1alpha1.GateFailed {
			switch spec.WebhookPolicy(&w) {
			case v1alpha1.WebhookAbort:
				d.abort(fmt.Sprintf("gate %s (%s) before %s: %s (failurePolicy Abort)", w.Name, w.Type, what, orNoAnswer(g.Message)))
				return false, true
			case v1alpha1.WebhookIgnore:
				g.Phase = v1alpha1.GatePassed
				g.Message = "ignored (failurePolicy Ignore): " + g.Message
				d.event(EventWarning, "GateIgnored", fmt.Sprintf("gate %s (%s) before %s did not answer 2xx: %s; going on (failurePolicy Ignore)", w.Name, w.Type, what, strings.TrimPrefix(g.Message, "ignored (failurePolicy Ignore): ")))
			}
		}
		if g.Phase == v1alpha1.GatePassed {
			continue
		}
		d.call(w, g, weight)
		if g.Attempts == 0 {
			waiting = append(waiting, fmt.Sprintf("gate %s (%s): asking %s", w.Name, w.Type, spec.WebhookWhere(&w)))
		} else {
			waiting = append(waiting, fmt.Sprintf("gate %s (%s) answered %s (asked %d times, again every %s)", w.Name, w.Type, orNoAnswer(g.Message), g.Attempts, spec.WebhookInterval(&w)))
		}
	}
	if len(waiting) == 0 {
		return true, false
	}
	d.pause(v1alpha1.PauseReasonGate)
	d.gateWaiting = true
	d.st.Message = fmt.Sprintf("waiting before %s: %s", what, strings.Join(waiting, "; "))
	return false, false
}

// endGatePause ends the pause of a gate that held in an earlier decision and holds no more.
func (d *decision) endGatePause() {
	if !d.gateWaiting {
		d.unpause(v1alpha1.PauseReasonGate)
	}
}

// inform makes the gates of the informative webhooks of type typ for rev (post-rollout,
// rollback): each is called once, by finish, and holds nothing.
func (d *decision) inform(typ v1alpha1.WebhookType, rev int64) {
	if rev == 0 {
		return
	}
	for _, w := range d.webhooks(typ) {
		d.gateFor(w, rev, nil)
	}
}

// call lists gate g of webhook w for the driver to call.
func (d *decision) call(w v1alpha1.Webhook, g *v1alpha1.GateStatus, weight int32) {
	c := GateCall{Webhook: w, Revision: g.Revision, Since: g.Since, Weight: weight}
	if g.Step != nil {
		s := *g.Step
		c.Step = &s
	}
	d.out.Gates = append(d.out.Gates, c)
}

// finishGates drops the gates of webhooks no longer in the spec, and lists the unanswered
// informative ones for the driver. It runs once the decision's phase is known.
func (d *decision) finishGates() {
	d.st.Gates = slices.DeleteFunc(d.st.Gates, func(g v1alpha1.GateStatus) bool {
		return !slices.ContainsFunc(d.spec.Webhooks, func(w v1alpha1.Webhook) bool { return w.Name == g.Name && w.Type == g.Type })
	})
	for i := range d.st.Gates {
		g := &d.st.Gates[i]
		if g.Type.Blocking() || g.Phase != v1alpha1.GatePending {
			continue
		}
		for _, w := range d.webhooks(g.Type) {
			if w.Name == g.Name {
				d.call(w, g, d.st.CanaryWeight)
			}
		}
	}
	if len(d.st.Gates) == 0 {
		d.st.Gates = nil
	}
	for i := range d.out.Gates {
		d.out.Gates[i].Phase = d.st.Phase
	}
}

// KeepUnansweredCalls keeps, of gates, the informative calls not yet made (a post-rollout
// or rollback call still owed): what a new revision or a retry keeps of the last one's gates.
func KeepUnansweredCalls(gates []v1alpha1.GateStatus) []v1alpha1.GateStatus {
	var out []v1alpha1.GateStatus
	for _, g := range gates {
		if !g.Type.Blocking() && g.Phase == v1alpha1.GatePending {
			out = append(out, g)
		}
	}
	return out
}

func orNoAnswer(s string) string {
	if s == "" {
		return "no answer"
	}
	return s
}

// preRolloutHeld asks the pre-rollout gates of a canary and reports whether they hold it (or
// aborted it). While they hold, the canary runs at weight 0 with its instance for the
// webhook to test on the canary address; when the traffic layer splits by instances, it runs
// none, as one would take traffic.
func (d *decision) preRolloutHeld() bool {
	rev, stable := d.newRev, d.st.StableRevision
	if (d.st.CurrentStepIndex != nil && *d.st.CurrentStepIndex > 0) || d.st.CanaryWeight > 0 {
		return false // past the start: a webhook added since holds nothing that already happened
	}
	open, aborted := d.gate(fmt.Sprintf("revision %d takes traffic", rev), nil, 0, v1alpha1.WebhookPreRollout)
	if open || aborted {
		return aborted
	}
	desired := d.canaryDesired()
	if d.in.Capabilities.WeightsByReplicas {
		desired = 0
	}
	d.scale(stable, d.replicas)
	d.scale(rev, desired)
	if d.checkHealth(rev, desired) {
		return true
	}
	d.canaryRoutes()
	return true
}
