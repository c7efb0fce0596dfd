package driver

import (
	"time"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/engine"
)

// Notifier is told what one step did to a rollout, once its status is stored: before is the
// status before the step, r the rollout after it, events what the step recorded (analysis
// runs that ended, then the decision's), oldest first. It must not block: *notify.Notifier
// queues and sends off the caller's loop.
type Notifier interface {
	Notify(before *v1alpha1.RolloutStatus, r *v1alpha1.Rollout, events []engine.Event, now time.Time)
}

// Notifying is a Mode whose steps are notified: both modes implement it. A nil Notifier
// means none.
type Notifying interface {
	Notifier() Notifier
}

// recording is a Mode that keeps a copy of the events recorded through it.
type recording struct {
	Mode
	events []engine.Event
}

func (r *recording) Record(ro *v1alpha1.Rollout, e engine.Event) {
	r.events = append(r.events, e)
	r.Mode.Record(ro, e)
}

// notifierOf is m's Notifier when it has one and r has destinations to notify, else nil.
func notifierOf(m Mode, r *v1alpha1.Rollout) Notifier {
	nm, ok := m.(Notifying)
	if !ok || len(r.Spec.Notifications) == 0 {
		return nil
	}
	return nm.Notifier()
}
