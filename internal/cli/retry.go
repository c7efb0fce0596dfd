package cli

import (
	"github.com/spf13/cobra"

	"ramp.dev/ramp/internal/control"
)

func (a *app) retryCmd() *cobra.Command {
	return a.rolloutAction("retry", "Run an aborted rollout again", "  ramp retry chat-api", control.Control.Retry)
}
