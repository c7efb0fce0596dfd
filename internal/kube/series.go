package kube

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/analysis/trafficmetrics"
	"ramp.dev/ramp/internal/control"
	"ramp.dev/ramp/internal/spec"
)

// Chart settings of the dashboard in Kubernetes mode, as local mode's: the last 10 minutes
// at 5 s steps.
const (
	SeriesSpan = 10 * time.Minute
	SeriesStep = 5 * time.Second
	// SeriesTimeout bounds one read of a rollout's series.
	SeriesTimeout = 10 * time.Second
)

// PromSeries answers the dashboard's per-revision charts in Kubernetes mode from the
// Prometheus that holds the rollouts' router metrics or the app's own series
// (spec.appMetrics). It implements control.SeriesSource.
type PromSeries struct {
	// Get returns a rollout by name (a missing one wraps control.ErrNotFound).
	Get func(ctx context.Context, name string) (*v1alpha1.Rollout, error)
	// Prometheus is the client of the Prometheus to ask; nil means none was given (a
	// rollout's annotation may still name one).
	Prometheus *trafficmetrics.Client
	// Annotated returns the client of the Prometheus that a rollout's
	// ramp.dev/prometheus-address annotation names, which is asked instead of Prometheus when
	// it can be reached from here (it usually names an in-cluster address). Nil ignores the
	// annotation.
	Annotated func(address string) (*trafficmetrics.Client, error)
	// Now is the clock; nil means time.Now.
	Now func() time.Time

	mu sync.Mutex
	// reach caches, by address, whether an annotation's Prometheus could be reached, for
	// reachTTL: the page asks every 1.5 s.
	reach map[string]reachability
}

type reachability struct {
	err error
	at  time.Time
}

// Reach settings of an annotation's Prometheus.
const (
	reachTimeout = 2 * time.Second
	reachTTL     = time.Minute
)

// NoPrometheus is the error of Series when no Prometheus is given and the rollout names none
// that can be reached: it wraps control.ErrNoSeries, and says which flag to pass.
var NoPrometheus = fmt.Errorf("%w: Kubernetes mode's numbers are in Prometheus; run ramp dashboard with --prometheus-service NAMESPACE/NAME:PORT (through the API server) or --prometheus-address URL to see the charts", control.ErrNoSeries)

// client is the Prometheus to ask for ro, and why the annotation's is not asked; nil when
// there is none.
func (p *PromSeries) client(ctx context.Context, ro *v1alpha1.Rollout) (*trafficmetrics.Client, string) {
	addr := ro.Annotations[AnnotationPrometheusAddress]
	if addr == "" || p.Annotated == nil {
		return p.Prometheus, ""
	}
	c, err := p.Annotated(addr)
	if err == nil {
		p.mu.Lock()
		r, ok := p.reach[addr]
		p.mu.Unlock()
		if !ok || time.Since(r.at) > reachTTL {
			r = reachability{err: c.Reachable(ctx, reachTimeout), at: time.Now()}
			p.mu.Lock()
			if p.reach == nil {
				p.reach = map[string]reachability{}
			}
			p.reach[addr] = r
			p.mu.Unlock()
		}
		err = r.err
	}
	if err == nil {
		return c, ""
	}
	why := fmt.Sprintf("the rollout's %s annotation names a Prometheus that cannot be reached from here (%v)", AnnotationPrometheusAddress, err)
	if p.Prometheus != nil {
		why += "; the charts read " + p.Prometheus.Address() + " instead"
	}
	return p.Prometheus, why
}

var _ control.SeriesSource = (*PromSeries)(nil)

// Series reads each revision of the rollout's status over the last SeriesSpan. A revision
// whose series cannot be read has points without values and a message saying why.
func (p *PromSeries) Series(ctx context.Context, name string) (*control.Series, error) {
	ro, err := p.Get(ctx, name)
	if err != nil {
		return nil, err
	}
	prom, why := p.client(ctx, ro)
	if prom == nil {
		if why != "" {
			return nil, fmt.Errorf("%w (%s)", NoPrometheus, why)
		}
		return nil, NoPrometheus
	}
	now := time.Now
	if p.Now != nil {
		now = p.Now
	}
	to := now().Truncate(SeriesStep)
	r := trafficmetrics.Range{From: to.Add(-SeriesSpan), To: to, Step: SeriesStep}
	business := judgeBusiness(ro)
	out := &control.Series{Rollout: ro.Name, StepSeconds: int64(SeriesStep / time.Second), From: r.From.UTC(), To: r.To.UTC(), Revisions: []control.RevisionSeries{}, Message: why}
	for _, b := range business {
		out.Business = append(out.Business, b.Name)
	}
	revs := make([]int64, 0, len(ro.Status.Revisions))
	for _, rv := range ro.Status.Revisions {
		revs = append(revs, rv.Revision)
	}
	slices.Sort(revs)
	// Each revision's queries run beside the others', all within SeriesTimeout: the page
	// waits for them on each refresh.
	ctx, cancel := context.WithTimeout(ctx, SeriesTimeout)
	defer cancel()
	revs = slices.Compact(revs)
	out.Revisions = make([]control.RevisionSeries, len(revs))
	var wg sync.WaitGroup
	for i, rev := range revs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rs := control.RevisionSeries{Revision: rev}
			sel, err := RevisionSelector(ro, rev)
			if err == nil {
				rs.Points, rs.Message, err = prom.RevisionSeries(ctx, trafficmetrics.QueriesFor(sel, trafficmetrics.SeriesWindow, business), r)
			}
			if err != nil {
				rs.Message = err.Error()
			}
			if rs.Points == nil {
				rs.Points = emptyPoints(r)
			}
			out.Revisions[i] = rs
		}()
	}
	wg.Wait()
	return out, nil
}

func emptyPoints(r trafficmetrics.Range) []control.SeriesPoint {
	ts := r.Times()
	pts := make([]control.SeriesPoint, len(ts))
	for i, t := range ts {
		pts[i].Time = t.UTC()
	}
	return pts
}

// judgeBusiness are ro's judge's business metrics.
func judgeBusiness(ro *v1alpha1.Rollout) []v1alpha1.JudgeBusinessMetric {
	if c := ro.Spec.Strategy.Canary; c != nil && c.Judge != nil {
		return c.Judge.Business
	}
	return nil
}

// RevisionSelector selects revision rev's requests for the dashboard's charts: in the router's
// metrics by the canary or stable Service when the router's metrics are used and rev is the
// canary or stable revision, else in the app's own series by its pod-template-hash; with the
// app's series of the revision's pods beside (first token, business metrics) when ro names
// them. An error says why rev's requests cannot be told.
func RevisionSelector(ro *v1alpha1.Rollout, rev int64) (trafficmetrics.Selector, error) {
	st := ro.Status
	if useRouter(ro) {
		canary, stable, _ := routerSelectors(ro)
		var sel trafficmetrics.Selector
		switch rev {
		case st.CanaryRevision:
			sel = canary
		case st.StableRevision:
			sel = stable
		default:
			if ro.Spec.AppMetrics == nil {
				return sel, fmt.Errorf("revision %d is neither canary nor stable: the router's metrics do not tell its requests apart (spec.appMetrics would)", rev)
			}
			return appRevisionSelector(ro, rev)
		}
		sel.App, _ = appSelector(ro, rev) // without a known pod-template-hash: no first token nor business lines
		return sel, nil
	}
	if _, ok := spec.AppMetrics(ro.Spec.AppMetrics); !ok {
		_, _, err := routerSelectors(ro)
		return trafficmetrics.Selector{}, err
	}
	return appRevisionSelector(ro, rev)
}

func appRevisionSelector(ro *v1alpha1.Rollout, rev int64) (trafficmetrics.Selector, error) {
	sel := trafficmetrics.Selector{Router: trafficmetrics.App, Namespace: ro.Namespace}
	var err error
	sel.App, err = appSelector(ro, rev)
	return sel, err
}
