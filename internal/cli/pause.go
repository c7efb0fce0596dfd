package cli

import (
	"github.com/spf13/cobra"
)

func (a *app) pauseCmd() *cobra.Command {
	return a.rolloutAction("pause", "Pause a rollout where it is", "  ramp pause chat-api", backend.Pause)
}
