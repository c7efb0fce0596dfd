package engine

import (
	"fmt"
	"strings"
)

// A workload that rolls itself (Capabilities.RollsItself, a Kubernetes Deployment's own
// rolling update) replaces its instances by itself; the engine does not size its revisions
// but gates it (Output.Workload):
//
//   - between rollouts, and while the update holds (at rollingUpdate.pause, on a user's pause,
//     on inconclusive analysis), it is held;
//   - while a revision rolls out and may go on, it rolls, up to the pause point;
//   - once the revision is aborted (analysis, the progress deadline — the rollout's or the
//     workload's own — or a command), it gets stable's template back and rolls to it until it
//     runs it fully (an undo), and is held again.

// rollsItself reports whether this decision gates a workload that rolls itself.
func (d *decision) rollsItself() bool {
	return d.in.Capabilities.RollsItself && d.spec.Strategy.RollingUpdate != nil
}

func (d *decision) workload() Workload {
	if d.in.Workload != nil {
		return *d.in.Workload
	}
	return Workload{Name: "the workload"}
}

// workloadDeadline says why rev is to be aborted because the workload that rolls it gave up
// on it by its own progress deadline, or "". Only the workload's verdict on rev's template
// counts, once its controller has seen that template.
func (d *decision) workloadDeadline(rev int64) string {
	if !d.rollsItself() || d.st.StableRevision == 0 || rev == d.st.StableRevision {
		return ""
	}
	w := d.workload()
	if w.DeadlineExceeded == "" || w.Stale || w.Revision != rev {
		return ""
	}
	return fmt.Sprintf("%s exceeded its progress deadline: %s", w.Name, w.DeadlineExceeded)
}

// gateWorkload sets Output.Workload from the decided status: which template the workload
// holds, and whether it may roll now. After an abort it also says the revision is undone.
func (d *decision) gateWorkload() {
	if !d.rollsItself() || d.st.StableRevision == 0 {
		return
	}
	w := d.workload()
	rev, stable := d.newRev, d.st.StableRevision
	undo := d.st.Abort && d.st.AbortedRevision == rev && rev != stable
	target := rev
	if undo {
		target = stable
	}
	rewrite := w.Revision != target
	roll := true
	switch {
	case target == stable:
		// Back to stable (or steady on it): roll until the workload runs it fully. A workload
		// whose controller has not seen its last change (often ramp's own hold) stays as it
		// is, or every hold would look like an unfinished rollout.
		switch {
		case rewrite:
			roll = true
		case w.Stale:
			roll = !w.Held
		default:
			roll = !w.Complete
		}
	case d.isPaused():
		roll = false
	case d.spec.Strategy.RollingUpdate.Pause != nil && d.beforePausePoint() && !rewrite:
		roll = w.Updated < PausePoint(d.spec.Strategy.RollingUpdate.Pause, d.replicas)
	}
	d.out.Workload = &WorkloadGate{Revision: target, Roll: roll}

	if undo && strings.HasPrefix(d.st.Message, "aborted: ") {
		why := strings.TrimPrefix(d.st.Message, "aborted: ")
		if rewrite {
			d.event(EventWarning, "RolloutUndone", fmt.Sprintf("revision %d undone: %s has the template of revision %d again and rolls back to it, as `kubectl rollout undo` would (%s)",
				rev, w.Name, stable, why))
		}
		d.st.Message = fmt.Sprintf("undone: %s; %s is back on the template of revision %d (`ramp retry %s` runs revision %d again)",
			why, w.Name, stable, d.in.Rollout.Name, rev)
	}
}
