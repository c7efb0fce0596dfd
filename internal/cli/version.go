package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"ramp.dev/ramp/internal/version"
)

func (a *app) versionCmd() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print ramp's version, commit, Go version and platform",
		Long: `Print the version of this ramp binary: the release version (set when the release was
built), else the module version and the commit the go command recorded, with the commit's
time and whether the checkout was modified; then the Go version that built it and the
platform. ramp --version prints the same. -o json or -o yaml prints it as an object
(version, revision, time, modified, goVersion, platform).`,
		Example: `  ramp version
  ramp version -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput("version", output, "json", "yaml"); err != nil {
				return err
			}
			info := version.Get()
			if structured(output) {
				return a.printObject(output, info)
			}
			_, err := fmt.Fprint(a.stdout, info.String())
			return err
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "output format: json or yaml (default: text)")
	return cmd
}

func (a *app) completionCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "completion bash|zsh|fish|powershell",
		Short: "Print a shell completion script",
		Long: `Print the completion script of a shell: it completes ramp's verbs, flags and flag values.

bash (needs the bash-completion package):
  source <(ramp completion bash)                       # this shell
  ramp completion bash > /etc/bash_completion.d/ramp   # every new shell
zsh:
  ramp completion zsh > "${fpath[1]}/_ramp"            # then start a new shell
  (with "autoload -U compinit; compinit" in ~/.zshrc if it is not there yet)
fish:
  ramp completion fish > ~/.config/fish/completions/ramp.fish
PowerShell:
  ramp completion powershell | Out-String | Invoke-Expression`,
		Example:   `  source <(ramp completion bash)`,
		Args:      cobra.ExactArgs(1),
		ValidArgs: []string{"bash", "zsh", "fish", "powershell"},
		RunE: func(cmd *cobra.Command, args []string) error {
			root := cmd.Root()
			switch args[0] {
			case "bash":
				return root.GenBashCompletionV2(a.stdout, true)
			case "zsh":
				return root.GenZshCompletion(a.stdout)
			case "fish":
				return root.GenFishCompletion(a.stdout, true)
			case "powershell":
				return root.GenPowerShellCompletionWithDesc(a.stdout)
			}
			return fmt.Errorf("completion: shell %q: want bash, zsh, fish or powershell", args[0])
		},
	}
	return cmd
}
