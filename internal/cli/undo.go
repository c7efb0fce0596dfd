package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"ramp.dev/ramp/internal/control"
)

func (a *app) undoCmd() *cobra.Command {
	var to int64
	cmd := &cobra.Command{
		Use:   "undo NAME",
		Short: "Roll a rollout back to an older revision (as a new revision)",
		Long: `Re-apply an older revision's template as a new revision: the rollout rolls forward to
old code with its usual strategy. Without --to-revision, the revision before the current one.
When that is the stable revision (after an abort, or mid-rollout), nothing rolls out: the
revision under way is dropped and the stable one, which serves all traffic already, stays.

In Kubernetes mode undo writes the revision's pod template into the Deployment, as kubectl
rollout undo does (which fails on the Deployment ramp keeps paused); revision numbers are
ramp's (ramp history), and the output also names the Deployment's (kubectl rollout history).`,
		Example: `  ramp undo chat-api
  ramp undo chat-api --to-revision 2`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			c, err := a.client()
			if err != nil {
				return err
			}
			res, err := c.Undo(cmd.Context(), name, to)
			if err != nil {
				return err
			}
			fmt.Fprintln(a.stdout, undoMessage(name, res))
			return nil
		},
	}
	cmd.Flags().Int64Var(&to, "to-revision", 0, "revision to roll back to (0: the one before the current)")
	return cmd
}

// undoMessage says what an undo did.
func undoMessage(name string, res control.UndoResult) string {
	msg := fmt.Sprintf("rollout/%s rolled back to revision %d (new revision %d)", name, res.Target, res.Revision)
	switch {
	case res.SwitchedBack:
		msg = fmt.Sprintf("rollout/%s switched back to revision %d: its instances still ran (watch window) and serve all traffic now; nothing rolls out", name, res.Target)
	case !res.New:
		msg = fmt.Sprintf("rollout/%s back on stable revision %d: it serves all traffic already, nothing rolls out", name, res.Target)
	}
	if res.Note != "" {
		msg += "; " + res.Note
	}
	return msg
}
