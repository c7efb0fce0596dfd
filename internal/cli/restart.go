package cli

import (
	"context"

	"github.com/spf13/cobra"

	"ramp.dev/ramp/internal/control"
)

func (a *app) restartCmd() *cobra.Command {
	cmd := a.rolloutAction("restart", "Replace the stable revision's instances with new ones, a few at a time",
		`  ramp restart chat-api
  kubectl ramp -n chat restart chat-api`,
		func(c control.Control, ctx context.Context, name string) (string, error) {
			return c.Restart(ctx, name)
		})
	cmd.Long = `Start new instances of the stable revision and stop the old ones, a few at a time, without
a new revision and without taking traffic from the instances still serving: local mode starts
a new process, waits until it is ready, then drains and stops an old one (25% of replicas
above the count at a time, at least one; a rollingUpdate rollout uses its maxSurge and
maxUnavailable). Kubernetes mode evicts the old pods maxUnavailable at a time (the
Deployment's, at least one) and the Deployment's ReplicaSet creates their replacements; the
next pod goes only once enough are Ready again. An eviction that a PodDisruptionBudget
refuses is tried again.

The restart sets spec.restartAt: every instance started before it is replaced. While a
revision rolls out, the restart waits for the rollout to end. status.restartedAt and a
Restarted event say when it is done. Use it instead of kubectl rollout restart, which fails on
the Deployment ramp keeps paused.`
	return cmd
}
