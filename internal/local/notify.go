package local

import (
	"context"
	"time"

	"ramp.dev/ramp/internal/driver"
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

// closeNotifier lets the queued notifications go out for a few seconds more as ramp stops.
func (c *Controller) closeNotifier() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.notifier.Close(ctx); err != nil {
		c.log.Warn("stop notifications", "err", err)
	}
}
