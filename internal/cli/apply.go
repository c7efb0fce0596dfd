package cli

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"ramp.dev/ramp/internal/server"
)

func (a *app) applyCmd() *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "apply -f FILE",
		Short: "Create or update rollouts and analysis templates from a YAML file",
		Long: `Send FILE to the running ramp. A rollout whose template changed starts a new revision.
When the file is invalid nothing is applied: every problem is printed and ramp exits 1.`,
		Example: `  ramp apply -f chat-api.yaml
  sed 's/model-a/model-b/' chat-api.yaml | ramp apply -f -`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if file == "" {
				return errors.New("apply: -f FILE is required")
			}
			data, err := a.readInput(file)
			if err != nil {
				return err
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			lines, err := c.Apply(cmd.Context(), data)
			if apiErr, ok := errors.AsType[*server.APIError](err); ok && len(apiErr.Problems) > 0 {
				a.printProblems(inputName(file), apiErr.Problems)
				return &exitCodeError{code: exitError}
			}
			if err != nil {
				return err
			}
			for _, l := range lines {
				fmt.Fprintln(a.stdout, l)
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "YAML file to apply (- reads stdin)")
	return cmd
}

// printProblems prints each problem of an invalid input on stderr.
func (a *app) printProblems(name string, problems []string) {
	for _, p := range problems {
		fmt.Fprintf(a.stderr, "error: %s: %s\n", name, p)
	}
}
