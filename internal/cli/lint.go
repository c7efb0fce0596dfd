package cli

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"ramp.dev/ramp/internal/control"
)

func (a *app) lintCmd() *cobra.Command {
	var files []string
	cmd := &cobra.Command{
		Use:   "lint -f FILE...",
		Short: "Check YAML files offline, without a running ramp",
		Long: `Parse, default and validate each file as ramp apply would, without a running ramp. Prints
"FILE: ok" for a valid file and every problem of an invalid one; exits 1 when any file has a
problem.`,
		Example: `  ramp lint -f chat-api.yaml
  ramp lint -f chat-api.yaml -f analysis.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(files) == 0 {
				return errors.New("lint: -f FILE is required")
			}
			bad := 0
			for _, f := range files {
				data, err := a.readInput(f)
				if err != nil {
					return err
				}
				if _, err := a.load(data); err != nil {
					bad++
					a.printProblems(inputName(f), control.Problems(err))
					continue
				}
				fmt.Fprintf(a.stdout, "%s: ok\n", inputName(f))
			}
			if bad > 0 {
				return &exitCodeError{code: exitError}
			}
			return nil
		},
	}
	cmd.Flags().StringArrayVarP(&files, "file", "f", nil, "YAML file to check (repeatable; - reads stdin)")
	return cmd
}
