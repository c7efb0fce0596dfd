package analysis

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/offloop"
)

// ErrDropped is the cause of the cancellation of a step whose run its caller no longer wants
// (the rollout aborted, was promoted or moved on to a new revision). A provider that started
// something outside ramp, such as a Kubernetes Job, stops it then; on any other cancellation
// (the caller shutting down) it leaves it running for the next process to find.
var ErrDropped = errors.New("analysis run dropped")

// errClosed is the cause of the cancellation of the steps in flight when an Async closes.
var errClosed = errors.New("analysis stepper closed")

// Async takes an analysis run's steps off its caller's control loop: a provider may take
// minutes (a test suite run as a command or a Kubernetes Job, a slow Prometheus), and the
// loop, the API and user commands must not wait for it. Both local mode's loop and Kubernetes
// mode's reconciler use it.
//
// Each run (by rollout, run name and StartedAt) has at most one step in flight, on its own
// goroutine, working on a copy of the run. When the step ends, Async calls its wake function
// and keeps the finished run until the caller's next Step merges it into the caller's status.
// It keeps offering the result until the status handed to Step shows it, so a status write
// that failed, or a cache that lags behind the write, loses no measurement.
//
// It is safe for concurrent use; calls about one rollout come from one caller at a time.
type Async struct {
	runner *Runner
	wake   func(namespace, rollout string)
	runs   offloop.Reader[asyncKey, asyncRun, stepped]
}

type asyncKey struct{ namespace, rollout, run string }

// asyncRun is what Async knows of one run between steps.
type asyncRun struct {
	// startedAt tells the run from an earlier one of the same name (a retry).
	startedAt metav1.Time
	// result is the run after the last finished step, until the caller's status shows it;
	// nil when there is none to merge.
	result *v1alpha1.AnalysisRunStatus
	// next is when the next measurement is due after the last finished step; zero before
	// the first.
	next time.Time
}

// stepped is what one step yields: the stepped run and when its next measurement is due.
type stepped struct {
	run  *v1alpha1.AnalysisRunStatus
	next time.Time
}

// NewAsync returns an Async that steps runs with r and calls wake, from the step's goroutine,
// when a step has finished and the rollout should be reconciled. A nil wake means none.
func NewAsync(r *Runner, wake func(namespace, rollout string)) *Async {
	if wake == nil {
		wake = func(string, string) {}
	}
	return &Async{runner: r, wake: wake}
}

// Step merges into run the step that finished since the last call, and starts the next step
// when none is in flight and a measurement may be due. on names the rollout (Namespace and
// Rollout) and what is measured, as for Runner.StepFor; templates is called only to start a
// step, and an error from it ends the run as Error.
//
// It returns when to call again without being woken: the next measurement's due time; zero
// while a step is in flight (wake is called when it ends) or when the run is complete. A
// step starts with the run's phase set to Running and its StartedAt set, on run itself too,
// so that the caller records them at once.
//
// A run that is complete in the caller's status is not stepped; a step in flight for it is
// cancelled with ErrDropped.
func (a *Async) Step(ctx context.Context, now time.Time, on Target, run *v1alpha1.AnalysisRunStatus, templates func() (map[string]*v1alpha1.AnalysisTemplate, error)) time.Time {
	k := asyncKey{on.Namespace, on.Rollout, run.Name}
	s, held := a.runs.State(k)
	if held && !s.startedAt.Equal(&run.StartedAt) && !run.StartedAt.IsZero() {
		a.runs.Drop(k, ErrDropped) // a new run of the same name
		s, held = asyncRun{}, false
	}
	if v, ok := a.runs.Take(k); ok {
		s.result, s.next = v.run, v.next
	}
	if s.result != nil {
		switch {
		case sameRun(run, s.result):
			s.result = nil // the caller's status shows it
		case !run.Phase.Completed() && progress(run) <= progress(s.result):
			*run = *s.result.DeepCopy()
		default:
			s.result = nil // the caller's status has moved past it
		}
	}
	if run.Phase.Completed() {
		// Nothing is left to merge (a result was shown or passed just above).
		a.runs.Drop(k, ErrDropped)
		return time.Time{}
	}
	if held {
		a.runs.Put(k, s)
	}
	if a.runs.Busy(k) {
		return time.Time{}
	}
	if held && now.Before(s.next) {
		return s.next
	}

	tmpls, err := templates()
	if err != nil {
		run.Phase = v1alpha1.AnalysisError
		run.Message = err.Error()
		return time.Time{}
	}
	if run.Phase == "" || run.Phase == v1alpha1.AnalysisPending {
		run.Phase = v1alpha1.AnalysisRunning
	}
	if run.StartedAt.IsZero() {
		run.StartedAt = metav1.NewTime(now)
	}
	work := run.DeepCopy()
	s.startedAt = run.StartedAt
	a.runs.Put(k, s)
	a.runs.Start(ctx, k, func(ctx context.Context) stepped {
		next := a.runner.StepFor(ctx, now, on, work, tmpls)
		return stepped{run: work, next: next}
	}, func(k asyncKey) { a.wake(k.namespace, k.rollout) })
	return time.Time{}
}

// Forget cancels, with ErrDropped, the steps in flight of the rollout's runs that runs (the
// rollout's status) no longer holds, or holds as complete, and forgets the runs it no longer
// holds. Nil runs forgets the whole rollout, as when it is deleted.
func (a *Async) Forget(namespace, rollout string, runs []v1alpha1.AnalysisRunStatus) {
	for _, k := range a.runs.Keys() {
		if k.namespace != namespace || k.rollout != rollout {
			continue
		}
		s, _ := a.runs.State(k)
		i := -1
		for j := range runs {
			if runs[j].Name == k.run && runs[j].StartedAt.Equal(&s.startedAt) {
				i = j
			}
		}
		switch {
		case i < 0:
			a.runs.Drop(k, ErrDropped)
		case runs[i].Phase.Completed():
			a.runs.Cancel(k, ErrDropped)
		}
	}
}

// InFlight reports whether a step of the named run is in flight.
func (a *Async) InFlight(namespace, rollout, run string) bool {
	return a.runs.Busy(asyncKey{namespace, rollout, run})
}

// Close cancels every step in flight (not with ErrDropped: what a provider started outside
// ramp keeps running for the next process) and waits for their goroutines to end. Step
// starts no step after Close.
func (a *Async) Close() { a.runs.Close(errClosed) }

// progress is how many measurements the run has taken: what orders two states of one run.
func progress(run *v1alpha1.AnalysisRunStatus) int64 {
	var n int64
	for _, m := range run.Metrics {
		n += int64(m.Count) + int64(m.Error)
	}
	return n
}

// sameRun reports whether a and b are the same once stored (times to the second).
func sameRun(a, b *v1alpha1.AnalysisRunStatus) bool {
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && string(ja) == string(jb)
}
