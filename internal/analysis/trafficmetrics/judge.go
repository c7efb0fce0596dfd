package trafficmetrics

import (
	"context"
	"fmt"
	"time"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/analysis/judge"
	"ramp.dev/ramp/internal/analysis/judgerun"
	"ramp.dev/ramp/internal/spec"
)

// JudgeMetrics are the judge metrics a router's counters feed: error-rate. (Latency would
// need a threshold on histogram buckets; ttfb and business metrics are not in them.)
func JudgeMetrics() []string { return []string{v1alpha1.JudgeErrorRate} }

// Judge feeds one judge run from a router's counters: at each Step it reads the canary's and
// stable's cumulative request and 5xx counters and adds their increases since the previous
// Step as one slice, so the canary's realised share of the traffic in that slice is what the
// test weighs. It lives in memory; after a restart the judge starts again on new increments,
// which costs evidence but keeps the test valid.
type Judge struct {
	run *judgerun.Run
	// prev are the last readings (canary, stable); primed once there is one.
	prev   [2]Counts
	prevAt time.Time
	primed bool
	// resets counts the Steps skipped because a counter went down (pods restarted).
	resets int
	// lastErr is why the last reading failed; nil when it did not.
	lastErr error
}

// NewJudge returns the judge of run, with settings (validation has refused metrics other
// than JudgeMetrics()).
func NewJudge(run *v1alpha1.AnalysisRunStatus, settings spec.JudgeSettings) *Judge {
	return &Judge{run: judgerun.New(run, settings, []judgerun.Metric{{Name: v1alpha1.JudgeErrorRate, Events: "errors"}})}
}

// Of reports whether j is the judge of run (same name and start).
func (j *Judge) Of(run *v1alpha1.AnalysisRunStatus) bool { return j != nil && j.run.Of(run) }

// Step reads the counters at now through c, feeds the increase since the last Step, and
// writes the verdict into run (st is the rollout's status, for the running step analysis
// run). An error (Prometheus not reachable) leaves run's verdict as it was and says why in
// its message; the next Step reads again. It is Read then Apply; a caller that must not wait
// for Prometheus runs Read elsewhere and Applies its reading later.
func (j *Judge) Step(ctx context.Context, c *Client, now time.Time, canary, stable Selector, st *v1alpha1.RolloutStatus, run *v1alpha1.AnalysisRunStatus) error {
	r := Read(ctx, c, now, canary, stable)
	j.Apply(&r, st, run)
	return r.Err
}

// Reading is one read of the canary's and stable's cumulative counters.
type Reading struct {
	At             time.Time
	Canary, Stable Counts
	// Err says why the counters could not be read; nil means they were.
	Err error
}

// Read reads the canary's and stable's counters at now through c. It touches no judge, so it
// may run on any goroutine.
func Read(ctx context.Context, c *Client, now time.Time, canary, stable Selector) Reading {
	r := Reading{At: now}
	r.Canary, r.Err = c.Counts(ctx, now, canary)
	if r.Err == nil {
		r.Stable, r.Err = c.Counts(ctx, now, stable)
	}
	return r
}

// Apply feeds reading r (nil: no new one since the last Apply) into the judge and writes the verdict into run, as
// Step does.
func (j *Judge) Apply(r *Reading, st *v1alpha1.RolloutStatus, run *v1alpha1.AnalysisRunStatus) {
	judgerun.Start(run)
	j.run.TrackStep(st)
	if r != nil {
		j.lastErr = r.Err
		if r.Err == nil {
			j.feed(r.At, r.Canary, r.Stable)
		}
	}
	j.run.Report(run, func(string) (string, string) {
		if j.lastErr != nil {
			return "", fmt.Sprintf(" (last read failed: %s)", j.lastErr.Error())
		}
		return "", ""
	})
}

// feed adds the increase since the previous reading.
func (j *Judge) feed(now time.Time, canary, stable Counts) {
	prev, from := j.prev, j.prevAt
	j.prev, j.prevAt = [2]Counts{canary, stable}, now
	if !j.primed {
		j.primed = true
		return
	}
	s := judge.Slice{
		CanaryTotal: int64(canary.Requests - prev[0].Requests), CanaryEvents: int64(canary.Errors - prev[0].Errors),
		StableTotal: int64(stable.Requests - prev[1].Requests), StableEvents: int64(stable.Errors - prev[1].Errors),
	}
	if s.CanaryTotal < 0 || s.CanaryEvents < 0 || s.StableTotal < 0 || s.StableEvents < 0 {
		j.resets++ // a counter was reset: the next reading starts again from the new values
		return
	}
	if s.CanaryTotal == 0 {
		return // no canary request: nothing to judge
	}
	// The slice began at the previous reading: it counts for a step analysis run only when
	// that began before it.
	j.run.Add(v1alpha1.JudgeErrorRate, from.Unix(), s)
}
