package cli

import (
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/control"
)

// historyEntry is one revision as `history -o json|yaml` prints it: the stored revision with
// its roles.
type historyEntry struct {
	control.Revision `json:",inline"`
	Roles            []string `json:"roles,omitempty"`
}

func (a *app) historyCmd() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "history NAME",
		Short: "List a rollout's revisions",
		Long: `List the revisions ramp keeps for a rollout, oldest first, as kubectl rollout history does.
ROLE marks the revisions the rollout uses now: stable, canary, active, preview, and current
(the revision of the rollout's template). -o json or -o yaml prints a list of the revisions
in full, each with its template and roles.`,
		Example: `  ramp history chat-api
  ramp history chat-api -o yaml`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput("history", output, "json", "yaml"); err != nil {
				return err
			}
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
			if structured(output) {
				items := make([]historyEntry, 0, len(revs))
				for _, rev := range revs {
					items = append(items, historyEntry{Revision: rev, Roles: roleList(r, rev.Number)})
				}
				return a.printObject(output, items)
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
	cmd.Flags().StringVarP(&output, "output", "o", "", "output format: json or yaml (default: a table)")
	return cmd
}

// roles lists what revision n is to the rollout, comma-separated.
func roles(r *v1alpha1.Rollout, n int64) string {
	return strings.Join(roleList(r, n), ",")
}

// roleList lists what revision n is to the rollout.
func roleList(r *v1alpha1.Rollout, n int64) []string {
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
	return out
}
