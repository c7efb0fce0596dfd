package analysis

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/test/testkit"
)

// gatedProvider holds every measurement until the test releases it, and records why a
// cancelled one was cancelled.
type gatedProvider struct {
	started  chan Target
	release  chan Value
	causes   chan error
	finished chan struct{}
}

func newGated() *gatedProvider {
	return &gatedProvider{started: make(chan Target, 10), release: make(chan Value), causes: make(chan error, 10), finished: make(chan struct{}, 10)}
}

func (g *gatedProvider) Measure(ctx context.Context, _ v1alpha1.Metric, t Target) (Value, error) {
	g.started <- t
	defer func() { g.finished <- struct{}{} }()
	select {
	case v := <-g.release:
		return v, nil
	case <-ctx.Done():
		g.causes <- context.Cause(ctx)
		return Value{}, ctx.Err()
	}
}

func asyncFixture(t *testing.T) (*Async, *gatedProvider, chan string, func() (map[string]*v1alpha1.AnalysisTemplate, error)) {
	g := newGated()
	r := &Runner{Providers: map[string]Provider{"builtin": g}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	woken := make(chan string, 10)
	a := NewAsync(r, func(ns, ro string) { woken <- ns + "/" + ro })
	t.Cleanup(a.Close)
	m := builtinMetric("errors")
	m.Interval = secs("10s")
	m.Count = ptr(int32(3))
	m.SuccessCondition = "result < 0.1"
	tmpl := template("t", nil, m)
	return a, g, woken, func() (map[string]*v1alpha1.AnalysisTemplate, error) { return tmpl, nil }
}

func TestAsyncMeasuresOffTheCallersLoop(t *testing.T) {
	a, g, woken, templates := asyncFixture(t)
	on := Target{Namespace: "team", Rollout: "chat-api"}
	run := newRun()
	run.Phase = v1alpha1.AnalysisPending
	run.StartedAt = metav1.NewTime(t0)

	// Given a pending run, when it is stepped, then the step returns at once with the run
	// Running and its first measurement in flight.
	if next := a.Step(context.Background(), t0, on, run, templates); !next.IsZero() {
		t.Errorf("next %v while a step is in flight; want zero", next)
	}
	if run.Phase != v1alpha1.AnalysisRunning {
		t.Errorf("phase %s; want Running", run.Phase)
	}
	target := testkit.Recv(t, g.started, "measurement")
	if target.Run != run.Name || target.Measurement != 1 || target.Namespace != "team" {
		t.Errorf("target %+v; want run %s, measurement 1, namespace team", target, run.Name)
	}
	if !a.InFlight("team", "chat-api", run.Name) {
		t.Error("no step in flight")
	}

	// When stepped again while it is in flight, then no second measurement starts.
	persisted := run.DeepCopy()
	a.Step(context.Background(), t0.Add(time.Second), on, run, templates)
	select {
	case <-g.started:
		t.Fatal("a second measurement started while one is in flight")
	default:
	}

	// When the measurement ends, then the caller is woken and the next step merges it.
	g.release <- Value{Result: 0.01}
	if got := testkit.Recv(t, woken, "wake"); got != "team/chat-api" {
		t.Errorf("woken for %q", got)
	}
	next := a.Step(context.Background(), t0.Add(time.Second), on, run, templates)
	if res := run.Metrics[0]; res.Count != 1 || res.Successful != 1 {
		t.Fatalf("after the merge: %+v", res)
	}
	if want := t0.Add(10 * time.Second); !next.Equal(want) {
		t.Errorf("next %v; want %v", next, want)
	}

	// When the caller's status write failed (or its cache lags), then the result is merged
	// again into the status it hands back.
	stale := persisted.DeepCopy()
	a.Step(context.Background(), t0.Add(2*time.Second), on, stale, templates)
	if stale.Metrics[0].Count != 1 {
		t.Errorf("the stale status got %+v; want the result merged again", stale.Metrics)
	}

	// When the next measurement is due, it runs with the next number.
	a.Step(context.Background(), t0.Add(10*time.Second), on, run, templates)
	if target := testkit.Recv(t, g.started, "second measurement"); target.Measurement != 2 {
		t.Errorf("second measurement numbered %d", target.Measurement)
	}

	// When the run is no longer wanted, then its measurement is cancelled with ErrDropped.
	a.Forget("team", "chat-api", nil)
	if cause := testkit.Recv(t, g.causes, "cancellation"); !errors.Is(cause, ErrDropped) {
		t.Errorf("cancelled with %v; want ErrDropped", cause)
	}
	testkit.Recv(t, g.finished, "the cancelled measurement's end")
	select {
	case w := <-woken:
		t.Errorf("woken for %s after a dropped step", w)
	default:
	}
}

func TestAsyncDropsResultsOfAnEarlierRunAndStopsOnClose(t *testing.T) {
	a, g, woken, templates := asyncFixture(t)
	on := Target{Rollout: "chat-api"}
	run := newRun()
	run.StartedAt = metav1.NewTime(t0)
	a.Step(context.Background(), t0, on, run, templates)
	testkit.Recv(t, g.started, "measurement")
	g.release <- Value{Result: 0.5}
	testkit.Recv(t, woken, "wake")

	// Given a retry that made a new run of the same name, when it is stepped, then the
	// earlier run's result is not merged and the new run measures afresh.
	retry := newRun()
	retry.StartedAt = metav1.NewTime(t0.Add(time.Minute))
	a.Step(context.Background(), t0.Add(time.Minute), on, retry, templates)
	if len(retry.Metrics) != 0 {
		t.Errorf("the retry got the earlier run's metrics %+v", retry.Metrics)
	}
	testkit.Recv(t, g.started, "the retry's measurement")

	// When the stepper closes, then the step in flight is cancelled, not as dropped (what it
	// started outside ramp stays for the next process), and Close waits for it.
	a.Close()
	if cause := testkit.Recv(t, g.causes, "cancellation"); errors.Is(cause, ErrDropped) {
		t.Errorf("Close cancelled with ErrDropped")
	}
	select {
	case <-g.finished:
	default:
		t.Error("Close returned before the measurement ended")
	}
}

func TestAsyncCompletedRunCancelsItsStep(t *testing.T) {
	a, g, _, templates := asyncFixture(t)
	on := Target{Rollout: "chat-api"}
	run := newRun()
	run.StartedAt = metav1.NewTime(t0)
	a.Step(context.Background(), t0, on, run, templates)
	testkit.Recv(t, g.started, "measurement")

	// When the engine ends the run (a promotion) while it measures, then the measurement
	// is dropped.
	done := run.DeepCopy()
	done.Phase = v1alpha1.AnalysisSuccessful
	a.Forget("", "chat-api", []v1alpha1.AnalysisRunStatus{*done})
	if cause := testkit.Recv(t, g.causes, "cancellation"); !errors.Is(cause, ErrDropped) {
		t.Errorf("cancelled with %v; want ErrDropped", cause)
	}
	if next := a.Step(context.Background(), t0, on, done, templates); !next.IsZero() || done.Phase != v1alpha1.AnalysisSuccessful {
		t.Errorf("stepping a completed run: next %v phase %s", next, done.Phase)
	}
}
