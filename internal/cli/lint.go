package cli

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"ramp.dev/ramp/internal/control"
	"ramp.dev/ramp/internal/spec"
)

func (a *app) lintCmd() *cobra.Command {
	var files []string
	cmd := &cobra.Command{
		Use:   "lint -f FILE...",
		Short: "Check YAML files offline, without a running ramp",
		Long: `Parse, default and validate each file as ramp apply would, without a running ramp. Prints
"FILE: ok" for a valid file and every problem of an invalid one; exits 1 when any file has a
problem.

The files are checked together: every analysis templateName must name an AnalysisTemplate
in one of them. Each rollout is checked against its mode, told from the file (spec.workloadRef:
Kubernetes mode; spec.template: local mode), and each template against the mode of the
rollouts that name it: a field the mode cannot carry out (ramp's proxy settings in Kubernetes
mode, a job provider in local mode) is a problem.`,
		Example: `  ramp lint -f chat-api.yaml
  ramp lint -f chat-api.yaml -f analysis.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(files) == 0 {
				return errors.New("lint: -f FILE is required")
			}
			type input struct {
				name     string
				b        *spec.Bundle
				problems []string
			}
			inputs := make([]input, len(files))
			var bundles []*spec.Bundle
			loadFailed := false
			for i, f := range files {
				data, err := a.readInput(f)
				if err != nil {
					return err
				}
				inputs[i].name = inputName(f)
				b, err := a.load(data)
				if err != nil {
					inputs[i].problems = control.Problems(err)
					loadFailed = true
					continue
				}
				inputs[i].b = b
				bundles = append(bundles, b)
			}
			known := map[string]bool{}
			for _, b := range bundles {
				for _, t := range b.AnalysisTemplates {
					known[t.Name] = true
				}
			}
			bad := 0
			for _, in := range inputs {
				if in.b != nil {
					// A file that did not load may hold the templates named: references are
					// checked only when every file loaded.
					if !loadFailed {
						if err := in.b.CheckReferences(func(name string) bool { return known[name] }); err != nil {
							in.problems = append(in.problems, control.Problems(err)...)
						}
					}
					if err := in.b.CheckModes(bundles...); err != nil {
						in.problems = append(in.problems, control.Problems(err)...)
					}
				}
				if len(in.problems) > 0 {
					bad++
					a.printProblems(in.name, in.problems)
					continue
				}
				fmt.Fprintf(a.stdout, "%s: ok\n", in.name)
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
