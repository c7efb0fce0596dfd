package kube

import (
	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/driver"
	"ramp.dev/ramp/internal/gate"
)

var _ driver.Gater = (*mode)(nil)

// Gates calls the Rollout's gate webhooks; urlSecretRef reads a Secret of its namespace.
func (m *mode) Gates(ro *v1alpha1.Rollout) (*gate.Caller, gate.Target) {
	return m.r.gates, gate.Target{Namespace: ro.Namespace, Rollout: ro.Name, Secrets: m.r.secrets}
}
