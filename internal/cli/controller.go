package cli

import (
	"fmt"
	"log/slog"
	"net/url"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/rest"

	"ramp.dev/ramp/internal/analysis"
	promprovider "ramp.dev/ramp/internal/analysis/prometheus"
	"ramp.dev/ramp/internal/analysis/web"
	"ramp.dev/ramp/internal/kube"
)

func (a *app) controllerCmd() *cobra.Command {
	o := kube.Options{}
	var leaderElect bool
	var logLevel string
	var prom prometheusFlags
	cmd := &cobra.Command{
		Use:   "controller",
		Short: "Run Kubernetes mode's controller: it drives Rollouts in a cluster",
		Long: `Run the controller that reconciles Rollout resources (ramp.dev/v1alpha1) in a cluster: it
keeps each Rollout's Deployment on the stable revision, runs the canary or preview beside it,
moves traffic through Services or the configured router, runs analysis, and promotes or
rolls back. In a pod it uses the pod's service account; elsewhere --kubeconfig (or
KUBECONFIG, or ~/.kube/config).

With --leader-elect (the default) several replicas may run; one leads, through a Lease named
ramp-controller.ramp.dev in --leader-election-namespace. The controller serves Prometheus
metrics on /metrics at --metrics-bind-address and /healthz and /readyz at
--health-probe-bind-address.

The controller reads the traffic router's metrics for builtin analysis metrics and the judge
from --prometheus-address (a rollout's ramp.dev/prometheus-address annotation names another,
asked with the same settings). The --prometheus-* flags are its access settings, as an
AnalysisTemplate's prometheus provider has them: a bearer token or a basic auth password from
a file (a mounted Secret; read at each request), a CA file, or SigV4 for Amazon Managed
Service for Prometheus.`,
		Example: `  ramp controller --kubeconfig ~/.kube/config --namespace team-chat
  ramp controller --leader-elect=false --metrics-bind-address 127.0.0.1:9090
  ramp controller --prometheus-address https://prometheus.monitoring:9090 \
    --prometheus-username ramp --prometheus-password-file /etc/ramp/prometheus/password \
    --prometheus-ca-file /etc/ramp/prometheus/ca.crt`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var level slog.Level
			if err := level.UnmarshalText([]byte(logLevel)); err != nil {
				return fmt.Errorf("--log-level: %q is not one of debug, info, warn, error", logLevel)
			}
			if o.QPS <= 0 {
				return fmt.Errorf("--kube-api-qps: %v is not above 0", o.QPS)
			}
			if o.Burst < 1 {
				return fmt.Errorf("--kube-api-burst: %d is not 1 or more", o.Burst)
			}
			promProvider := promprovider.New(a.now)
			var err error
			if o.PrometheusTransport, err = prom.transport(promProvider); err != nil {
				return err
			}
			cfg, err := a.controllerConfig()
			if err != nil {
				return err
			}
			o.Providers = map[string]analysis.Provider{
				"prometheus": promProvider,
				"web":        web.New(nil),
				// builtin is answered from the traffic router's metrics in Prometheus
				// (--prometheus-address); scrape and command read local mode's processes; the
				// manager adds job.
			}
			o.Namespace = a.namespace
			o.LeaderElection = leaderElect
			o.Logger = slog.New(slog.NewTextHandler(a.stderr, &slog.HandlerOptions{Level: level}))
			o.Now = a.now
			if o.PrometheusAddress != "" {
				if u, err := url.Parse(o.PrometheusAddress); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
					return fmt.Errorf("--prometheus-address: %q is not an http(s) URL, such as http://prometheus.monitoring:9090", o.PrometheusAddress)
				}
			}
			o.Logger.Info("ramp controller starting", "namespace", orAll(o.Namespace), "leaderElection", leaderElect, "prometheus", o.PrometheusAddress,
				"prometheusAuth", prom.auth(), "kubeAPIQPS", o.QPS, "kubeAPIBurst", o.Burst, "metrics", o.MetricsBindAddress, "probes", o.HealthProbeBindAddress)
			return kube.Run(cmd.Context(), cfg, o)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&leaderElect, "leader-elect", true, "elect one leader among the controller's replicas (false: this one always reconciles)")
	f.StringVar(&o.LeaderElectionNamespace, "leader-election-namespace", "", "namespace of the leader Lease (default: the pod's namespace, else --namespace, else default)")
	f.DurationVar(&o.LeaseDuration, "leader-elect-lease-duration", 15*time.Second, "how long a leader's Lease holds without renewal")
	f.DurationVar(&o.RenewDeadline, "leader-elect-renew-deadline", 10*time.Second, "how long the leader tries to renew before it gives up leading")
	f.DurationVar(&o.RetryPeriod, "leader-elect-retry-period", 2*time.Second, "how often candidates try to become leader")
	f.StringVar(&o.MetricsBindAddress, "metrics-bind-address", ":8080", "address of the /metrics endpoint (0 turns it off)")
	f.StringVar(&o.PrometheusAddress, "prometheus-address", "", "Prometheus holding the Istio or NGINX ingress metrics that builtin analysis metrics and the judge read (a rollout's ramp.dev/prometheus-address annotation overrides it)")
	prom.add(f)
	f.Float32Var(&o.QPS, "kube-api-qps", kube.DefaultQPS, "requests per second to the Kubernetes API server, on average")
	f.IntVar(&o.Burst, "kube-api-burst", kube.DefaultBurst, "requests to the Kubernetes API server at once, above --kube-api-qps")
	f.DurationVar(&o.JudgeInterval, "judge-interval", kube.DefaultJudgeInterval, "how often the judge reads the router's request counters from Prometheus")
	f.StringVar(&logLevel, "log-level", "info", "least level of the log lines written: debug, info, warn or error")
	f.StringVar(&o.HealthProbeBindAddress, "health-probe-bind-address", ":8081", "address of /healthz and /readyz (0 turns them off)")
	return cmd
}

// controllerConfig is the controller's cluster connection: --kubeconfig or --context when
// given, else in-cluster, else kubectl's default kubeconfig.
func (a *app) controllerConfig() (*rest.Config, error) {
	if a.kubeconfig == "" && a.kubeContext == "" {
		if cfg, err := rest.InClusterConfig(); err == nil {
			return cfg, nil
		}
	}
	cfg, err := a.restConfig()
	if err != nil {
		return nil, fmt.Errorf("controller: %w", err)
	}
	return cfg, nil
}

func orAll(ns string) string {
	if ns == "" {
		return "(all)"
	}
	return ns
}
