package cli

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"ramp.dev/ramp/internal/control"
	"ramp.dev/ramp/internal/server"
)

// defaultDashboardAddr is where `ramp dashboard` listens: port 3100, as `kubectl argo
// rollouts dashboard`, on loopback only.
const defaultDashboardAddr = "127.0.0.1:3100"

func (a *app) dashboardCmd() *cobra.Command {
	var addr string
	var readOnly bool
	var prom dashboardProm
	cmd := &cobra.Command{
		Use:   "dashboard",
		Short: "Serve the web dashboard of the cluster's Rollouts on 127.0.0.1:3100",
		Long: `In Kubernetes mode, serve the web dashboard on --address (loopback by default), backed by
the cluster through the kubeconfig, as ` + "`kubectl argo rollouts dashboard`" + ` does: the list of
Rollouts and, for each, its phase, step, weights, revisions, analysis runs with the judge's
evidence, and events, refreshed every 1.5 s. Stop with Ctrl-C.

The page is read-only until it is given the token; its buttons (promote, pause, resume, abort,
retry, undo) then call the cluster with your kubeconfig's rights. The token is --token (or
RAMP_TOKEN), else a new random one; on a terminal ramp prints the page's address with it once
(open it, or paste the token into the page), elsewhere it never prints it. --read-only serves
the page without any token: every change is refused.

In local mode, ramp up serves the dashboard itself, at the control API's /dashboard/: this
command prints its address.

The per-revision charts (request rate, 5xx share, p95 latency, p95 first token, the judge's
business metrics, over the last 10 minutes at 5 s steps) are read from the Prometheus that
holds the router's metrics (Istio, NGINX) or the app's own series (spec.appMetrics), the
series the controller reads: --prometheus-service NAMESPACE/NAME:PORT reaches it through
the API server's service proxy with your kubeconfig's rights (as kubectl proxy does; it needs
get on services/proxy), --prometheus-address URL directly from your machine. A Rollout's
ramp.dev/prometheus-address annotation is read instead when it answers from this machine.
Without any, the page shows no charts and says which flag to pass.`,
		Example: `  ramp dashboard --kubeconfig ~/.kube/config -n team-chat
  kubectl ramp dashboard --address 127.0.0.1:3200
  ramp dashboard --read-only
  ramp dashboard --prometheus-service monitoring/prometheus:9090
  ramp dashboard --prometheus-address http://127.0.0.1:9090`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if !a.kubernetesMode() {
				return a.printLocalDashboard()
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if err := prom.check(); err != nil {
				return err
			}
			return a.serveDashboard(ctx, addr, readOnly, prom)
		},
	}
	cmd.Flags().StringVar(&addr, "address", defaultDashboardAddr, "address the dashboard listens on (keep it on loopback: the page speaks plain HTTP)")
	cmd.Flags().BoolVar(&readOnly, "read-only", false, "serve the page without a token: every change is refused")
	cmd.Flags().StringVar(&prom.service, "prometheus-service", "", "the charts' Prometheus as a Service NAMESPACE/NAME[:PORT], reached through the API server's service proxy (e.g. monitoring/prometheus:9090)")
	cmd.Flags().StringVar(&prom.address, "prometheus-address", "", "the charts' Prometheus as a URL reachable from this machine (e.g. http://127.0.0.1:9090)")
	return cmd
}

// printLocalDashboard prints where the running local mode serves its dashboard.
func (a *app) printLocalDashboard() error {
	c, err := a.localClient()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Health(ctx); err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "local mode serves the dashboard at %s%s\n", strings.TrimSuffix(c.BaseURL, "/"), server.DashboardPath)
	fmt.Fprintf(a.stdout, "its buttons need the token of %s (paste it into the page)\n", filepath.Join(a.stateDir, tokenFile))
	return nil
}

// dashboardControl is the control contract `ramp dashboard` serves: the cluster's, unless a
// test gave another.
func (a *app) dashboardControl() (control.Control, error) {
	if a.dashboardBackend != nil {
		return a.dashboardBackend()
	}
	return a.kubeCommands()
}

// serveDashboard serves the dashboard (the control API's handler over the cluster) on addr
// until ctx ends.
func (a *app) serveDashboard(ctx context.Context, addr string, readOnly bool, prom dashboardProm) error {
	ctrl, err := a.dashboardControl()
	if err != nil {
		return err
	}
	pc, err := a.dashboardPromClient(prom, a.restConfig)
	if err != nil {
		return err
	}
	ctrl = withSeries(ctrl, pc)
	token := ""
	if !readOnly {
		if token = cmp.Or(a.token, a.getenv("RAMP_TOKEN")); token == "" {
			if token, err = server.NewToken(); err != nil {
				return err
			}
		}
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("--address %q: %w", addr, err)
	}
	if ip, ok := ln.Addr().(*net.TCPAddr); ok && !ip.IP.IsLoopback() {
		fmt.Fprintf(a.stderr, "warning: --address %s is not a loopback address: whoever reaches it sees the rollouts, and the token crosses the network in clear\n", addr)
	}
	log := a.logger()
	srv := &http.Server{Handler: server.New(ctrl, token, log), ReadHeaderTimeout: 10 * time.Second}
	page := "http://" + ln.Addr().String() + server.DashboardPath
	fmt.Fprintf(a.stdout, "ramp dashboard: %s (Kubernetes mode; Ctrl-C stops it)\n", page)
	switch {
	case readOnly:
		fmt.Fprintln(a.stdout, "read-only: every change is refused")
	case a.isTerminal != nil && a.isTerminal(a.stdout):
		// Only to a terminal: never into a file or a CI log.
		fmt.Fprintf(a.stdout, "for the buttons, open %s?token=%s once, or paste the token into the page\n", page, token)
	default:
		fmt.Fprintln(a.stdout, "for the buttons, run it with --token or RAMP_TOKEN and paste that token into the page (a new one is not printed: stdout is not a terminal)")
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("dashboard: %w", err)
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("dashboard: %w", err)
	}
	return nil
}
