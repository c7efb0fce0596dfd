package cli

import (
	"github.com/spf13/cobra"

	"ramp.dev/ramp/internal/control"
)

func (a *app) pauseCmd() *cobra.Command {
	return a.rolloutAction("pause", "Pause a rollout where it is", "  ramp pause chat-api", control.Control.Pause)
}
