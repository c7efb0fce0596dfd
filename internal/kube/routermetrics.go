package kube

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/analysis"
	"ramp.dev/ramp/internal/analysis/trafficmetrics"
	"ramp.dev/ramp/internal/offloop"
	"ramp.dev/ramp/internal/spec"
)

// AnnotationPrometheusAddress on a Rollout names the Prometheus that holds its traffic
// router's metrics, instead of the controller's --prometheus-address. It is asked with the
// controller's credentials and TLS settings (--prometheus-username and the rest).
const AnnotationPrometheusAddress = "ramp.dev/prometheus-address"

// DefaultJudgeInterval is how often Kubernetes mode reads the router's counters for the judge.
const DefaultJudgeInterval = 10 * time.Second

// routerMetrics reads a rollout's traffic router's metrics from Prometheus: it answers the
// builtin provider's request metrics (when the reconciler was given no builtin provider of its
// own) and feeds the sequential judge. Only Istio and NGINX export metrics ramp reads.
type routerMetrics struct {
	reader client.Reader
	// address is the controller's Prometheus; empty means none (a rollout may name its own).
	address string
	// transport sends the requests to address or a rollout's own, with the controller's
	// credentials and TLS settings.
	transport http.RoundTripper
	// ownsBuiltin says the builtin provider is this one, so templates' builtin metrics are
	// checked against what it can measure.
	ownsBuiltin bool
	interval    time.Duration

	// wake asks for a reconcile of a Rollout when a read of its counters ends; nil means
	// none (the next poll applies it).
	wake func(namespace, name string)

	// judges holds each rollout's judge and its read of the counters, which runs off the
	// reconcile loop: a slow or hung Prometheus must not hold up every rollout's decisions.
	judges offloop.Reader[types.NamespacedName, judgeState, trafficmetrics.Reading]
}

// judgeState is one rollout's judge, between its reconciles.
type judgeState struct {
	j *trafficmetrics.Judge
	// next is when the next read is due.
	next time.Time
}

// judgeReadTimeout bounds one read of the counters.
const judgeReadTimeout = 30 * time.Second

var _ trafficmetrics.Resolver = (*routerMetrics)(nil)

// prometheusAddress is the Prometheus of ro's router metrics: its annotation, else the
// controller's; empty when neither.
func (m *routerMetrics) prometheusAddress(ro *v1alpha1.Rollout) string {
	if a := ro.Annotations[AnnotationPrometheusAddress]; a != "" {
		return a
	}
	return m.address
}

// routerSelectors are the selectors of ro's canary and stable requests in its router's
// metrics; an error says why there are none.
func routerSelectors(ro *v1alpha1.Rollout) (canary, stable trafficmetrics.Selector, err error) {
	c := ro.Spec.Strategy.Canary
	if c == nil {
		return canary, stable, fmt.Errorf("a %s rollout has no traffic router whose metrics ramp reads (only canary trafficRouting %s): set spec.appMetrics to read the app's own series", strategyName(ro), strings.Join(trafficmetrics.Routers(), " or "))
	}
	name := RouterName(ro)
	switch spec.RouterOf(ro).Metrics {
	case trafficmetrics.Istio:
		canary = trafficmetrics.Selector{Router: name, Namespace: ro.Namespace, Service: c.CanaryService}
		stable = trafficmetrics.Selector{Router: name, Namespace: ro.Namespace, Service: c.StableService}
	case trafficmetrics.Nginx:
		ing := []string{c.TrafficRouting.Nginx.StableIngress, CanaryIngressName(ro.Name, c.TrafficRouting.Nginx.StableIngress)}
		canary = trafficmetrics.Selector{Router: name, Namespace: ro.Namespace, Ingresses: ing, Canary: true}
		stable = trafficmetrics.Selector{Router: name, Namespace: ro.Namespace, Ingresses: ing}
	default:
		return canary, stable, fmt.Errorf("the %s router exports no request metrics ramp reads (trafficRouting %s do): set spec.appMetrics to read the app's own series", routerTitle(orService(name)), strings.Join(trafficmetrics.Routers(), " and "))
	}
	if err := canary.Validate(); err != nil {
		return canary, stable, err
	}
	return canary, stable, stable.Validate()
}

// strategyName names ro's strategy in messages.
func strategyName(ro *v1alpha1.Rollout) string {
	switch {
	case ro.Spec.Strategy.BlueGreen != nil:
		return "blueGreen"
	case ro.Spec.Strategy.RollingUpdate != nil:
		return "rollingUpdate"
	}
	return "canary"
}

// useRouter reports whether ro's request metrics come from its router's own series: the
// router exports them and spec.appMetrics does not prefer the app's.
func useRouter(ro *v1alpha1.Rollout) bool {
	if _, _, err := routerSelectors(ro); err != nil {
		return false
	}
	a, ok := spec.AppMetrics(ro.Spec.AppMetrics)
	return !ok || a.Prefer != spec.AppMetricsPreferApp
}

// appSelector selects revision rev's pods in ro's app series (spec.appMetrics); nil when ro
// names none, an error when the revision's pod-template-hash is not known.
func appSelector(ro *v1alpha1.Rollout, rev int64) (*trafficmetrics.AppSelector, error) {
	a, ok := spec.AppMetrics(ro.Spec.AppMetrics)
	if !ok {
		return nil, nil
	}
	for _, r := range ro.Status.Revisions {
		if r.Revision == rev && r.PodTemplateHash != "" && ro.Spec.WorkloadRef != nil {
			return &trafficmetrics.AppSelector{Series: a, Hash: r.PodTemplateHash,
				PodPrefix: trafficmetrics.PodPrefix(replicaSetName(ro.Spec.WorkloadRef.Name, r.PodTemplateHash))}, nil
		}
	}
	return nil, fmt.Errorf("revision %d of rollout %s runs no pods with a known pod-template-hash yet", rev, ro.Name)
}

// selectors are the selectors of revision rev (the canary, preview or new revision) and of
// base (stable or active; zero means none) of ro: the router's metrics by Service when they
// are used, else the app's by pod-template-hash, each with the app's series of the
// revision's pods when ro names them.
func selectors(ro *v1alpha1.Rollout, rev, base int64) (revSel, baseSel trafficmetrics.Selector, err error) {
	if useRouter(ro) {
		revSel, baseSel, _ = routerSelectors(ro)
	} else {
		if ro.Spec.AppMetrics == nil {
			_, _, err := routerSelectors(ro)
			return revSel, baseSel, err
		}
		revSel = trafficmetrics.Selector{Router: trafficmetrics.App, Namespace: ro.Namespace}
		baseSel = revSel
	}
	if revSel.App, err = appSelector(ro, rev); err != nil {
		return revSel, baseSel, err
	}
	if base != 0 {
		if baseSel.App, err = appSelector(ro, base); err != nil {
			return revSel, baseSel, err
		}
	}
	return revSel, baseSel, nil
}

func orService(name string) string {
	if name == "" {
		return "service"
	}
	return name
}

// unreadable says why ro's request metrics cannot be read; empty when they can.
func (m *routerMetrics) unreadable(ro *v1alpha1.Rollout) string {
	if _, _, err := routerSelectors(ro); err != nil && ro.Spec.AppMetrics == nil {
		return err.Error()
	}
	if m.prometheusAddress(ro) == "" {
		return "no Prometheus is set: start the controller with --prometheus-address, or annotate the rollout " + AnnotationPrometheusAddress
	}
	return ""
}

// Scope finds the Rollout of the measurement target and where its requests are counted.
func (m *routerMetrics) Scope(ctx context.Context, t analysis.Target) (trafficmetrics.Scope, error) {
	ro := &v1alpha1.Rollout{}
	if err := m.reader.Get(ctx, types.NamespacedName{Namespace: t.Namespace, Name: t.Rollout}, ro); err != nil {
		return trafficmetrics.Scope{}, fmt.Errorf("get rollout %s/%s: %w", t.Namespace, t.Rollout, err)
	}
	if why := m.unreadable(ro); why != "" {
		return trafficmetrics.Scope{}, fmt.Errorf("builtin metrics in Kubernetes mode: %s", why)
	}
	rev, base, err := selectors(ro, t.Revision, t.Baseline)
	if err != nil {
		return trafficmetrics.Scope{}, fmt.Errorf("builtin metrics in Kubernetes mode: %w", err)
	}
	return trafficmetrics.Scope{Address: m.prometheusAddress(ro), Revision: rev, Baseline: base}, nil
}

// judgeSettings are ro's judge settings in Kubernetes mode: the default metrics leave out
// first-token when the app names no first-token histogram.
func judgeSettings(ro *v1alpha1.Rollout) spec.JudgeSettings {
	c := ro.Spec.Strategy.Canary
	s := spec.Judge(c)
	if c == nil || c.Judge == nil || len(c.Judge.Metrics) == 0 {
		if a, ok := spec.AppMetrics(ro.Spec.AppMetrics); !ok || a.FirstToken == "" {
			s.Metrics = slices.DeleteFunc(s.Metrics, func(n string) bool { return n == v1alpha1.JudgeFirstToken })
		}
	}
	return s
}

// validate reports what Kubernetes mode cannot do of ro's judge and Prometheus settings: an
// explicit judge.enabled: true when the router's metrics cannot be read, judge metrics other
// than error-rate, business metrics, and a bad prometheus-address annotation.
func (m *routerMetrics) validate(ro *v1alpha1.Rollout) spec.Errors {
	var errs spec.Errors
	if a, ok := ro.Annotations[AnnotationPrometheusAddress]; ok {
		if u, err := url.Parse(a); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, &spec.FieldError{Path: "metadata.annotations[" + AnnotationPrometheusAddress + "]", Msg: fmt.Sprintf("%q is not an http(s) URL of a Prometheus, such as http://prometheus.monitoring:9090", a)})
		}
	}
	c := ro.Spec.Strategy.Canary
	if c == nil || c.Judge == nil {
		return errs
	}
	j := c.Judge
	if j.Enabled != nil && *j.Enabled {
		if why := m.unreadable(ro); why != "" {
			return append(errs, &spec.FieldError{Path: "spec.strategy.canary.judge.enabled", Msg: "true cannot be honoured in Kubernetes mode, where the judge reads the traffic router's or the app's counters from Prometheus: " + why})
		}
	}
	if !m.judgeOn(ro) {
		return errs
	}
	app, hasApp := spec.AppMetrics(ro.Spec.AppMetrics)
	for i, name := range j.Metrics {
		path := fmt.Sprintf("spec.strategy.canary.judge.metrics[%d]", i)
		switch {
		case !slices.Contains(trafficmetrics.JudgeMetrics(), name):
			errs = append(errs, &spec.FieldError{Path: path, Msg: fmt.Sprintf("%q is not judged in Kubernetes mode, where no usual Prometheus series holds it; use %s", name, strings.Join(trafficmetrics.JudgeMetrics(), ", "))})
		case name == v1alpha1.JudgeFirstToken && (!hasApp || app.FirstToken == ""):
			errs = append(errs, &spec.FieldError{Path: path, Msg: fmt.Sprintf("%q is judged in Kubernetes mode from the app's first-token histogram: set spec.appMetrics.firstToken", name)})
		}
	}
	for i, b := range j.Business {
		path := fmt.Sprintf("spec.strategy.canary.judge.business[%d]", i)
		if !hasApp {
			errs = append(errs, &spec.FieldError{Path: path, Msg: fmt.Sprintf("%q is read in Kubernetes mode from the app's own series in Prometheus: set spec.appMetrics (and scrape the pods as the README shows)", b.Name)})
			continue
		}
		if b.Path != "" {
			errs = append(errs, &spec.FieldError{Path: path + ".path", Value: b.Path, Msg: "is where local mode scrapes each instance; Kubernetes mode reads the metric from Prometheus, leave it out"})
		}
	}
	return errs
}

// judgeOn reports whether the judge runs for ro in Kubernetes mode: as in local mode (on
// unless disabled) when the router's metrics can be read, else only when explicitly enabled
// (which validation refuses).
func (m *routerMetrics) judgeOn(ro *v1alpha1.Rollout) bool {
	c := ro.Spec.Strategy.Canary
	if !spec.Judge(c).Enabled {
		return false
	}
	return m.unreadable(ro) == "" || (c.Judge != nil && c.Judge.Enabled != nil)
}

// judgeDefaults turns the judge off in the engine's copy of a rollout whose router metrics
// cannot be read: on by default, it would decide nothing.
func (m *routerMetrics) judgeDefaults(in *v1alpha1.Rollout) {
	c := in.Spec.Strategy.Canary
	if c == nil || !spec.Judge(c).Enabled || m.judgeOn(in) {
		return
	}
	if c.Judge == nil {
		c.Judge = &v1alpha1.CanaryJudge{}
	}
	c.Judge.Enabled = ptrTo(false)
}

// stepJudge feeds ro's judge run from the router's counters and returns when to read them
// again.
func (m *routerMetrics) stepJudge(ctx context.Context, now time.Time, ro *v1alpha1.Rollout, run *v1alpha1.AnalysisRunStatus) time.Time {
	key := types.NamespacedName{Namespace: ro.Namespace, Name: ro.Name}
	if why := m.unreadable(ro); why != "" {
		run.Phase = v1alpha1.AnalysisError
		run.Message = "the judge cannot read its Prometheus series: " + why
		m.forget(key)
		return time.Time{}
	}
	canary, stable, err := selectors(ro, run.Revision, run.BaselineRevision)
	if err != nil {
		// The revisions' pod-template-hash is not in the status yet: read again shortly.
		run.Message = "the judge waits: " + err.Error()
		return now.Add(m.interval)
	}
	cl, err := trafficmetrics.NewClient(m.prometheusAddress(ro), m.transport)
	if err != nil {
		run.Phase = v1alpha1.AnalysisError
		run.Message = err.Error()
		return time.Time{}
	}
	js, _ := m.judges.State(key)
	if js.j == nil || !js.j.Of(run) {
		m.judges.Drop(key, nil) // an earlier run's read
		js = judgeState{j: trafficmetrics.NewJudge(run, judgeSettings(ro))}
	}
	var reading *trafficmetrics.Reading
	if r, ok := m.judges.Take(key); ok {
		reading = &r
	}
	plan := js.j.Plan()
	// Read at now's evaluation time, off the loop; the reading is applied by the reconcile
	// that its end wakes.
	if !now.Before(js.next) && m.judges.Start(context.WithoutCancel(ctx), key, func(ctx context.Context) trafficmetrics.Reading {
		ctx, cancel := context.WithTimeout(ctx, judgeReadTimeout)
		defer cancel()
		return trafficmetrics.Read(ctx, cl, now, canary, stable, plan)
	}, func(key types.NamespacedName) {
		if m.wake != nil {
			m.wake(key.Namespace, key.Name)
		}
	}) {
		js.next = now.Add(m.interval)
	}
	m.judges.Put(key, js)
	// The judge is only touched here, by the Rollout's own reconciles, one at a time.
	js.j.Apply(reading, &ro.Status, run)
	if run.Phase.Completed() {
		m.forget(key)
		return time.Time{}
	}
	return js.next
}

// forget drops a rollout's judge state, cancelling its read in flight.
func (m *routerMetrics) forget(key types.NamespacedName) {
	m.judges.Drop(key, nil)
}

// checkTemplate reports the builtin metrics of t that ro's analysis cannot measure in
// Kubernetes mode, when the builtin provider is routerMetrics'.
func (m *routerMetrics) checkTemplate(ro *v1alpha1.Rollout, t *v1alpha1.AnalysisTemplate) spec.Errors {
	if !m.ownsBuiltin {
		return nil
	}
	var errs spec.Errors
	for i, mt := range t.Spec.Metrics {
		b := mt.Provider.Builtin
		if b == nil {
			continue
		}
		path := fmt.Sprintf("spec.metrics[%d].provider.builtin.metric", i)
		if !trafficmetrics.Supported(b.Metric) {
			errs = append(errs, &spec.FieldError{Path: path, Msg: fmt.Sprintf("%q is not measured in Kubernetes mode, where builtin metrics come from Prometheus (the traffic router's or the app's series); these are: %s", b.Metric, strings.Join(trafficmetrics.Metrics(), ", "))})
			continue
		}
		if why := m.unmeasurable(ro, b.Metric); why != "" {
			errs = append(errs, &spec.FieldError{Path: path, Msg: fmt.Sprintf("%q cannot be measured for rollout %s: %s", b.Metric, ro.Name, why)})
		}
	}
	return errs
}

// unmeasurable says why builtin metric cannot be measured for ro; empty when it can.
func (m *routerMetrics) unmeasurable(ro *v1alpha1.Rollout, metric string) string {
	if trafficmetrics.IsRequestMetric(metric) {
		return m.unreadable(ro)
	}
	app, ok := spec.AppMetrics(ro.Spec.AppMetrics)
	switch {
	case !ok:
		return "it is read from the app's own series, kube-state-metrics' and cAdvisor's: set spec.appMetrics"
	case strings.HasPrefix(metric, "first-token-") && app.FirstToken == "":
		return "it is read from the app's first-token histogram: set spec.appMetrics.firstToken"
	case m.prometheusAddress(ro) == "":
		return "no Prometheus is set: start the controller with --prometheus-address, or annotate the rollout " + AnnotationPrometheusAddress
	}
	return ""
}
