package local

import (
	"context"
	"time"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/driver"
	"ramp.dev/ramp/internal/engine"
	"ramp.dev/ramp/internal/notify"
)

var _ driver.Notifying = (*mode)(nil)

// Notifier is local mode's notifier: it sends spec.notifications (no Secrets: local mode
// refuses their secret references).
func (m *mode) Notifier() driver.Notifier {
	if m.c.notifier == nil {
		return nil
	}
	return m.c.notifier
}

// newNotifier is local mode's notifier: a notification given up on is a NotificationFailed
// warning event of its rollout (`ramp events`).
func (c *Controller) newNotifier() *notify.Notifier {
	return notify.New(notify.Config{Log: c.log, Failed: func(r *v1alpha1.Rollout, rev int64, msg string) {
		c.record(r.Name, engine.EventWarning, ReasonNotificationFailed, msg, rev)
	}})
}

// ReasonNotificationFailed is the reason of the event of a notification given up on.
const ReasonNotificationFailed = "NotificationFailed"

// closeNotifier lets the queued notifications go out for a few seconds more as ramp stops.
func (c *Controller) closeNotifier() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.notifier.Close(ctx); err != nil {
		c.log.Warn("stop notifications", "err", err)
	}
}
