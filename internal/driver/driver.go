// Package driver runs one step of a rollout for either mode: observe, run analysis, decide
// (engine.Decide), carry out, persist the status, record the events, drop the measurements
// no longer wanted and prune the revision history. A mode (local, Kubernetes) implements
// Mode and decides nothing itself.
package driver

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/analysis"
	"ramp.dev/ramp/internal/engine"
)

// Mode is what a mode does for the driver.
type Mode interface {
	// Observe returns what the mode sees of r's world as the engine's input: the revision of
	// the template, the instances, and what the mode can do. Now is set by the driver; a nil
	// Rollout means r itself, else it is the rollout the engine decides on (a copy of r with
	// what the mode knows of its spec), to which the driver copies r's status after analysis.
	// What Observe changes of r's status (a condition, a start-over) counts as a change.
	Observe(ctx context.Context, r *v1alpha1.Rollout) (engine.Input, error)
	// Measurer takes the measurements of the analysis runs other than judge and watch runs.
	Measurer() Measurer
	// Target is what a run of kind measures, for the Measurer. Its Namespace and Rollout
	// name r for the Measurer whatever the kind (an empty kind asks for them alone).
	Target(r *v1alpha1.Rollout, kind v1alpha1.AnalysisKind) analysis.Target
	// Template returns the analysis template named name, checked and with defaults.
	Template(ctx context.Context, r *v1alpha1.Rollout, name string) (*v1alpha1.AnalysisTemplate, error)
	// Judge steps a judge or watch run (kinds judge and watch) and returns when it wants to
	// be stepped again; zero when it does not say.
	Judge(ctx context.Context, now time.Time, r *v1alpha1.Rollout, run *v1alpha1.AnalysisRunStatus) time.Time
	// CarryOut makes the world match out: instances, then routes. r.Status is out.Status.
	CarryOut(ctx context.Context, r *v1alpha1.Rollout, out engine.Output) error
	// Persist stores r's status; it is called only when the status changed.
	Persist(ctx context.Context, r *v1alpha1.Rollout) error
	// Record records an event of r.
	Record(r *v1alpha1.Rollout, e engine.Event)
	// Revisions lists the revision numbers recorded for r, and Prune deletes some.
	Revisions(ctx context.Context, r *v1alpha1.Rollout) ([]int64, error)
	Prune(ctx context.Context, r *v1alpha1.Rollout, revisions []int64) error
}

// Measurer takes analysis measurements off the caller's loop; *analysis.Async is one.
type Measurer interface {
	Step(ctx context.Context, now time.Time, on analysis.Target, run *v1alpha1.AnalysisRunStatus, templates func() (map[string]*v1alpha1.AnalysisTemplate, error)) time.Time
	Forget(namespace, rollout string, runs []v1alpha1.AnalysisRunStatus)
}

var _ Measurer = (*analysis.Async)(nil)

// Result is what one step asks of its caller.
type Result struct {
	// Next is when to step the rollout again even if nothing is observed to change: the
	// engine's Requeue, the next measurement or judge second due, or now for a run that
	// waits for its first measurement. Zero means no such time.
	Next time.Time
	// Changed says the status changed (and was persisted).
	Changed bool
}

// Step runs one decision for r at now and carries it out. On success r holds the new status.
func Step(ctx context.Context, m Mode, r *v1alpha1.Rollout, now time.Time) (Result, error) {
	before, err := json.Marshal(r.Status)
	if err != nil {
		return Result{}, fmt.Errorf("marshal status: %w", err)
	}
	in, err := m.Observe(ctx, r)
	if err != nil {
		return Result{}, err
	}
	next := RunAnalysis(ctx, m, now, r)
	mergeGates(m, r)

	if in.Rollout == nil {
		in.Rollout = r
	} else {
		in.Rollout.Status = *r.Status.DeepCopy()
	}
	in.Now = now
	out := engine.Decide(in)
	r.Status = out.Status
	if err := m.CarryOut(ctx, r, out); err != nil {
		return Result{}, err
	}
	next = earliest(next, callGates(ctx, m, r, now, out.Gates))

	// Then record the decision, so the status never shows what the world does not do yet.
	after, err := json.Marshal(r.Status)
	if err != nil {
		return Result{}, fmt.Errorf("marshal status: %w", err)
	}
	res := Result{Next: earliest(out.Requeue, next), Changed: string(before) != string(after)}
	if res.Changed {
		if err := m.Persist(ctx, r); err != nil {
			return Result{}, fmt.Errorf("save status of %s: %w", r.Name, err)
		}
	}
	for _, e := range out.Events {
		m.Record(r, e)
	}
	for _, run := range r.Status.Analysis {
		if !isJudge(run.Kind) && (run.Phase == "" || run.Phase == v1alpha1.AnalysisPending) {
			res.Next = now // a run the decision just started takes its first measurement now
		}
	}
	// Stop the measurements of runs the engine no longer wants (an abort, a promotion, a new
	// revision), so a test suite stops when its rollout does.
	on := m.Target(r, "")
	m.Measurer().Forget(on.Namespace, on.Rollout, r.Status.Analysis)
	// Prune when the status changed: what is in use is read off the status, and a revision
	// leaves it after its promotion as its instances go (Kubernetes mode's hand-over).
	if res.Changed {
		forgetGates(m, r)
		if err := prune(ctx, m, r); err != nil {
			return res, err
		}
	}
	return res, nil
}

// prune deletes the revisions engine.PruneRevisions names.
func prune(ctx context.Context, m Mode, r *v1alpha1.Rollout) error {
	revs, err := m.Revisions(ctx, r)
	if err != nil {
		return fmt.Errorf("prune revisions of %s: %w", r.Name, err)
	}
	if drop := engine.PruneRevisions(r, revs); len(drop) > 0 {
		if err := m.Prune(ctx, r, drop); err != nil {
			return fmt.Errorf("prune revisions of %s: %w", r.Name, err)
		}
	}
	return nil
}

// RunAnalysis merges finished measurements into r's analysis runs and starts the ones that
// are due, off the caller's loop (the Measurer): a provider may take minutes, and the loop
// must not wait for it. Judge and watch runs are stepped by the mode. It records the end of
// each run and returns when the next step is due (zero when none, or when only measurements
// in flight are left: they wake the caller when they end).
func RunAnalysis(ctx context.Context, m Mode, now time.Time, r *v1alpha1.Rollout) time.Time {
	var next time.Time
	for i := range r.Status.Analysis {
		run := &r.Status.Analysis[i]
		before := run.Phase
		if isJudge(run.Kind) {
			if run.Phase.Completed() {
				continue
			}
			next = earliest(next, m.Judge(ctx, now, r, run))
		} else {
			next = earliest(next, m.Measurer().Step(ctx, now, m.Target(r, run.Kind), run, func() (map[string]*v1alpha1.AnalysisTemplate, error) {
				return templates(ctx, m, r, run)
			}))
		}
		if run.Phase != before && run.Phase.Completed() {
			typ := engine.EventNormal
			if run.Phase != v1alpha1.AnalysisSuccessful {
				typ = engine.EventWarning
			}
			m.Record(r, engine.Event{Type: typ, Reason: "Analysis" + string(run.Phase),
				Message: fmt.Sprintf("analysis %s: %s %s", run.Name, run.Phase, run.Message), Revision: run.Revision})
		}
	}
	return next
}

// templates reads the analysis templates run uses.
func templates(ctx context.Context, m Mode, r *v1alpha1.Rollout, run *v1alpha1.AnalysisRunStatus) (map[string]*v1alpha1.AnalysisTemplate, error) {
	out := map[string]*v1alpha1.AnalysisTemplate{}
	for _, ref := range run.Spec.Templates {
		t, err := m.Template(ctx, r, ref.TemplateName)
		if err != nil {
			return nil, fmt.Errorf("analysis template %q: %s", ref.TemplateName, err.Error())
		}
		out[ref.TemplateName] = t
	}
	return out, nil
}

func isJudge(k v1alpha1.AnalysisKind) bool {
	return k == v1alpha1.AnalysisKindJudge || k == v1alpha1.AnalysisKindWatch
}

// earliest is the earlier of two times, zero meaning none.
func earliest(a, b time.Time) time.Time {
	if a.IsZero() || !b.IsZero() && b.Before(a) {
		return b
	}
	return a
}
