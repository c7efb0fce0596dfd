package local

import (
	"context"
	"fmt"
	"slices"
	"time"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/analysis"
	"ramp.dev/ramp/internal/driver"
	"ramp.dev/ramp/internal/engine"
	"ramp.dev/ramp/internal/supervisor"
)

// mode is local mode for the driver, for one step of one rollout: the supervisor's instances
// and ramp's proxy. c.mu is held.
type mode struct {
	c *Controller
	// observed is what Observe saw, which CarryOut routes to.
	observed map[int64][]supervisor.Instance
}

var _ driver.Mode = (*mode)(nil)

func (m *mode) Observe(ctx context.Context, r *v1alpha1.Rollout) (engine.Input, error) {
	if err := m.c.proxies.ensure(r); err != nil {
		return engine.Input{}, err
	}
	m.observed = m.c.sup.Instances(r.Name)
	instances := map[int64][]engine.Instance{}
	for rev, list := range m.observed {
		for _, in := range list {
			instances[rev] = append(instances[rev], engine.Instance{
				ID: in.ID, Ready: in.Ready, ReadySince: in.ReadySince, StartedAt: in.StartedAt,
				Terminating: in.Terminating, CrashLooping: in.CrashLooping, Restarts: in.Restarts, Message: in.Message, LastExit: in.LastExit,
				Exits: in.Exits, CreatedAt: in.CreatedAt, MemoryBytes: in.MemoryBytes,
			})
		}
	}
	m.c.recordExits(r.Name, m.observed)
	return engine.Input{Revision: r.Status.CurrentRevision, Instances: instances, WatchJudge: true}, nil
}

func (m *mode) Measurer() driver.Measurer { return m.c.measure }

func (m *mode) Target(r *v1alpha1.Rollout, _ v1alpha1.AnalysisKind) analysis.Target {
	return analysis.Target{Rollout: r.Name}
}

func (m *mode) Template(_ context.Context, _ *v1alpha1.Rollout, name string) (*v1alpha1.AnalysisTemplate, error) {
	return m.c.store.GetAnalysisTemplate(name)
}

// Judge steps a judge or watch run, which reads the proxy's counters (quick enough for the
// loop) one whole second at a time: it wants the next second.
func (m *mode) Judge(ctx context.Context, now time.Time, r *v1alpha1.Rollout, run *v1alpha1.AnalysisRunStatus) time.Time {
	if run.Kind == v1alpha1.AnalysisKindWatch {
		m.c.judging.stepWatch(ctx, now, r, run)
	} else {
		m.c.judging.stepJudge(ctx, now, r, run)
	}
	if run.Phase.Completed() {
		return time.Time{}
	}
	return now.Truncate(time.Second).Add(time.Second)
}

// CarryOut sets the instances (the ones a restart replaces stop first, so that Scale starts
// their replacements), then the routes.
func (m *mode) CarryOut(_ context.Context, r *v1alpha1.Rollout, out engine.Output) error {
	c, name := m.c, r.Name
	c.judging.forget(r)
	// The instances about to stop (restarted, or of a revision scaled to nothing) leave the
	// proxy's table first, so that no request is sent to one while it goes away.
	for rev, list := range m.observed {
		for i := range list {
			if out.Scale[rev] == 0 || slices.Contains(out.Restart, list[i].ID) {
				list[i].Terminating = true
			}
		}
	}
	c.proxies.setRoutes(r, out.Routes, m.observed)
	c.sup.Stop(name, out.Restart)
	revs := map[int64]bool{}
	for rev := range out.Scale {
		revs[rev] = true
	}
	for rev := range m.observed {
		revs[rev] = true
	}
	for rev := range revs {
		n := out.Scale[rev]
		var tmpl v1alpha1.Template // stopping needs no template; a pruned revision has none
		if n > 0 {
			rv, err := c.store.GetRevision(name, rev)
			if err != nil {
				return fmt.Errorf("revision %d of %s: %w", rev, name, err)
			}
			tmpl = rv.Template
		}
		c.sup.Scale(name, rev, tmpl, n)
	}
	return nil
}

func (m *mode) Persist(_ context.Context, r *v1alpha1.Rollout) error { return m.c.store.PutRollout(r) }

func (m *mode) Record(r *v1alpha1.Rollout, e engine.Event) {
	m.c.record(r.Name, e.Type, e.Reason, e.Message, e.Revision)
}

func (m *mode) Revisions(_ context.Context, r *v1alpha1.Rollout) ([]int64, error) {
	revs, err := m.c.store.Revisions(r.Name)
	nums := make([]int64, len(revs))
	for i := range revs {
		nums[i] = revs[i].Number
	}
	return nums, err
}

func (m *mode) Prune(_ context.Context, r *v1alpha1.Rollout, revisions []int64) error {
	return m.c.store.DeleteRevisions(r.Name, revisions...)
}
