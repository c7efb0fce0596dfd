package engine

import (
	"fmt"
	"strconv"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/spec"
)

// The watch window (scaleDownDelaySeconds of every strategy): after a promotion the previous
// stable revision's instances keep running, warm and out of traffic, and the new stable is
// judged against the previous revision's record. When it degrades (a crash loop, exits or
// memory worse than the previous revision's, or the watch judge run failing), or on `ramp
// abort` inside the window, traffic switches back to the warm instances at once and the
// rollout ends Degraded with the new revision aborted, so that `ramp retry` can run it again.

// openWatch opens the watch window after rev replaced old as stable.
func (d *decision) openWatch(rev, old int64) {
	win := spec.WatchWindow(&d.spec.Strategy)
	if win <= 0 || old == 0 || old == rev {
		d.st.Watch = nil
		return
	}
	until := metav1.NewTime(d.now.Add(win))
	if d.st.ScaleDownAt == nil {
		d.st.ScaleDownAt = map[string]metav1.Time{}
	}
	d.st.ScaleDownAt[strconv.FormatInt(old, 10)] = until
	d.st.Watch = &v1alpha1.WatchStatus{Revision: rev, PreviousRevision: old, Since: metav1.NewTime(d.now), Until: until}
	d.requeue(until.Time)
}

// WatchOpen reports whether r's watch window is open: its stable revision was promoted over a
// previous revision whose instances are still kept warm.
func WatchOpen(r *v1alpha1.Rollout) bool {
	st := &r.Status
	w := st.Watch
	if w == nil || w.Revision != st.StableRevision || w.PreviousRevision == 0 {
		return false
	}
	_, warm := st.ScaleDownAt[strconv.FormatInt(w.PreviousRevision, 10)]
	return warm
}

// watch runs the watch window of the stable revision, if one is open: it closes the window
// at its end and switches traffic back when the new stable degrades. It reports whether it
// switched back.
func (d *decision) watch() bool {
	w := d.st.Watch
	if w == nil {
		return false
	}
	stable := d.st.StableRevision
	if !d.now.Before(w.Until.Time) || !WatchOpen(&v1alpha1.Rollout{Status: d.st}) {
		if w.Revision == stable && !d.now.Before(w.Until.Time) {
			d.event(EventNormal, "WatchEnded", fmt.Sprintf("revision %d held up for %s after its promotion; revision %d's instances stop",
				stable, w.Until.Sub(w.Since.Time).Round(time.Second), w.PreviousRevision))
		}
		d.st.Watch = nil
		return false
	}
	prev := w.PreviousRevision
	d.requeue(w.Until.Time)
	why := ""
	for _, inst := range d.in.Instances[stable] {
		if inst.CrashLooping && !inst.Terminating {
			why = fmt.Sprintf("revision %d is crash-looping: instance %s restarted %d times: %s", stable, inst.ID, inst.Restarts, orNone(inst.LastExit))
			break
		}
	}
	if why == "" {
		why = d.exitsWorse(stable, prev)
	}
	if why == "" {
		why = d.memoryWorse(stable, prev)
	}
	if why == "" && d.in.WatchJudge {
		run := d.ensureRun(v1alpha1.AnalysisKindWatch, nil, v1alpha1.RolloutAnalysis{}, prev)
		if run.Phase == v1alpha1.AnalysisFailed || run.Phase == v1alpha1.AnalysisError {
			why = fmt.Sprintf("analysis %s %s: %s", run.Name, lower(run.Phase), orNone(run.Message))
		}
	}
	if why != "" {
		rev, prev := SwitchBack(&d.st, why)
		d.event(EventWarning, "RolledBack", fmt.Sprintf("revision %d degraded in the watch window after its promotion: %s; traffic switched back to revision %d", rev, why, prev))
		d.aborted()
		return true
	}
	d.watchNote()
	return false
}

// watchNote tells, in a healthy rollout's message, that its watch window is open.
func (d *decision) watchNote() {
	if w := d.st.Watch; w != nil && d.st.Phase == v1alpha1.PhaseHealthy {
		d.st.Message += fmt.Sprintf("; watching it until %s, revision %d kept warm to switch back to", w.Until.UTC().Format(time.RFC3339), w.PreviousRevision)
	}
}

// SwitchBack ends st's open watch window by sending traffic back to the previous revision:
// it becomes stable again and the promoted revision is aborted (a retry runs it again). It
// returns the promoted and the previous revision.
func SwitchBack(st *v1alpha1.RolloutStatus, why string) (rev, prev int64) {
	w := st.Watch
	rev, prev = w.Revision, w.PreviousRevision
	st.Watch = nil
	delete(st.ScaleDownAt, strconv.FormatInt(prev, 10))
	st.StableRevision = prev
	if st.ActiveRevision != 0 {
		st.ActiveRevision = prev
	}
	st.Abort = true
	st.AbortedRevision = rev
	st.Message = fmt.Sprintf("aborted: revision %d rolled back in the watch window: %s; traffic is back on revision %d", rev, why, prev)
	return rev, prev
}

// UndoInWatch makes r's previous revision stable again at once when the watch window is open
// and to is that revision: its instances still run, so no process starts and no analysis
// runs again. The caller then sets the template back to the previous revision's. It reports
// whether it did.
func UndoInWatch(r *v1alpha1.Rollout, to int64) bool {
	if !WatchOpen(r) || r.Status.Watch.PreviousRevision != to {
		return false
	}
	st := &r.Status
	prev := st.Watch.PreviousRevision
	st.Watch = nil
	delete(st.ScaleDownAt, strconv.FormatInt(prev, 10))
	st.StableRevision = prev
	st.CurrentRevision = prev
	if st.ActiveRevision != 0 {
		st.ActiveRevision = prev
	}
	st.Message = fmt.Sprintf("undo in the watch window: revision %d is stable again", prev)
	return true
}
