package cli

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"ramp.dev/ramp/internal/control"
)

func (a *app) eventsCmd() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "events NAME",
		Short: "List a rollout's events, oldest first",
		Long: `List a rollout's events, oldest first: what ramp did and decided, with the revision each
event concerns. -o json or -o yaml prints them as a list of objects (seq, time, type, reason,
message, revision).`,
		Example: `  ramp events chat-api
  ramp events chat-api -o json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput("events", output, "json", "yaml"); err != nil {
				return err
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			es, err := c.Events(cmd.Context(), args[0], 0)
			if err != nil {
				return err
			}
			if structured(output) {
				if es == nil {
					es = []control.Event{}
				}
				return a.printObject(output, es)
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
	cmd.Flags().StringVarP(&output, "output", "o", "", "output format: json or yaml (default: a table)")
	return cmd
}
