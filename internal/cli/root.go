// Package cli is ramp's command line: one file per verb, all built on one command tree by
// newRoot. The verbs that talk to a running ramp use the control API client of
// internal/server.
package cli

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"ramp.dev/ramp/internal/control"
	"ramp.dev/ramp/internal/local"
	"ramp.dev/ramp/internal/server"
	"ramp.dev/ramp/internal/spec"
	"ramp.dev/ramp/internal/version"
)

// Exit codes.
const (
	exitOK      = 0
	exitError   = 1
	exitTimeout = 2
	// exitNotDone is `ramp status --watch=false` on a rollout still progressing or paused.
	exitNotDone = 3
)

// Files that `ramp up` writes in the state directory.
const (
	addrFile  = "api.addr"
	tokenFile = "token"
)

const defaultServer = "http://127.0.0.1:7070"

// app holds what the commands share: their I/O, their dependencies and the global flags.
type app struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
	now            func() time.Time
	// load parses and validates YAML (lint).
	load func([]byte) (*spec.Bundle, error)
	// runLocal runs local mode (up, serve).
	runLocal func(ctx context.Context, opts local.Options, apply []byte) error
	// pollInterval is how often `status` asks the API.
	pollInterval time.Duration
	// isTerminal tells whether get --watch redraws in place; nil means never.
	isTerminal func(io.Writer) bool
	// termWidth is the terminal's width, to clip get --watch's lines; nil means no clipping.
	termWidth func(io.Writer) int
	// ticker paces get --watch; nil means realTicker.
	ticker func(time.Duration) (wait func(context.Context) error, stop func())

	// dashboardBackend is what `ramp dashboard` serves in Kubernetes mode; nil means the
	// cluster's (kubeCommands).
	dashboardBackend func() (control.Control, error)

	// plugin is set when ramp runs as kubectl-ramp: Kubernetes mode by default.
	plugin bool

	// Global flags.
	stateDir string
	server   string
	token    string
	// Kubernetes mode's global flags.
	kubeconfig, kubeContext, namespace string
}

// Main runs ramp with args (without the program name) and returns the exit code.
func Main(args []string) int {
	a := &app{
		stdin:        os.Stdin,
		stdout:       os.Stdout,
		stderr:       os.Stderr,
		getenv:       os.Getenv,
		now:          time.Now,
		load:         spec.Load,
		runLocal:     local.Run,
		pollInterval: 500 * time.Millisecond,
		isTerminal:   isTerminal,
		termWidth:    terminalWidth,
		plugin:       isPlugin(os.Args[0]),
	}
	return a.run(context.Background(), args)
}

// exitCodeError ends the command with code; a nil err prints nothing more.
type exitCodeError struct {
	code int
	err  error
}

func (e *exitCodeError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit code %d", e.code)
	}
	return e.err.Error()
}

func (e *exitCodeError) Unwrap() error { return e.err }

func (a *app) run(ctx context.Context, args []string) int {
	root := a.newRoot()
	root.SetArgs(args)
	root.SetIn(a.stdin)
	root.SetOut(a.stdout)
	root.SetErr(a.stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	code := exitError
	if ec, ok := errors.AsType[*exitCodeError](err); ok {
		code = ec.code
		err = ec.err
	}
	if err != nil {
		msg := err.Error()
		if !a.kubernetesMode() {
			msg = a.withHint(err)
		}
		fmt.Fprintf(a.stderr, "error: %s\n", a.hints(msg))
	}
	return code
}

// withHint explains a refused connection to local mode's control API (and how to reach a
// cluster instead) or a refused token.
func (a *app) withHint(err error) string {
	if op, ok := errors.AsType[*net.OpError](err); ok && op.Op == "dial" {
		kube := "for Kubernetes mode, give --kubeconfig or --context, set KUBECONFIG, or run as `kubectl ramp`"
		if a.getenv("KUBECONFIG") != "" {
			kube = "KUBECONFIG is set, but --server, RAMP_SERVER or " + filepath.Join(a.stateDir, addrFile) + " picked local mode: give --kubeconfig for Kubernetes mode"
		}
		return err.Error() + " (local mode: is `ramp up` or `ramp serve` running? set --server or RAMP_SERVER; " + kube + ")"
	}
	if ae, ok := errors.AsType[*server.APIError](err); ok && ae.StatusCode == http.StatusUnauthorized {
		return err.Error() + " (every API call needs the token of <state-dir>/token: use the --state-dir of `ramp up`, or set --token or RAMP_TOKEN)"
	}
	return err.Error()
}

func (a *app) newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:   "ramp",
		Short: "Roll out new versions of a service safely, and roll back by itself",
		Long: `ramp rolls out new versions of a service with a rolling update, a canary with traffic
splitting, or blue-green, watches each version's health while it does, and rolls back by
itself when the new version is worse.

ramp up runs local mode; the other verbs talk to it over its control API. With
--kubeconfig or --context (or run as kubectl-ramp, or with KUBECONFIG set and no local mode
named by --server, RAMP_SERVER or <state-dir>/api.addr) they work on Rollouts in a cluster
instead, which ramp controller drives.

Global settings, in order of precedence:
  --state-dir  flag, then RAMP_STATE_DIR, then .ramp
  --server     flag, then RAMP_SERVER, then <state-dir>/api.addr, then ` + defaultServer + `
  --token      flag, then RAMP_TOKEN, then <state-dir>/token (every API call needs it)`,
		Example: `  ramp up -f chat-api.yaml
  ramp status chat-api
  ramp promote chat-api`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	// ramp's own completion command (completionCmd) replaces cobra's default one.
	root.CompletionOptions.DisableDefaultCmd = true
	root.Version = version.Get().String()
	root.SetVersionTemplate("{{.Version}}")
	pf := root.PersistentFlags()
	stateDir := a.getenv("RAMP_STATE_DIR")
	if stateDir == "" {
		stateDir = ".ramp"
	}
	pf.StringVar(&a.stateDir, "state-dir", stateDir, "directory of local mode's state: database, API address and token (env RAMP_STATE_DIR)")
	pf.StringVar(&a.server, "server", "", "control API URL (env RAMP_SERVER; default: <state-dir>/api.addr, else "+defaultServer+")")
	// The token's env value is read at use, never shown as a flag default in --help.
	pf.StringVar(&a.token, "token", "", "control API token (env RAMP_TOKEN; default: <state-dir>/token)")
	a.kubeFlags(pf)
	if a.plugin {
		root.Use = pluginName
		root.Annotations = map[string]string{cobra.CommandDisplayNameAnnotation: "kubectl ramp"}
	}

	root.AddCommand(
		a.upCmd(), a.serveCmd(), a.applyCmd(), a.getCmd(), a.statusCmd(),
		a.promoteCmd(), a.pauseCmd(), a.resumeCmd(), a.abortCmd(), a.retryCmd(), a.undoCmd(), a.restartCmd(),
		a.historyCmd(), a.eventsCmd(), a.lintCmd(), a.demoCmd(), a.controllerCmd(), a.dashboardCmd(),
		a.versionCmd(), a.completionCmd(),
	)
	if a.plugin {
		// The examples say what the user types: kubectl ramp.
		for _, c := range append(root.Commands(), root) {
			c.Example = strings.ReplaceAll(c.Example, "  ramp ", "  kubectl ramp ")
		}
	}
	return root
}

// client returns the control contract the verbs call, as the global flags select it: the
// cluster's (kube.Commands) with --kubeconfig, --context or as kubectl-ramp, else local
// mode's over its control API (server.Client).
func (a *app) client() (control.Control, error) {
	if a.kubernetesMode() {
		return a.kubeCommands()
	}
	return a.localClient()
}

// localClient returns a control API client for the global flags.
func (a *app) localClient() (*server.Client, error) {
	base := cmp.Or(a.server, a.getenv("RAMP_SERVER"))
	if base == "" {
		data, err := os.ReadFile(filepath.Join(a.stateDir, addrFile))
		switch {
		case err == nil:
			base = strings.TrimSpace(string(data))
		case errors.Is(err, os.ErrNotExist):
			base = defaultServer
		default:
			return nil, fmt.Errorf("read API address: %w", err)
		}
	}
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	token := cmp.Or(a.token, a.getenv("RAMP_TOKEN"))
	if token == "" {
		data, err := os.ReadFile(filepath.Join(a.stateDir, tokenFile))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("read API token: %w", err)
		}
		token = strings.TrimSpace(string(data))
	}
	return &server.Client{BaseURL: base, Token: token, HTTP: &http.Client{Timeout: 30 * time.Second}}, nil
}

// readInput reads a file, or stdin for "-".
func (a *app) readInput(path string) ([]byte, error) {
	if path == "-" {
		data, err := io.ReadAll(a.stdin)
		if err != nil {
			return nil, fmt.Errorf("read stdin: %w", err)
		}
		return data, nil
	}
	return os.ReadFile(path)
}

// inputName is how messages name an input.
func inputName(path string) string {
	if path == "-" {
		return "<stdin>"
	}
	return path
}

// logger is the logger of up and serve.
func (a *app) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(a.stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// rolloutAction builds promote-like verbs: one rollout name, one POST, one line printed.
func (a *app) rolloutAction(use, short, example string, call func(c control.Control, ctx context.Context, name string) (string, error)) *cobra.Command {
	return &cobra.Command{
		Use:     use + " NAME",
		Short:   short,
		Example: example,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			msg, err := call(c, cmd.Context(), args[0])
			if err != nil {
				return err
			}
			fmt.Fprintln(a.stdout, a.hints(msg))
			return nil
		},
	}
}
