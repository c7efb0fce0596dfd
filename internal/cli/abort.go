package cli

import (
	"github.com/spf13/cobra"

	"ramp.dev/ramp/internal/control"
)

func (a *app) abortCmd() *cobra.Command {
	return a.rolloutAction("abort", "Abort a rollout: send all traffic back to stable", "  ramp abort chat-api", control.Control.Abort)
}
