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
		return canary, stable, fmt.Errorf("a blueGreen rollout has no traffic router whose metrics ramp reads (only canary trafficRouting %s)", strings.Join(trafficmetrics.Routers(), " or "))
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
		return canary, stable, fmt.Errorf("the %s router exports no request metrics ramp reads (trafficRouting %s do)", routerTitle(orService(name)), strings.Join(trafficmetrics.Routers(), " and "))
	}
	if err := canary.Validate(); err != nil {
		return canary, stable, err
	}
	return canary, stable, stable.Validate()
}

func orService(name string) string {
	if name == "" {
		return "service"
	}
	return name
}

// unreadable says why ro's router metrics cannot be read; empty when they can.
func (m *routerMetrics) unreadable(ro *v1alpha1.Rollout) string {
	if _, _, err := routerSelectors(ro); err != nil {
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
	canary, stable, _ := routerSelectors(ro)
	return trafficmetrics.Scope{Address: m.prometheusAddress(ro), Revision: canary, Baseline: stable}, nil
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
			return append(errs, &spec.FieldError{Path: "spec.strategy.canary.judge.enabled", Msg: "true cannot be honoured in Kubernetes mode, where the judge reads the traffic router's request counters from Prometheus: " + why})
		}
	}
	if !m.judgeOn(ro) {
		return errs
	}
	for i, name := range j.Metrics {
		if !slices.Contains(trafficmetrics.JudgeMetrics(), name) {
			errs = append(errs, &spec.FieldError{Path: fmt.Sprintf("spec.strategy.canary.judge.metrics[%d]", i), Msg: fmt.Sprintf("%q is not judged in Kubernetes mode, which reads only the router's request and 5xx counters; use %s", name, strings.Join(trafficmetrics.JudgeMetrics(), ", "))})
		}
	}
	if len(j.Business) > 0 {
		errs = append(errs, &spec.FieldError{Path: "spec.strategy.canary.judge.business", Msg: "is local mode only (it scrapes each instance); in Kubernetes mode judge a business metric with an analysis step on a prometheus metric"})
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
		run.Message = "the judge cannot read the router's metrics: " + why
		m.forget(key)
		return time.Time{}
	}
	canary, stable, _ := routerSelectors(ro)
	cl, err := trafficmetrics.NewClient(m.prometheusAddress(ro), m.transport)
	if err != nil {
		run.Phase = v1alpha1.AnalysisError
		run.Message = err.Error()
		return time.Time{}
	}
	js, _ := m.judges.State(key)
	if js.j == nil || !js.j.Of(run) {
		m.judges.Drop(key, nil) // an earlier run's read
		js = judgeState{j: trafficmetrics.NewJudge(run, spec.Judge(ro.Spec.Strategy.Canary))}
	}
	var reading *trafficmetrics.Reading
	if r, ok := m.judges.Take(key); ok {
		reading = &r
	}
	// Read at now's evaluation time, off the loop; the reading is applied by the reconcile
	// that its end wakes.
	if !now.Before(js.next) && m.judges.Start(context.WithoutCancel(ctx), key, func(ctx context.Context) trafficmetrics.Reading {
		ctx, cancel := context.WithTimeout(ctx, judgeReadTimeout)
		defer cancel()
		return trafficmetrics.Read(ctx, cl, now, canary, stable)
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
			errs = append(errs, &spec.FieldError{Path: path, Msg: fmt.Sprintf("%q is not measured in Kubernetes mode, where builtin metrics come from the traffic router's metrics; these are: %s", b.Metric, strings.Join(trafficmetrics.Metrics(), ", "))})
			continue
		}
		if why := m.unreadable(ro); why != "" {
			errs = append(errs, &spec.FieldError{Path: path, Msg: fmt.Sprintf("%q cannot be measured for rollout %s: %s", b.Metric, ro.Name, why)})
		}
	}
	return errs
}
