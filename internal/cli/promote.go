package cli

import (
	"context"

	"github.com/spf13/cobra"

	"ramp.dev/ramp/internal/control"
)

func (a *app) promoteCmd() *cobra.Command {
	var full bool
	cmd := a.rolloutAction("promote", "End the current pause or step of a rollout (--full: skip to the end)",
		`  ramp promote chat-api
  ramp promote chat-api --full`,
		func(c control.Control, ctx context.Context, name string) (string, error) {
			return c.Promote(ctx, name, full)
		})
	cmd.Long = `End the current pause or step and go on with the next one. With --full, skip every
remaining step and analysis and make the new revision stable now.`
	cmd.Flags().BoolVar(&full, "full", false, "skip all remaining steps and analysis")
	return cmd
}
