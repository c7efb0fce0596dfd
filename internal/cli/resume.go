package cli

import (
	"github.com/spf13/cobra"
)

func (a *app) resumeCmd() *cobra.Command {
	return a.rolloutAction("resume", "Resume a paused rollout", "  ramp resume chat-api", backend.Resume)
}
