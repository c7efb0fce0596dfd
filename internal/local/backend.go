package local

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/control"
	"ramp.dev/ramp/internal/engine"
	"ramp.dev/ramp/internal/spec"
	"ramp.dev/ramp/internal/store"
)

var _ control.Control = (*Controller)(nil)

// Apply loads and validates a YAML document (spec.Load) and applies it (ApplyBundle); an
// invalid document is a control.Invalid error listing its problems.
func (c *Controller) Apply(ctx context.Context, yaml []byte) ([]string, error) {
	b, err := spec.Load(yaml)
	if err != nil {
		return nil, control.Invalid(err)
	}
	return c.ApplyBundle(ctx, b)
}

// ApplyBundle stores analysis templates and rollouts. A changed template gets a new
// revision, except a template equal to the stable one, which goes straight back to stable.
func (c *Controller) ApplyBundle(ctx context.Context, b *spec.Bundle) ([]string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	// Kubernetes-only fields (a job provider, a Secret reference, a workloadRef) are refused.
	if err := spec.ValidateForMode(b, spec.ModeLocal); err != nil {
		return nil, fmt.Errorf("%w: %w", control.ErrInvalid, err)
	}
	known := map[string]bool{}
	for _, t := range b.AnalysisTemplates {
		known[t.Name] = true
	}
	if err := b.CheckReferences(func(name string) bool {
		if known[name] {
			return true
		}
		_, err := c.store.GetAnalysisTemplate(name)
		return err == nil
	}); err != nil {
		return nil, fmt.Errorf("%w: %w", control.ErrInvalid, err)
	}
	for i := range b.Rollouts {
		if err := c.proxies.checkListen(&b.Rollouts[i]); err != nil {
			return nil, fmt.Errorf("%w: rollout/%s: %w", control.ErrInvalid, b.Rollouts[i].Name, err)
		}
	}
	var lines []string
	for i := range b.AnalysisTemplates {
		t := &b.AnalysisTemplates[i]
		old, err := c.store.GetAnalysisTemplate(t.Name)
		verb := "created"
		if err == nil {
			verb = "configured"
			if reflect.DeepEqual(old.Spec, t.Spec) {
				verb = "unchanged"
			}
		}
		if err := c.store.PutAnalysisTemplate(t); err != nil {
			return lines, fmt.Errorf("store analysistemplate/%s: %w", t.Name, err)
		}
		lines = append(lines, fmt.Sprintf("analysistemplate/%s %s", t.Name, verb))
	}
	for i := range b.Rollouts {
		line, err := c.applyRollout(&b.Rollouts[i])
		if err != nil {
			return lines, err
		}
		lines = append(lines, line)
		c.wake.now(b.Rollouts[i].Name)
	}
	return lines, nil
}

func (c *Controller) applyRollout(in *v1alpha1.Rollout) (string, error) {
	now := c.clock.Now()
	r := in // the bundle is ours to change
	r.Status = v1alpha1.RolloutStatus{}
	old, err := c.store.GetRollout(r.Name)
	switch {
	case errors.Is(err, store.ErrNotFound):
		r.Generation = 1
		r.CreationTimestamp = metav1.NewTime(now)
	case err != nil:
		return "", fmt.Errorf("read rollout/%s: %w", r.Name, err)
	default:
		r.Status = old.Status
		r.CreationTimestamp = old.CreationTimestamp
		r.Generation = old.Generation
		if r.Spec.RestartAt == nil { // set by `ramp restart`, not by the applied file
			r.Spec.RestartAt = old.Spec.RestartAt
		}
		if !reflect.DeepEqual(old.Spec, r.Spec) {
			r.Generation++
		}
	}
	rev, created, err := c.setTemplate(r, r.Spec.Template, "apply")
	if err != nil {
		return "", err
	}
	switch {
	case old == nil:
		return fmt.Sprintf("rollout/%s created (revision %d)", r.Name, rev), nil
	case created:
		return fmt.Sprintf("rollout/%s configured (new revision %d)", r.Name, rev), nil
	case old.Generation != r.Generation || old.Status.CurrentRevision != rev:
		return fmt.Sprintf("rollout/%s configured (revision %d)", r.Name, rev), nil
	}
	return fmt.Sprintf("rollout/%s unchanged", r.Name), nil
}

// setTemplate makes tmpl r's current template and stores r. A template equal to the stable
// revision's goes back to it; any other change gets a new revision (engine.RevisionNumber).
func (c *Controller) setTemplate(r *v1alpha1.Rollout, tmpl v1alpha1.Template, cause string) (int64, bool, error) {
	r.Spec.Template = tmpl
	rev, created, err := c.store.ApplyRollout(r, cause, c.clock.Now())
	if err != nil {
		return 0, false, fmt.Errorf("store rollout/%s: %w", r.Name, err)
	}
	return rev.Number, created, nil
}

func (c *Controller) List(ctx context.Context) ([]v1alpha1.Rollout, error) {
	return c.store.ListRollouts()
}

func (c *Controller) Get(ctx context.Context, name string) (*v1alpha1.Rollout, error) {
	return c.store.GetRollout(name)
}

// command runs fn on the stored rollout and stores the result.
func (c *Controller) command(name string, fn func(r *v1alpha1.Rollout) error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, err := c.store.GetRollout(name)
	if err != nil {
		return err
	}
	if err := fn(r); err != nil {
		if errors.Is(err, engine.ErrNotInProgress) || errors.Is(err, engine.ErrAborted) || errors.Is(err, engine.ErrNotAborted) || errors.Is(err, engine.ErrNoStable) {
			return fmt.Errorf("%w: %w", control.ErrConflict, err)
		}
		return err
	}
	if err := c.store.PutRollout(r); err != nil {
		return fmt.Errorf("store rollout/%s: %w", name, err)
	}
	c.wake.now(name)
	return nil
}

// act runs command and answers msg when it succeeds.
func (c *Controller) act(name, msg string, fn func(r *v1alpha1.Rollout) error) (string, error) {
	if err := c.command(name, fn); err != nil {
		return "", err
	}
	return msg, nil
}

func (c *Controller) Promote(ctx context.Context, name string, full bool) (string, error) {
	msg := "rollout/" + name + " promoted"
	if full {
		msg += " (full)"
	}
	return c.act(name, msg, func(r *v1alpha1.Rollout) error {
		if err := engine.Promote(r, full); err != nil {
			return err
		}
		what := "promote"
		if full {
			what = "promote --full"
		}
		c.record(name, engine.EventNormal, "PromoteRequested", what+" by user", r.Status.CurrentRevision)
		return nil
	})
}

func (c *Controller) Pause(ctx context.Context, name string) (string, error) {
	return c.act(name, "rollout/"+name+" paused", func(r *v1alpha1.Rollout) error {
		r.Spec.Paused = true
		c.record(name, engine.EventNormal, "Paused", "paused by user", r.Status.CurrentRevision)
		return nil
	})
}

func (c *Controller) Resume(ctx context.Context, name string) (string, error) {
	return c.act(name, "rollout/"+name+" resumed", func(r *v1alpha1.Rollout) error {
		engine.Resume(r)
		c.record(name, engine.EventNormal, "Resumed", "resumed by user", r.Status.CurrentRevision)
		return nil
	})
}

func (c *Controller) Abort(ctx context.Context, name string) (string, error) {
	return c.act(name, "rollout/"+name+" aborted", func(r *v1alpha1.Rollout) error {
		inWatch := engine.InProgress(r) == 0 && engine.WatchOpen(r)
		rev := engine.InProgress(r)
		if inWatch {
			rev = r.Status.Watch.Revision
		}
		if err := engine.Abort(r); err != nil {
			return err
		}
		msg := fmt.Sprintf("abort by user: revision %d stops, traffic goes to revision %d", rev, r.Status.StableRevision)
		if inWatch {
			msg = fmt.Sprintf("abort by user in the watch window: traffic switched back to revision %d's running instances; revision %d stops", r.Status.StableRevision, rev)
		}
		c.record(name, engine.EventWarning, "AbortRequested", msg, rev)
		return nil
	})
}

func (c *Controller) Retry(ctx context.Context, name string) (string, error) {
	return c.act(name, "rollout/"+name+" retried", func(r *v1alpha1.Rollout) error {
		if err := engine.Retry(r, c.clock.Now()); err != nil {
			return err
		}
		c.record(name, engine.EventNormal, "RetryRequested", "retry by user", r.Status.CurrentRevision)
		return nil
	})
}

// Restart replaces the stable revision's instances with new ones, a few at a time: see
// engine.Restart.
func (c *Controller) Restart(ctx context.Context, name string) (string, error) {
	var msg string
	err := c.command(name, func(r *v1alpha1.Rollout) error {
		if r.Spec.Template.Process == nil {
			return fmt.Errorf("%w: restart %s: its instances are fixed upstreams that ramp does not run; restart them where they run", control.ErrConflict, name)
		}
		var err error
		if msg, err = engine.Restart(r, c.clock.Now()); err != nil {
			return err
		}
		c.record(name, engine.EventNormal, "RestartRequested", fmt.Sprintf("restart by user: instances of revision %d started before %s are replaced", r.Status.StableRevision, r.Spec.RestartAt.UTC().Format(time.RFC3339)), r.Status.StableRevision)
		return nil
	})
	return msg, err
}

// Undo rolls forward to an older revision's template: to toRevision, or (0) to the newest
// revision before the current one.
func (c *Controller) Undo(ctx context.Context, name string, toRevision int64) (control.UndoResult, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, err := c.store.GetRollout(name)
	if err != nil {
		return control.UndoResult{}, err
	}
	revs, err := c.store.Revisions(name)
	if err != nil {
		return control.UndoResult{}, fmt.Errorf("revisions of %s: %w", name, err)
	}
	var target *control.Revision
	for i := len(revs) - 1; i >= 0; i-- {
		rv := &revs[i]
		if toRevision == 0 && rv.Number < r.Status.CurrentRevision || toRevision != 0 && rv.Number == toRevision {
			target = rv
			break
		}
	}
	if target == nil {
		if toRevision == 0 {
			return control.UndoResult{}, fmt.Errorf("%w: undo %s: no revision before %d", control.ErrConflict, name, r.Status.CurrentRevision)
		}
		return control.UndoResult{}, fmt.Errorf("undo %s: revision %d: %w", name, toRevision, store.ErrNotFound)
	}
	if target.Number == r.Status.CurrentRevision {
		return control.UndoResult{}, fmt.Errorf("%w: undo %s: revision %d is already the current revision", control.ErrConflict, name, target.Number)
	}
	// Inside the watch window the previous revision's instances still run: it becomes
	// stable again at once, with no new process and no analysis run again.
	promoted := r.Status.StableRevision
	inWatch := engine.UndoInWatch(r, target.Number)
	rev, created, err := c.setTemplate(r, target.Template, fmt.Sprintf("undo to revision %d", target.Number))
	if err != nil {
		return control.UndoResult{}, err
	}
	if inWatch {
		c.record(name, engine.EventNormal, "Undo", fmt.Sprintf("undo to revision %d in the watch window: traffic switched back to its running instances at once; revision %d stops", target.Number, promoted), rev)
	} else if created {
		c.record(name, engine.EventNormal, "Undo", fmt.Sprintf("undo to revision %d: now revision %d", target.Number, rev), rev)
	} else {
		c.record(name, engine.EventNormal, "Undo", fmt.Sprintf("undo to revision %d: the stable revision again; nothing rolls out", target.Number), rev)
	}
	c.wake.now(name)
	return control.UndoResult{Target: target.Number, Revision: rev, New: created, SwitchedBack: inWatch}, nil
}

func (c *Controller) History(ctx context.Context, name string) ([]control.Revision, error) {
	if _, err := c.store.GetRollout(name); err != nil {
		return nil, err
	}
	return c.store.Revisions(name)
}

func (c *Controller) Events(ctx context.Context, name string, afterSeq uint64) ([]control.Event, error) {
	if _, err := c.store.GetRollout(name); err != nil {
		return nil, err
	}
	return c.store.Events(name, afterSeq)
}

// resumeAfterStart forgets time spent down, so a restart is not counted against the progress
// deadline.
func (c *Controller) resumeAfterStart() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	rollouts, err := c.store.ListRollouts()
	if err != nil {
		return err
	}
	now := metav1.NewTime(c.clock.Now())
	for i := range rollouts {
		r := &rollouts[i]
		if r.Status.LastProgressTime != nil {
			r.Status.LastProgressTime = &now
		}
		if err := c.store.PutRollout(r); err != nil {
			return err
		}
		c.record(r.Name, engine.EventNormal, "Resumed", fmt.Sprintf("ramp started; resuming in phase %s at revision %d", r.Status.Phase, r.Status.CurrentRevision), r.Status.CurrentRevision)
	}
	return nil
}
