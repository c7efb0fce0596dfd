package cli

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"ramp.dev/ramp/internal/local"
)

func (a *app) upCmd() *cobra.Command {
	var file, apiAddr string
	cmd := &cobra.Command{
		Use:   "up -f FILE",
		Short: "Run local mode and apply FILE once it is up",
		Long: `Run local mode in the foreground: supervise each rollout's revisions as child processes,
put ramp's proxy in front of them, serve the control API, and apply FILE once everything is
up. Stop with Ctrl-C (SIGINT) or SIGTERM. Only one ramp may use a state directory at a time.`,
		Example: `  ramp up -f chat-api.yaml
  ramp up -f chat-api.yaml --api-addr 127.0.0.1:7171 --state-dir /var/lib/ramp`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if file == "" {
				return errors.New("up: -f FILE is required (use `ramp serve` to start without one)")
			}
			data, err := a.readInput(file)
			if err != nil {
				return err
			}
			return a.runLocalMode(cmd, apiAddr, data)
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "YAML file to apply once up (- reads stdin)")
	cmd.Flags().StringVar(&apiAddr, "api-addr", "127.0.0.1:7070", "address the control API listens on (keep it on loopback)")
	return cmd
}

func (a *app) serveCmd() *cobra.Command {
	var apiAddr string
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run local mode with the rollouts already in the state directory",
		Long: `Run local mode in the foreground without applying anything: the rollouts stored in the
state directory carry on, and new ones arrive with ramp apply.`,
		Example: `  ramp serve
  ramp serve --api-addr 127.0.0.1:7171`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.runLocalMode(cmd, apiAddr, nil)
		},
	}
	cmd.Flags().StringVar(&apiAddr, "api-addr", "127.0.0.1:7070", "address the control API listens on (keep it on loopback)")
	return cmd
}

func (a *app) runLocalMode(cmd *cobra.Command, apiAddr string, apply []byte) error {
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	opts := local.Options{StateDir: a.stateDir, APIAddr: apiAddr, Logger: a.logger(), Out: a.stdout}
	if err := a.runLocal(ctx, opts, apply); err != nil {
		return fmt.Errorf("local mode: %w", err)
	}
	return nil
}
