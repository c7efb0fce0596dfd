package driver

import (
	"context"
	"fmt"
	"time"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/engine"
	"ramp.dev/ramp/internal/gate"
)

// Gater is a Mode that calls gate webhooks (spec.webhooks). A Mode that is not one calls
// none: a rollout with webhooks then waits at its gates with the message saying so.
type Gater interface {
	// Gates returns the Caller of the mode and the target of r's calls.
	Gates(r *v1alpha1.Rollout) (*gate.Caller, gate.Target)
}

// mergeGates writes the answers of gate webhooks that came since the last step into r's
// status, before the decision reads them, and records each answer as an event.
func mergeGates(m Mode, r *v1alpha1.Rollout) {
	g, ok := m.(Gater)
	if !ok || len(r.Status.Gates) == 0 {
		return
	}
	c, t := g.Gates(r)
	for _, i := range c.Merge(t, r.Status.Gates) {
		st := r.Status.Gates[i]
		typ, reason, what := engine.EventNormal, "GatePassed", "answered"
		if st.Phase != v1alpha1.GatePassed {
			typ, reason, what = engine.EventWarning, "GateFailed", "did not answer 2xx"
		}
		m.Record(r, engine.Event{Type: typ, Reason: reason, Revision: st.Revision,
			Message: fmt.Sprintf("gate %s (%s) of revision %d %s: %s (attempt %d)", st.Name, st.Type, st.Revision, what, st.Message, st.Attempts)})
	}
}

// callGates starts the calls the decision asks for, off the loop, and returns when a held
// gate is next due (zero when none: a call in flight wakes the rollout when it ends).
func callGates(ctx context.Context, m Mode, r *v1alpha1.Rollout, now time.Time, calls []engine.GateCall) time.Time {
	var next time.Time
	if len(calls) == 0 {
		return next
	}
	g, ok := m.(Gater)
	if !ok {
		return next
	}
	c, t := g.Gates(r)
	for _, call := range calls {
		st := v1alpha1.GateStatus{Name: call.Webhook.Name, Revision: call.Revision, Step: call.Step, Since: call.Since}
		b := gate.Body{
			Name: call.Webhook.Name, Type: string(call.Webhook.Type), Namespace: r.Namespace, Rollout: r.Name,
			Phase: string(call.Phase), Revision: call.Revision, Weight: call.Weight, Metadata: call.Webhook.Metadata,
		}
		if call.Step != nil {
			b.Step = *call.Step + 1
		}
		// The call outlives this step (a reconcile's context ends with it); Close ends it.
		next = earliest(next, c.Call(context.WithoutCancel(ctx), now, t, gate.KeyOf(t, &st), call.Webhook, b))
	}
	return next
}

// forgetGates drops the calls of gates r's status (as persisted) no longer holds.
func forgetGates(m Mode, r *v1alpha1.Rollout) {
	if g, ok := m.(Gater); ok {
		c, t := g.Gates(r)
		c.Forget(t.Namespace, t.Rollout, r.Status.Gates)
	}
}
