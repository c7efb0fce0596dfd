package cli

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

func (a *app) eventsCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "events NAME",
		Short:   "List a rollout's events, oldest first",
		Example: `  ramp events chat-api`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			es, err := c.Events(cmd.Context(), args[0], 0)
			if err != nil {
				return err
			}
			if len(es) == 0 {
				fmt.Fprintln(a.stderr, "No events.")
				return nil
			}
			w := tabwriter.NewWriter(a.stdout, 0, 8, 3, ' ', 0)
			fmt.Fprintln(w, "TIME\tTYPE\tREASON\tREVISION\tMESSAGE")
			for _, e := range es {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", e.Time.Local().Format("2006-01-02 15:04:05"), e.Type, e.Reason, revText(e.Revision), a.hints(e.Message))
			}
			return w.Flush()
		},
	}
}
