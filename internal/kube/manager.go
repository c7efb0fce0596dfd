package kube

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"time"

	"github.com/go-logr/logr"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/analysis"
	"ramp.dev/ramp/internal/rampmetrics"
)

// ControllerName names the controller in events, leases and logs.
const ControllerName = "ramp-controller"

// indexWorkload indexes Rollouts by the name of the Deployment they point at.
const indexWorkload = "spec.workloadRef.name"

// Options configure the controller manager.
type Options struct {
	// Namespace is the one namespace to watch. Empty means all namespaces.
	Namespace string
	// LeaderElection makes only one of several replicas reconcile at a time.
	LeaderElection bool
	// LeaderElectionNamespace holds the Lease. Empty means the namespace the controller runs
	// in (in a cluster), else Namespace, else "default".
	LeaderElectionNamespace string
	// LeaseDuration, RenewDeadline and RetryPeriod tune leader election. Zero means
	// controller-runtime's defaults (15s, 10s, 2s).
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
	// MetricsBindAddress is where /metrics is served ("0" turns it off). Empty means ":8080".
	MetricsBindAddress string
	// HealthProbeBindAddress is where /healthz and /readyz are served ("0" turns them off).
	// Empty means ":8081".
	HealthProbeBindAddress string
	// Providers are the analysis providers by name. The job provider (JobProvider) is
	// added unless Providers has one named "job". Nil means only job.
	Providers map[string]analysis.Provider
	// Logger gets the controller's logs. Nil means slog.Default().
	Logger *slog.Logger
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
	// PrometheusAddress is the Prometheus holding the traffic routers' metrics (see
	// ReconcilerOptions). Empty means none.
	PrometheusAddress string
	// PrometheusTransport sends the requests to PrometheusAddress, and to a rollout's
	// ramp.dev/prometheus-address, with the controller's credentials and TLS settings. Nil
	// means a clone of http.DefaultTransport (no credentials).
	PrometheusTransport http.RoundTripper
	// JudgeInterval is how often the judge reads the router's counters. Zero means
	// DefaultJudgeInterval.
	JudgeInterval time.Duration
	// QPS and Burst bound the requests to the API server: per second on average, and at
	// once (rest.Config's QPS and Burst). Zero means cfg's, and when cfg leaves them 0,
	// DefaultQPS and DefaultBurst.
	QPS   float32
	Burst int
}

// DefaultQPS and DefaultBurst bound the controller's requests to the API server when
// neither cfg nor Options set them. client-go's own defaults (5 and 10) made 1,000 Rollouts
// settle in minutes.
const (
	DefaultQPS   = 50
	DefaultBurst = 100
)

// Scheme is the scheme of the objects the controller reads and writes.
func Scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		panic(err) // static registration of client-go's own types
	}
	if err := v1alpha1.AddToScheme(s); err != nil {
		panic(err)
	}
	return s
}

// NewManager builds the controller manager: the Rollout reconciler, watches on Rollouts,
// Deployments, ReplicaSets, AnalysisTemplates and the traffic routers' objects, leader
// election, metrics and health probes.
func NewManager(cfg *rest.Config, o Options) (manager.Manager, error) {
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	logger := logr.FromSlogHandler(log.Handler())
	ctrl.SetLogger(logger)
	klog.SetSlogLogger(log)

	metricsAddr := o.MetricsBindAddress
	if metricsAddr == "" {
		metricsAddr = ":8080"
	}
	probeAddr := o.HealthProbeBindAddress
	if probeAddr == "" {
		probeAddr = ":8081"
	}
	mo := ctrl.Options{
		Scheme:                        Scheme(),
		Logger:                        logger,
		Metrics:                       metricsserver.Options{BindAddress: metricsAddr},
		HealthProbeBindAddress:        probeAddr,
		LeaderElection:                o.LeaderElection,
		LeaderElectionID:              ControllerName + ".ramp.dev",
		LeaderElectionNamespace:       o.LeaderElectionNamespace,
		LeaderElectionReleaseOnCancel: true,
	}
	if mo.LeaderElectionNamespace == "" && !inCluster() {
		mo.LeaderElectionNamespace = o.Namespace
		if mo.LeaderElectionNamespace == "" {
			mo.LeaderElectionNamespace = "default"
		}
	}
	if o.LeaseDuration > 0 {
		mo.LeaseDuration = &o.LeaseDuration
	}
	if o.RenewDeadline > 0 {
		mo.RenewDeadline = &o.RenewDeadline
	}
	if o.RetryPeriod > 0 {
		mo.RetryPeriod = &o.RetryPeriod
	}
	if o.Namespace != "" {
		mo.Cache = cache.Options{DefaultNamespaces: map[string]cache.Config{o.Namespace: {}}}
	}
	cfg = rateLimits(cfg, o.QPS, o.Burst)
	mgr, err := ctrl.NewManager(cfg, mo)
	if err != nil {
		return nil, fmt.Errorf("new controller manager: %w", err)
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return nil, fmt.Errorf("health check: %w", err)
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return nil, fmt.Errorf("ready check: %w", err)
	}
	// ramp's own metrics (internal/rampmetrics) beside controller-runtime's, from the cache.
	feed, err := rampmetrics.Feed(ctrlmetrics.Registry, func(ctx context.Context) ([]v1alpha1.Rollout, error) {
		var l v1alpha1.RolloutList
		err := mgr.GetClient().List(ctx, &l)
		return l.Items, err
	}, log)
	if err == nil {
		err = mgr.Add(feed)
	}
	if err != nil {
		return nil, fmt.Errorf("ramp metrics: %w", err)
	}
	providers := maps.Clone(o.Providers)
	if providers == nil {
		providers = map[string]analysis.Provider{}
	}
	if providers["job"] == nil {
		providers["job"] = NewJobProvider(mgr.GetClient(), JobProviderOptions{Reader: mgr.GetAPIReader(), Logger: log, Now: o.Now})
	}
	r := NewReconciler(mgr.GetClient(), mgr.GetEventRecorder(ControllerName), ReconcilerOptions{Providers: providers, Logger: log, Now: o.Now,
		PrometheusAddress: o.PrometheusAddress, PrometheusTransport: o.PrometheusTransport, JudgeInterval: o.JudgeInterval, SecretReader: mgr.GetAPIReader(), APIReader: mgr.GetAPIReader()})
	if err := r.SetupWithManager(mgr); err != nil {
		return nil, err
	}
	if err := mgr.Add(r.notifierCloser()); err != nil {
		return nil, err
	}
	return mgr, nil
}

// rateLimits returns a copy of cfg with the client's rate limits: qps and burst when set,
// else cfg's, else DefaultQPS and DefaultBurst.
func rateLimits(cfg *rest.Config, qps float32, burst int) *rest.Config {
	cfg = rest.CopyConfig(cfg)
	switch {
	case qps > 0:
		cfg.QPS = qps
	case cfg.QPS == 0:
		cfg.QPS = DefaultQPS
	}
	switch {
	case burst > 0:
		cfg.Burst = burst
	case cfg.Burst == 0:
		cfg.Burst = DefaultBurst
	}
	return cfg
}

// inCluster reports whether the process runs in a pod with a service account.
func inCluster() bool {
	_, err := rest.InClusterConfig()
	return err == nil
}

// Run runs the controller until ctx ends.
func Run(ctx context.Context, cfg *rest.Config, o Options) error {
	mgr, err := NewManager(cfg, o)
	if err != nil {
		return err
	}
	return mgr.Start(ctx)
}

// SetupWithManager registers the reconciler and its watches with mgr.
func (r *Reconciler) SetupWithManager(mgr manager.Manager) error {
	ctx := context.Background()
	if err := mgr.GetFieldIndexer().IndexField(ctx, &v1alpha1.Rollout{}, indexWorkload, func(o client.Object) []string {
		ro := o.(*v1alpha1.Rollout)
		if ro.Spec.WorkloadRef == nil {
			return nil
		}
		return []string{ro.Spec.WorkloadRef.Name}
	}); err != nil {
		return fmt.Errorf("index rollouts by workload: %w", err)
	}
	byDeployment := func(ctx context.Context, ns, name string) []reconcile.Request {
		var list v1alpha1.RolloutList
		if err := mgr.GetClient().List(ctx, &list, client.InNamespace(ns), client.MatchingFields{indexWorkload: name}); err != nil {
			r.log.Warn("list rollouts of deployment", "deployment", ns+"/"+name, "err", err)
			return nil
		}
		out := make([]reconcile.Request, 0, len(list.Items))
		for _, ro := range list.Items {
			out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: ro.Namespace, Name: ro.Name}})
		}
		return out
	}
	measured, err := r.setupMeasurements(mgr)
	if err != nil {
		return fmt.Errorf("analysis measurements: %w", err)
	}
	b := ctrl.NewControllerManagedBy(mgr).
		Named("rollout").
		// Several managers in one process (tests of leader election) each register it.
		WithOptions(controller.Options{SkipNameValidation: ptrTo(true)}).
		For(&v1alpha1.Rollout{}, builder.WithPredicates(rolloutChanged)).
		Watches(&appsv1.Deployment{}, handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
			return byDeployment(ctx, o.GetNamespace(), o.GetName())
		})).
		// ramp's ReplicaSets (owned by the Rollout) and the Deployment's (owned by it, or
		// orphans on their way to it).
		Watches(&appsv1.ReplicaSet{}, handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
			if name := o.GetLabels()[LabelRollout]; name != "" {
				return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: o.GetNamespace(), Name: name}}}
			}
			for _, ref := range o.GetOwnerReferences() {
				if ref.Kind == "Deployment" {
					return byDeployment(ctx, o.GetNamespace(), ref.Name)
				}
			}
			return nil
		})).
		Watches(&v1alpha1.AnalysisTemplate{}, handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
			var list v1alpha1.RolloutList
			if err := mgr.GetClient().List(ctx, &list, client.InNamespace(o.GetNamespace())); err != nil {
				return nil
			}
			out := make([]reconcile.Request, 0, len(list.Items))
			for _, ro := range list.Items {
				out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: ro.Namespace, Name: ro.Name}})
			}
			return out
		})).
		// A container restart of a pod of the rollout: evidence against a new revision
		// (exits.go), seen at once rather than at the next poll.
		Watches(&corev1.Pod{}, handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
			ref := metav1.GetControllerOf(o)
			if ref == nil || ref.Kind != "ReplicaSet" {
				return nil
			}
			rs := &appsv1.ReplicaSet{}
			if err := mgr.GetClient().Get(ctx, types.NamespacedName{Namespace: o.GetNamespace(), Name: ref.Name}, rs); err != nil {
				return nil
			}
			if name := rs.Labels[LabelRollout]; name != "" {
				return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: rs.Namespace, Name: name}}}
			}
			if d := metav1.GetControllerOf(rs); d != nil && d.Kind == "Deployment" {
				return byDeployment(ctx, rs.Namespace, d.Name)
			}
			return nil
		}), builder.WithPredicates(restartsChanged)).
		// A finished analysis measurement (measure.go).
		WatchesRawSource(measured)
	return r.watchRouting(b, mgr).Complete(r)
}

func ptrTo[T any](v T) *T { return &v }

// restartsChanged lets through the pod updates that add a container restart.
var restartsChanged = predicate.Funcs{
	CreateFunc:  func(event.CreateEvent) bool { return false },
	DeleteFunc:  func(event.DeleteEvent) bool { return false },
	GenericFunc: func(event.GenericEvent) bool { return false },
	UpdateFunc: func(e event.UpdateEvent) bool {
		oldPod, ok1 := e.ObjectOld.(*corev1.Pod)
		newPod, ok2 := e.ObjectNew.(*corev1.Pod)
		if !ok1 || !ok2 {
			return false
		}
		before, _ := podExitsOf(oldPod)
		after, _ := podExitsOf(newPod)
		return after > before
	},
}

// rolloutChanged lets through the changes of a Rollout that call for a decision: its spec, its
// deletion, and the user commands written to its status (promote, abort, retry, resume). The
// controller's own status writes (times, counts) do not wake it again.
var rolloutChanged = predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
	oldRo, ok1 := e.ObjectOld.(*v1alpha1.Rollout)
	newRo, ok2 := e.ObjectNew.(*v1alpha1.Rollout)
	if !ok1 || !ok2 {
		return true
	}
	return oldRo.Generation != newRo.Generation || !newRo.DeletionTimestamp.IsZero() ||
		commands(&oldRo.Status) != commands(&newRo.Status) ||
		len(oldRo.Finalizers) != len(newRo.Finalizers)
}}

// commands sums up the status fields the user commands change.
func commands(st *v1alpha1.RolloutStatus) string {
	inconclusive := 0
	for _, a := range st.Analysis {
		if a.Phase == v1alpha1.AnalysisInconclusive {
			inconclusive++
		}
	}
	return fmt.Sprint(st.Abort, st.AbortedRevision, st.Promote, st.PromoteFull, len(st.PauseConditions), inconclusive, len(st.Analysis), st.CanaryRevision, st.PreviewRevision)
}
