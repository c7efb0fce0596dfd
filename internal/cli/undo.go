package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
)

func (a *app) undoCmd() *cobra.Command {
	var to int64
	cmd := &cobra.Command{
		Use:   "undo NAME",
		Short: "Roll a rollout back to an older revision (as a new revision)",
		Long: `Re-apply an older revision's template as a new revision: the rollout rolls forward to
old code with its usual strategy. Without --to-revision, the revision before the current one.`,
		Example: `  ramp undo chat-api
  ramp undo chat-api --to-revision 2`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			c, err := a.client()
			if err != nil {
				return err
			}
			n, err := c.Undo(cmd.Context(), name, to)
			if err != nil {
				return err
			}
			target := "revision " + revText(to)
			if to == 0 {
				target = undoTarget(cmd.Context(), c, name, n)
			}
			fmt.Fprintf(a.stdout, "rollout/%s rolled back to %s (new revision %d)\n", name, target, n)
			return nil
		},
	}
	cmd.Flags().Int64Var(&to, "to-revision", 0, "revision to roll back to (0: the one before the current)")
	return cmd
}

// undoTarget names the revision that revision n copies: the newest older one with the same
// template.
func undoTarget(ctx context.Context, c backend, name string, n int64) string {
	revs, err := c.History(ctx, name)
	if err != nil {
		return "the previous revision"
	}
	var hash string
	for _, r := range revs {
		if r.Number == n {
			hash = r.Hash
		}
	}
	var found int64
	for _, r := range revs {
		if r.Number < n && r.Hash == hash && hash != "" {
			found = r.Number
		}
	}
	if found == 0 {
		return "the previous revision"
	}
	return fmt.Sprintf("revision %d", found)
}
