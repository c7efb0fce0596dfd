package kube

import (
	"context"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/analysis"
)

// measurements takes the reconciler's analysis measurements off Reconcile, as local mode
// takes them off its loop (analysis.Async): a Job running a test suite takes minutes, and
// status updates and user commands (abort, promote) must not wait for it. Each run has at
// most one measurement in flight; when it ends, its Rollout is reconciled again through a
// channel the controller watches, and that reconcile merges the result into the status.
type measurements struct {
	*analysis.Async
	// events carries a Rollout to reconcile for each finished measurement.
	events   chan event.GenericEvent
	stopped  chan struct{}
	stopOnce sync.Once
}

func newMeasurements(runner *analysis.Runner) *measurements {
	m := &measurements{events: make(chan event.GenericEvent), stopped: make(chan struct{})}
	m.Async = analysis.NewAsync(runner, m.wake)
	return m
}

// Step is analysis.Async's Step with a context that outlives the reconcile: the measurement
// goes on after Reconcile returns, until its run is dropped or the controller stops.
func (m *measurements) Step(ctx context.Context, now time.Time, on analysis.Target, run *v1alpha1.AnalysisRunStatus, templates func() (map[string]*v1alpha1.AnalysisTemplate, error)) time.Time {
	return m.Async.Step(context.WithoutCancel(ctx), now, on, run, templates)
}

// wake asks for a reconcile of the Rollout, unless the controller stopped.
func (m *measurements) wake(namespace, name string) {
	select {
	case m.events <- event.GenericEvent{Object: &v1alpha1.Rollout{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name}}}:
	case <-m.stopped:
	}
}

// stop cancels the measurements in flight and waits for them. What they started outside
// ramp (a Job) keeps running: the next controller finds it by name.
func (m *measurements) stop() {
	m.stopOnce.Do(func() { close(m.stopped) })
	m.Close()
}

// setupMeasurements makes finished measurements reconcile their Rollout, and stops the
// measurements when the manager stops.
func (r *Reconciler) setupMeasurements(mgr manager.Manager) (source.Source, error) {
	if err := mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
		<-ctx.Done()
		r.measure.stop()
		r.gates.Close()
		return nil
	})); err != nil {
		return nil, err
	}
	return source.Channel(r.measure.events, &handler.EnqueueRequestForObject{}), nil
}

// Close stops the analysis measurements in flight. A Reconciler that SetupWithManager
// registered is closed when its manager stops.
func (r *Reconciler) Close() {
	r.measure.stop()
	r.gates.Close()
}
