package cli

import (
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"ramp.dev/ramp/api/v1alpha1"
)

func (a *app) historyCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "history NAME",
		Short: "List a rollout's revisions",
		Long: `List the revisions ramp keeps for a rollout, oldest first, as kubectl rollout history does.
ROLE marks the revisions the rollout uses now: stable, canary, active, preview, and current
(the revision of the rollout's template).`,
		Example: `  ramp history chat-api`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			r, err := c.Get(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			revs, err := c.History(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(a.stdout, 0, 8, 3, ' ', 0)
			fmt.Fprintln(w, "REVISION\tCREATED\tCAUSE\tROLE")
			for _, rev := range revs {
				cause := rev.Cause
				if cause == "" {
					cause = "-"
				}
				fmt.Fprintf(w, "%d\t%s\t%s\t%s\n", rev.Number, rev.CreatedAt.Local().Format("2006-01-02 15:04:05"), cause, roles(r, rev.Number))
			}
			return w.Flush()
		},
	}
}

// roles lists what revision n is to the rollout.
func roles(r *v1alpha1.Rollout, n int64) string {
	var out []string
	st := r.Status
	for _, x := range []struct {
		rev  int64
		name string
	}{
		{st.StableRevision, "stable"}, {st.CanaryRevision, "canary"}, {st.ActiveRevision, "active"},
		{st.PreviewRevision, "preview"}, {st.CurrentRevision, "current"},
	} {
		if x.rev == n {
			out = append(out, x.name)
		}
	}
	if len(out) == 0 {
		return ""
	}
	return strings.Join(out, ",")
}
