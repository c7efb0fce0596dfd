package cli

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"ramp.dev/ramp/internal/local"
	"ramp.dev/ramp/internal/server"
)

// localFlags are the flags of up and serve.
type localFlags struct {
	apiAddr      string
	allowedHosts []string
}

func (a *app) addLocalFlags(cmd *cobra.Command, f *localFlags) {
	cmd.Flags().StringVar(&f.apiAddr, "api-addr", local.DefaultAPIAddr, "address the control API listens on (keep it on loopback)")
	var hosts []string
	if env := a.getenv("RAMP_API_ALLOWED_HOSTS"); env != "" {
		hosts = strings.Split(env, ",")
	}
	cmd.Flags().StringSliceVar(&f.allowedHosts, "api-allowed-hosts", hosts,
		"names (host, or host:port) the control API answers to besides the address it listens on; it refuses a request whose Host or Origin header names anything else (env RAMP_API_ALLOWED_HOSTS, comma-separated; default none)")
}

func (a *app) upCmd() *cobra.Command {
	var file string
	var lf localFlags
	cmd := &cobra.Command{
		Use:   "up -f FILE",
		Short: "Run local mode and apply FILE once it is up",
		Long: `Run local mode in the foreground: supervise each rollout's revisions as child processes,
put ramp's proxy in front of them, serve the control API, and apply FILE once everything is
up. Stop with Ctrl-C (SIGINT) or SIGTERM. Only one ramp may use a state directory at a time.

Every call of the control API (but GET /healthz, /metrics and the dashboard's page and read
API) needs the token in <state-dir>/token, reads included, and the API answers only requests
whose Host (and Origin, if any) names its own address or a name of --api-allowed-hosts. The
web dashboard is at the API's /dashboard/ (ramp up prints its address): read-only until it is
given the token.`,
		Example: `  ramp up -f chat-api.yaml
  ramp up -f chat-api.yaml --api-addr 127.0.0.1:7171 --state-dir /var/lib/ramp
  ramp up -f chat-api.yaml --api-allowed-hosts ramp.internal`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if file == "" {
				return errors.New("up: -f FILE is required (use `ramp serve` to start without one)")
			}
			data, err := a.readInput(file)
			if err != nil {
				return err
			}
			return a.runLocalMode(cmd, lf, data)
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "YAML file to apply once up (- reads stdin)")
	a.addLocalFlags(cmd, &lf)
	return cmd
}

func (a *app) serveCmd() *cobra.Command {
	var lf localFlags
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run local mode with the rollouts already in the state directory",
		Long: `Run local mode in the foreground without applying anything: the rollouts stored in the
state directory carry on, and new ones arrive with ramp apply. The control API is guarded as
with ramp up: the token on every call, and the Host checked.`,
		Example: `  ramp serve
  ramp serve --api-addr 127.0.0.1:7171 --api-allowed-hosts ramp.internal`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.runLocalMode(cmd, lf, nil)
		},
	}
	a.addLocalFlags(cmd, &lf)
	return cmd
}

func (a *app) runLocalMode(cmd *cobra.Command, lf localFlags, apply []byte) error {
	hosts := make([]string, 0, len(lf.allowedHosts))
	for _, h := range lf.allowedHosts {
		hosts = append(hosts, strings.TrimSpace(h))
	}
	if err := server.ValidateAllowedHosts(hosts); err != nil {
		return fmt.Errorf("--api-allowed-hosts (or RAMP_API_ALLOWED_HOSTS): %w", err)
	}
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	opts := local.Options{StateDir: a.stateDir, APIAddr: lf.apiAddr, APIAllowedHosts: hosts, Logger: a.logger(), Out: a.stdout}
	if err := a.runLocal(ctx, opts, apply); err != nil {
		return fmt.Errorf("local mode: %w", err)
	}
	return nil
}
