package local

import (
	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/driver"
	"ramp.dev/ramp/internal/gate"
)

var _ driver.Gater = (*mode)(nil)

// Gates calls local mode's gate webhooks; a urlSecretRef is refused (no Secrets here).
func (m *mode) Gates(r *v1alpha1.Rollout) (*gate.Caller, gate.Target) {
	return m.c.gates, gate.Target{Rollout: r.Name}
}
