package engine

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/spec"
)

// Decide computes a rollout's next status and the desired state of its world. It is pure:
// the same input always gives the same output.
func Decide(in Input) Output {
	d := &decision{
		in:       in,
		spec:     &in.Rollout.Spec,
		st:       *in.Rollout.Status.DeepCopy(),
		now:      in.Now,
		newRev:   in.Revision,
		replicas: spec.DefaultReplicas,
		wanted:   map[string]bool{},
	}
	if in.Rollout.Spec.Replicas != nil {
		d.replicas = *in.Rollout.Spec.Replicas
	}
	d.out.Scale = map[int64]int32{}
	d.run()
	d.finish()
	d.gateWorkload()
	d.out.Status = d.st
	return d.out
}

type decision struct {
	in       Input
	spec     *v1alpha1.RolloutSpec
	st       v1alpha1.RolloutStatus
	now      time.Time
	newRev   int64
	replicas int32
	out      Output
	// wanted names the analysis runs this decision keeps running.
	wanted map[string]bool
	// progressed is set when the revision under way moved forward in this decision.
	progressed bool
	// warm counts, per revision, the instances Scale keeps running out of rotation.
	warm map[int64]int32
	// gated is set when a gate webhook holds the canary step being run, gateWaiting when
	// any gate holds the rollout.
	gated, gateWaiting bool
}

func (d *decision) run() {
	d.st.CurrentRevision = d.newRev
	d.st.Phase = "" // every path below sets it, or finish does
	d.st.ObservedGeneration = d.in.Rollout.Generation
	switch {
	case d.st.StableRevision == 0:
		d.initial()
	case d.newRev == d.st.StableRevision:
		d.steady()
	default:
		d.progress()
	}
}

// initial deploys the first revision at full scale: there is nothing to compare it with.
func (d *decision) initial() {
	rev := d.newRev
	d.scale(rev, d.replicas)
	d.out.Routes.Weights = map[int64]int32{rev: 100}
	if d.st.Abort && d.st.AbortedRevision == rev {
		d.aborted()
		return
	}
	if d.checkHealth(rev, d.replicas) {
		return
	}
	_, avail := d.counts(rev)
	if avail >= d.replicas {
		d.st.StableRevision = rev
		if d.isBlueGreen() {
			d.st.ActiveRevision = rev
		}
		d.setDoneStep()
		d.st.LastProgressTime = nil
		d.event(EventNormal, "RolloutCompleted", fmt.Sprintf("revision %d is stable: %d/%d instances available", rev, avail, d.replicas))
		d.healthy()
		return
	}
	d.st.Phase = v1alpha1.PhaseProgressing
	d.st.Message = fmt.Sprintf("deploying revision %d: %d/%d instances available", rev, avail, d.replicas)
}

// steady runs the stable revision alone and clears what a finished or reverted rollout left.
func (d *decision) steady() {
	stable := d.st.StableRevision
	if d.st.CanaryRevision != 0 || d.st.PreviewRevision != 0 || d.st.ActiveRevision != 0 && d.st.ActiveRevision != stable {
		d.event(EventNormal, "RolloutReverted", fmt.Sprintf("template is back to stable revision %d; traffic goes to it", stable))
	}
	runs := d.st.Analysis
	d.resetProgress()
	// The gates of the stable revision stay to be seen, and calls still owed are made.
	d.st.Gates = slices.DeleteFunc(d.st.Gates, func(g v1alpha1.GateStatus) bool {
		return g.Revision != stable && (g.Type.Blocking() || g.Phase != v1alpha1.GatePending)
	})
	for _, r := range runs {
		if r.Revision == stable && (r.Phase.Completed() || r.Kind == v1alpha1.AnalysisKindWatch) {
			d.st.Analysis = append(d.st.Analysis, r)
		}
	}
	d.st.Abort = false
	d.st.AbortedRevision = 0
	d.st.CanaryRevision = 0
	d.st.PreviewRevision = 0
	if d.isBlueGreen() {
		d.st.ActiveRevision = stable
	}
	d.setDoneStep()
	d.scale(stable, d.replicas)
	d.out.Routes.Weights = map[int64]int32{stable: 100}
	d.healthy()
	if d.watch() {
		return
	}
	d.restart(stable)
}

func (d *decision) healthy() {
	stable := d.st.StableRevision
	_, avail := d.counts(stable)
	if avail >= d.replicas {
		d.st.Phase = v1alpha1.PhaseHealthy
		d.st.Message = fmt.Sprintf("revision %d is stable: %d/%d instances available", stable, avail, d.replicas)
		return
	}
	d.st.Phase = v1alpha1.PhaseProgressing
	d.st.Message = fmt.Sprintf("waiting for stable revision %d: %d/%d instances available", stable, avail, d.replicas)
}

// resetProgress forgets the state of a revision under way.
func (d *decision) resetProgress() {
	d.st.CanaryWeight = 0
	d.st.CanaryScale = nil
	d.st.HeaderRoutes = nil
	d.st.Promote = false
	d.st.PromoteFull = false
	d.st.PauseConditions = nil
	d.st.StepStartTime = nil
	d.st.LastProgressTime = nil
	d.st.ReadyTime = nil
	d.st.Analysis = nil
}

func (d *decision) setDoneStep() {
	if c := d.spec.Strategy.Canary; c != nil {
		n := int32(len(c.Steps))
		d.st.CurrentStepIndex = &n
	} else {
		d.st.CurrentStepIndex = nil
	}
}

func (d *decision) isBlueGreen() bool { return d.spec.Strategy.BlueGreen != nil }

// inProgress is the revision currently being rolled out, or 0.
func (d *decision) inProgress() int64 {
	if d.isBlueGreen() {
		if d.st.PreviewRevision != 0 {
			return d.st.PreviewRevision
		}
		if d.st.ActiveRevision != d.st.StableRevision {
			return d.st.ActiveRevision
		}
		return 0
	}
	return d.st.CanaryRevision
}

// progress rolls out a revision other than stable.
func (d *decision) progress() {
	rev := d.newRev
	wasAborted := d.st.Abort
	if d.st.Abort && d.st.AbortedRevision != rev {
		d.st.Abort = false
		d.st.AbortedRevision = 0
	}
	if d.inProgress() != rev && !d.st.Abort {
		d.start(rev, wasAborted)
	}
	if !d.st.Abort {
		if why := d.workloadDeadline(rev); why != "" {
			d.abort(why)
			return
		}
	}
	if d.st.Abort {
		if d.in.Rollout.Status.Phase != v1alpha1.PhaseDegraded {
			// Aborted by a command (`ramp abort`, or a switch back in the watch window) since
			// the last decision: the abort takes effect now.
			d.event(EventWarning, "RolloutAborted", fmt.Sprintf("revision %d aborted: %s", rev, strings.TrimPrefix(d.st.Message, "aborted: ")))
		}
		d.aborted()
		return
	}
	switch {
	case d.spec.Strategy.Canary != nil:
		d.canary()
	case d.spec.Strategy.BlueGreen != nil:
		d.blueGreen()
	default:
		d.rolling()
	}
}

// start begins rolling out rev, replacing any revision that was under way (not one that was
// aborted: it no longer rolled out).
func (d *decision) start(rev int64, replacesAborted bool) {
	if old := d.inProgress(); old != 0 && !replacesAborted {
		d.event(EventNormal, "RolloutRestarted", fmt.Sprintf("revision %d replaces revision %d, which was still rolling out", rev, old))
	}
	d.resetProgress()
	// A new revision asks its gates afresh.
	d.st.Gates = KeepUnansweredCalls(d.st.Gates)
	d.st.Watch = nil // the new revision is compared with the stable one, not the one before
	now := metav1.NewTime(d.now)
	d.st.StepStartTime = &now
	d.st.LastProgressTime = &now
	if d.isBlueGreen() {
		d.st.ActiveRevision = d.st.StableRevision
		d.st.PreviewRevision = rev
	} else {
		d.st.CanaryRevision = rev
	}
	if c, ru := d.spec.Strategy.Canary, d.spec.Strategy.RollingUpdate; c != nil || ru != nil && ru.Pause != nil {
		zero := int32(0)
		d.st.CurrentStepIndex = &zero
	}
	d.event(EventNormal, "RolloutStarted", fmt.Sprintf("rolling out revision %d over stable revision %d", rev, d.st.StableRevision))
}

// abort stops the revision under way and sends all traffic to stable.
func (d *decision) abort(reason string) {
	rev := d.newRev
	d.st.Abort = true
	d.st.AbortedRevision = rev
	d.st.Message = "aborted: " + reason
	d.event(EventWarning, "RolloutAborted", fmt.Sprintf("revision %d aborted: %s", rev, reason))
	d.aborted()
}

// aborted is the state after an abort: stable serves everything; the new spec is kept so
// that retry can run it again.
func (d *decision) aborted() {
	stable := d.st.StableRevision
	d.st.Phase = v1alpha1.PhaseDegraded
	d.inform(v1alpha1.WebhookRollback, d.st.AbortedRevision)
	if stable == 0 {
		// Nothing to go back to: the first revision keeps what it has.
		d.out.Scale = map[int64]int32{d.newRev: d.replicas}
		d.out.Routes.Weights = map[int64]int32{d.newRev: 100}
		return
	}
	if d.isBlueGreen() {
		d.st.ActiveRevision = stable
		d.st.PreviewRevision = 0
	}
	d.st.CanaryWeight = 0
	d.st.HeaderRoutes = nil
	d.st.PauseConditions = nil
	d.st.Promote = false
	d.st.PromoteFull = false
	d.warm = nil
	d.out.Scale = map[int64]int32{stable: d.replicas}
	d.out.Routes = Routes{Weights: map[int64]int32{stable: 100}}
	if d.st.Message == "" {
		d.st.Message = fmt.Sprintf("aborted: revision %d", d.st.AbortedRevision)
	}
	d.restart(stable)
	// Keep finished analysis runs to show why; stop the rest.
}

// checkHealth aborts when rev's instances crash-loop or make no progress towards desired
// ready instances within the progress deadline. It reports whether it aborted.
func (d *decision) checkHealth(rev int64, desired int32) bool {
	for _, inst := range d.in.Instances[rev] {
		if inst.CrashLooping && !inst.Terminating {
			why := inst.LastExit
			if why == "" {
				why = orNone(inst.Message)
			}
			d.abort(fmt.Sprintf("revision %d is crash-looping: instance %s restarted %d times: %s", rev, inst.ID, inst.Restarts, why))
			return true
		}
	}
	if why := d.exitsWorse(rev, d.st.StableRevision); why != "" {
		d.abort(why)
		return true
	}
	if why := d.memoryWorse(rev, d.st.StableRevision); why != "" {
		d.abort(why)
		return true
	}
	ready, _ := d.counts(rev)
	now := metav1.NewTime(d.now)
	if ready >= desired || d.isPaused() {
		d.st.LastProgressTime = &now
		return false
	}
	if d.prevReady(rev) < ready || d.st.LastProgressTime == nil {
		d.st.LastProgressTime = &now
	}
	deadline := time.Duration(d.deadlineSeconds()) * time.Second
	at := d.st.LastProgressTime.Add(deadline)
	if d.now.Before(at) {
		d.requeue(at)
		return false
	}
	why := ""
	for _, inst := range d.in.Instances[rev] {
		if !inst.Ready && !inst.Terminating {
			why = fmt.Sprintf("; instance %s: %s", inst.ID, orNone(inst.Message))
			break
		}
	}
	d.abort(fmt.Sprintf("revision %d made no progress for %s: %d/%d instances ready%s", rev, deadline, ready, desired, why))
	return true
}

// ExitRateRatio is how many times stable's rate of unexpected exits per instance-hour the new
// revision's may reach before it is aborted. Any exit of the new revision aborts it while
// stable's instances have had none.
const ExitRateRatio = 2

// exitsWorse says why the new revision rev is to be aborted for the unexpected exits of its
// instances (any period, ready or not), or "". Exits are weighed per instance-time (from each
// instance's first start until now): rev fails at its first exit while the instances of
// stable (the revision it is compared with: stable, or in the watch window the previous
// revision) have had none, and otherwise when its rate exceeds ExitRateRatio times stable's.
// Stable's own exits never fail rev, and a stable that crashes as often lets rev crash as
// often.
func (d *decision) exitsWorse(rev, stable int64) string {
	if stable == 0 || stable == rev {
		return ""
	}
	exits, hours, worst := d.exitRecord(rev)
	if exits == 0 {
		return ""
	}
	sExits, sHours, _ := d.exitRecord(stable)
	if sExits > 0 && (hours <= 0 || sHours <= 0 || float64(exits)/hours <= ExitRateRatio*float64(sExits)/sHours) {
		return ""
	}
	why := worst.LastExit
	if why == "" {
		why = "exited"
	}
	return fmt.Sprintf("revision %d exited unexpectedly: instance %s %s (%d exits in %.3f instance-hours; revision %d: %d in %.3f)",
		rev, worst.ID, why, exits, hours, stable, sExits, sHours)
}

// The memory rule: a revision uses too much memory when every one of its running instances
// holds more than MemoryRatio times the resident memory of the largest instance of the
// revision it is compared with, and at least MemoryFloor bytes more. Both must hold, so a
// small service's noise never fails it and a large one's leak is measured in proportion.
const (
	MemoryRatio = 1.5
	MemoryFloor = 64 << 20
)

// memoryWorse says why rev is to be aborted for its memory against base's, or "": see
// MemoryRatio. Instances whose memory is not known (zero) and terminating ones are left out;
// it says nothing unless both revisions have at least one measured instance.
func (d *decision) memoryWorse(rev, base int64) string {
	if base == 0 || base == rev {
		return ""
	}
	var low, high int64
	var lowID string
	for _, in := range d.in.Instances[rev] {
		if in.MemoryBytes > 0 && !in.Terminating && (low == 0 || in.MemoryBytes < low) {
			low, lowID = in.MemoryBytes, in.ID
		}
	}
	for _, in := range d.in.Instances[base] {
		if in.MemoryBytes > 0 && !in.Terminating && in.MemoryBytes > high {
			high = in.MemoryBytes
		}
	}
	if low == 0 || high == 0 || float64(low) <= MemoryRatio*float64(high) || low-high < MemoryFloor {
		return ""
	}
	return fmt.Sprintf("revision %d uses too much memory: its smallest instance %s holds %s resident, above %gx revision %d's largest (%s) and %s more (memory floor %s)",
		rev, lowID, mib(low), MemoryRatio, base, mib(high), mib(low-high), mib(MemoryFloor))
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// exitRecord sums the unexpected exits and the instance-hours of rev's instances, and returns
// the instance with the most exits.
func (d *decision) exitRecord(rev int64) (exits int64, hours float64, worst Instance) {
	for _, in := range d.in.Instances[rev] {
		exits += int64(in.Exits)
		if !in.CreatedAt.IsZero() && d.now.After(in.CreatedAt) {
			hours += d.now.Sub(in.CreatedAt).Hours()
		}
		if in.Exits > worst.Exits {
			worst = in
		}
	}
	return exits, hours, worst
}

func orNone(s string) string {
	if s == "" {
		return "not ready"
	}
	return s
}

func (d *decision) deadlineSeconds() int32 {
	if d.spec.ProgressDeadlineSeconds != nil {
		return *d.spec.ProgressDeadlineSeconds
	}
	return spec.DefaultProgressDeadlineSeconds
}

func (d *decision) prevReady(rev int64) int32 {
	for _, r := range d.in.Rollout.Status.Revisions {
		if r.Revision == rev {
			return r.Ready
		}
	}
	return 0
}

func (d *decision) prevDesired(rev int64) (int32, bool) {
	for _, r := range d.in.Rollout.Status.Revisions {
		if r.Revision == rev {
			return r.Desired, true
		}
	}
	return 0, false
}

func (d *decision) isPaused() bool {
	return d.spec.Paused || len(d.st.PauseConditions) > 0
}

// counts returns rev's ready and available instances.
func (d *decision) counts(rev int64) (ready, available int32) {
	minReady := time.Duration(d.spec.MinReadySeconds) * time.Second
	for _, inst := range d.in.Instances[rev] {
		if !inst.Ready || inst.Terminating {
			continue
		}
		ready++
		at := inst.ReadySince.Add(minReady)
		if !d.now.Before(at) {
			available++
		} else {
			d.requeue(at)
		}
	}
	return ready, available
}

func (d *decision) scale(rev int64, n int32) {
	if rev != 0 {
		d.out.Scale[rev] = n
	}
}

func (d *decision) event(typ, reason, msg string) {
	d.out.Events = append(d.out.Events, Event{Type: typ, Reason: reason, Message: msg, Revision: d.newRev})
}

func (d *decision) requeue(t time.Time) {
	if d.out.Requeue.IsZero() || t.Before(d.out.Requeue) {
		d.out.Requeue = t
	}
}

func (d *decision) pause(reason v1alpha1.PauseReason) {
	for _, c := range d.st.PauseConditions {
		if c.Reason == reason {
			return
		}
	}
	d.st.PauseConditions = append(d.st.PauseConditions, v1alpha1.PauseCondition{Reason: reason, StartTime: metav1.NewTime(d.now)})
}

func (d *decision) unpause(reason v1alpha1.PauseReason) {
	d.st.PauseConditions = slices.DeleteFunc(d.st.PauseConditions, func(c v1alpha1.PauseCondition) bool { return c.Reason == reason })
}

// ensureRun returns the analysis run of the given kind for rev, creating it when missing.
func (d *decision) ensureRun(kind v1alpha1.AnalysisKind, step *int32, spec v1alpha1.RolloutAnalysis, baseline int64) *v1alpha1.AnalysisRunStatus {
	name := fmt.Sprintf("%s-%d", kind, d.newRev)
	if step != nil {
		name += "-step" + strconv.Itoa(int(*step))
	}
	d.wanted[name] = true
	for i := range d.st.Analysis {
		if d.st.Analysis[i].Name == name {
			return &d.st.Analysis[i]
		}
	}
	run := v1alpha1.AnalysisRunStatus{
		Name: name, Kind: kind, Revision: d.newRev, BaselineRevision: baseline,
		Spec: spec, StartedAt: metav1.NewTime(d.now), Phase: v1alpha1.AnalysisPending,
	}
	if step != nil {
		s := *step
		run.Step = &s
	}
	d.st.Analysis = append(d.st.Analysis, run)
	d.event(EventNormal, "AnalysisStarted", fmt.Sprintf("analysis %s started", name))
	return &d.st.Analysis[len(d.st.Analysis)-1]
}

// judge turns an analysis run's phase into a verdict: done when it succeeded, and it aborts
// or pauses the rollout on failure or an inconclusive result. It reports whether the run
// passed and whether the rollout was aborted.
func (d *decision) judge(run *v1alpha1.AnalysisRunStatus) (passed, aborted bool) {
	switch run.Phase {
	case v1alpha1.AnalysisSuccessful:
		return true, false
	case v1alpha1.AnalysisFailed, v1alpha1.AnalysisError:
		name, msg := run.Name, run.Message
		d.abort(fmt.Sprintf("analysis %s %s: %s", name, lower(run.Phase), orNone(msg)))
		return false, true
	case v1alpha1.AnalysisInconclusive:
		d.pause(v1alpha1.PauseReasonInconclusive)
		d.st.Message = fmt.Sprintf("paused: analysis %s is inconclusive: %s; `ramp resume` runs it again, `ramp promote` goes on without it", run.Name, run.Message)
	}
	return false, false
}

func lower(p v1alpha1.AnalysisPhase) string {
	switch p {
	case v1alpha1.AnalysisFailed:
		return "failed"
	case v1alpha1.AnalysisError:
		return "errored"
	}
	return string(p)
}

// finish fills in what every decision shares: revision statuses, runs to stop, phase.
func (d *decision) finish() {
	// Old revisions kept for a fast switch back (blue-green scaleDownDelaySeconds).
	for key, at := range d.st.ScaleDownAt {
		rev, err := strconv.ParseInt(key, 10, 64)
		if err != nil || !d.now.Before(at.Time) {
			delete(d.st.ScaleDownAt, key)
			continue
		}
		if _, set := d.out.Scale[rev]; !set {
			d.scale(rev, d.replicas)
			d.requeue(at.Time)
		}
	}
	if len(d.st.ScaleDownAt) == 0 {
		d.st.ScaleDownAt = nil
	}
	// Stop analysis runs no longer wanted; keep finished ones of the revision under way.
	d.st.Analysis = slices.DeleteFunc(d.st.Analysis, func(r v1alpha1.AnalysisRunStatus) bool {
		if d.wanted[r.Name] {
			return false
		}
		return !r.Phase.Completed() || r.Revision != d.newRev
	})
	// Header routes point at the canary.
	for _, hr := range d.st.HeaderRoutes {
		if d.st.CanaryRevision != 0 && len(hr.Match)+len(hr.CookieMatch) > 0 {
			d.out.Routes.HeaderRoutes = append(d.out.Routes.HeaderRoutes, HeaderRoute{Name: hr.Name, Match: hr.Match, CookieMatch: hr.CookieMatch, Revision: d.st.CanaryRevision})
		}
	}
	d.mirror()
	d.addresses()
	d.observeWeight()
	d.st.Revisions = d.revisionStatuses()
	d.st.Step = d.stepText()
	d.endGatePause()
	if d.st.Phase != v1alpha1.PhaseDegraded && d.st.Phase != v1alpha1.PhaseHealthy {
		if d.isPaused() {
			d.st.Phase = v1alpha1.PhasePaused
			if d.spec.Paused {
				d.st.Message = "paused by user: `ramp resume` goes on"
			}
		} else {
			d.st.Phase = v1alpha1.PhaseProgressing
		}
	}
	d.finishGates()
}

// mirror copies requests to the canary while it runs, as spec.strategy.canary.mirror says.
func (d *decision) mirror() { d.out.Routes.Mirror = MirrorOf(d.spec, &d.st) }

// MirrorOf is the mirror of the routes a decision that leaves status st gives a rollout of
// spec s: the canary gets its copies while it runs, not after a promotion or an abort. Nil
// means none.
func MirrorOf(s *v1alpha1.RolloutSpec, st *v1alpha1.RolloutStatus) *Mirror {
	c := s.Strategy.Canary
	if c == nil || c.Mirror == nil || st.Abort || st.CanaryRevision == 0 || st.CanaryRevision == st.StableRevision {
		return nil
	}
	return &Mirror{Revision: st.CanaryRevision, Percent: c.Mirror.Percentage}
}

// addresses sets the revisions the strategy's fixed addresses serve: stable and canary, or
// active and preview.
func (d *decision) addresses() {
	st := &d.st
	switch {
	case d.spec.Strategy.Canary != nil:
		d.out.Routes.Stable, d.out.Routes.Canary = st.StableRevision, st.StableRevision
		if st.CanaryRevision != 0 && !st.Abort {
			d.out.Routes.Canary = st.CanaryRevision
		}
	case d.isBlueGreen():
		d.out.Routes.Stable = st.ActiveRevision
	}
}

func (d *decision) revisionStatuses() []v1alpha1.RevisionStatus {
	revs := map[int64]bool{}
	for r := range d.out.Scale {
		revs[r] = true
	}
	for r := range d.out.Routes.Weights {
		revs[r] = true
	}
	for r, insts := range d.in.Instances {
		if len(insts) > 0 {
			revs[r] = true
		}
	}
	keys := make([]int64, 0, len(revs))
	for r := range revs {
		keys = append(keys, r)
	}
	slices.Sort(keys)
	out := make([]v1alpha1.RevisionStatus, 0, len(keys))
	real := d.realWeights()
	for _, r := range keys {
		ready, avail := d.counts(r)
		weight := d.out.Routes.Weights[r]
		if real != nil {
			weight = real[r]
		}
		out = append(out, v1alpha1.RevisionStatus{
			Revision: r, Role: d.role(r), Weight: weight,
			Desired: d.out.Scale[r] - d.warm[r], Warm: d.warm[r], Ready: ready, Available: avail,
		})
	}
	return out
}

func (d *decision) role(r int64) v1alpha1.Role {
	st := d.st
	if d.isBlueGreen() {
		switch r {
		case st.ActiveRevision:
			return v1alpha1.RoleActive
		case st.PreviewRevision:
			return v1alpha1.RolePreview
		}
		return v1alpha1.RoleOld
	}
	switch r {
	case st.StableRevision:
		return v1alpha1.RoleStable
	case st.CanaryRevision:
		return v1alpha1.RoleCanary
	}
	return v1alpha1.RoleOld
}

// scaledValue resolves a count-or-percent of total; def applies when v is nil.
func scaledValue(v *intstr.IntOrString, def string, total int32, roundUp bool) int32 {
	val := intstr.FromString(def)
	if v != nil {
		val = *v
	}
	n, _ := spec.ScaledValue(&val, total, roundUp) // validation rejects bad values before the engine sees them
	return n
}

// duration resolves an int-or-string duration (int = seconds).
func duration(v *intstr.IntOrString) time.Duration {
	d, _ := spec.ParseDuration(v) // validation rejects bad values before the engine sees them
	return d
}
