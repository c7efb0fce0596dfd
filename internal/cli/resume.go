package cli

import (
	"github.com/spf13/cobra"

	"ramp.dev/ramp/internal/control"
)

func (a *app) resumeCmd() *cobra.Command {
	return a.rolloutAction("resume", "Resume a paused rollout", "  ramp resume chat-api", control.Control.Resume)
}
