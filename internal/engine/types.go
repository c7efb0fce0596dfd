// Package engine is ramp's rollout state machine. It is pure and deterministic: Decide takes a
// rollout's spec and status, what was observed of its instances and analysis runs, and the
// time, and returns the new status and the desired state of the world (instances per revision,
// routes, analysis runs) that an adapter (local mode or Kubernetes mode) carries out. It does
// no I/O and never reads the clock.
package engine

import (
	"time"

	"ramp.dev/ramp/api/v1alpha1"
)

// Instance is what an adapter observed of one instance of a revision.
type Instance struct {
	ID string
	// Ready is true while the instance passes its readiness probe.
	Ready bool
	// ReadySince is when the instance last became ready; zero when not ready.
	ReadySince time.Time
	// StartedAt is when the instance was (last) started.
	StartedAt time.Time
	// Terminating is true while the instance drains and stops; it never counts as ready.
	Terminating bool
	// CrashLooping is true when the instance keeps exiting.
	CrashLooping bool
	// Restarts counts restarts after crashes.
	Restarts int32
	// Message is the last probe error or exit status; empty when healthy.
	Message string
	// LastExit is how the instance's process last ended; empty when it never did.
	LastExit string
	// Exits counts the times the instance's process exited on its own (a crash, not a stop
	// by the adapter), and CreatedAt is when the instance was first started, so that exits
	// can be weighed per instance-time. Zero Exits (an adapter that does not count them)
	// leaves the exit rule out.
	Exits     int32
	CreatedAt time.Time
	// MemoryBytes is the instance's resident memory as last sampled; zero when not known
	// (the memory rule then leaves the instance out).
	MemoryBytes int64
}

// Input is one decision's input.
type Input struct {
	// Rollout holds the spec (with defaults applied) and the status of the last decision.
	Rollout *v1alpha1.Rollout
	// Revision is the revision number of Rollout.Spec.Template.
	Revision int64
	// Instances are the observed instances per revision.
	Instances map[int64][]Instance
	// Now is the time of the decision.
	Now time.Time
	// Traffic is what the adapter observed of carrying out earlier decisions on the traffic
	// layer. Nil means routes always take effect at once (local mode, whose proxy is set
	// in-process with each decision).
	Traffic *Traffic
	// Capabilities is what the adapter's workload and traffic layer can do; the zero value is
	// local mode's (a proxy that splits by weight, instances the engine sizes one by one).
	Capabilities Capabilities
	// Workload is what the adapter observed of a workload that rolls itself
	// (Capabilities.RollsItself); nil when there is none or it was not observed.
	Workload *Workload
	// Restart is how many instances a restart (spec.restartAt) may run above and below
	// replicas. Nil means the rollout's own rollingUpdate maxSurge and maxUnavailable, else a
	// surge of 25% of replicas (at least one) and none unavailable.
	Restart *RestartBudget
	// WatchJudge says the adapter feeds the watch window's judge run (kind watch), which
	// compares the new stable with the previous revision's record after a promotion (local
	// mode). Without it the window judges exits, crash loops and memory only.
	WatchJudge bool
}

// Capabilities is what an adapter can and cannot do, which shapes the decision.
type Capabilities struct {
	// WeightsByReplicas says the traffic layer splits requests by ready instances (Kubernetes
	// mode's plain Service router): a canary's weight is then approximated by its instance
	// count beside stable's (see ReplicasForWeight), and the status shows the real share.
	WeightsByReplicas bool
	// RollsItself says the workload runs a rolling update (spec.strategy.rollingUpdate) by
	// itself, as a Kubernetes Deployment does: the adapter does not carry out Scale for it but
	// Output.Workload, which says which revision's template the workload holds and whether it
	// may roll now. What the workload observed goes in Input.Workload.
	RollsItself bool
}

// Workload is what an adapter observed of a workload that rolls itself.
type Workload struct {
	// Name names the workload in messages, as "deployment chat-api".
	Name string
	// Revision is the revision whose template the workload holds now; zero when none is known.
	Revision int64
	// Updated is how many instances the workload runs, or is about to run, of that template.
	Updated int32
	// Complete is true when the workload runs its template fully and nothing else.
	Complete bool
	// Stale is true while the workload's controller has not yet seen the workload's last
	// change; Complete and DeadlineExceeded are then of an older spec.
	Stale bool
	// Held is true while the workload is held (a Deployment's spec.paused).
	Held bool
	// DeadlineExceeded is the workload's own verdict that its rollout of Revision made no
	// progress in time (a Deployment's ProgressDeadlineExceeded condition, not set by ramp);
	// empty when there is none.
	DeadlineExceeded string
}

// WorkloadGate is what a workload that rolls itself should do.
type WorkloadGate struct {
	// Revision is the revision whose template the workload should hold: the one asked for,
	// or stable's after an abort (an undo).
	Revision int64
	// Roll says the workload may roll towards that template now; false holds it.
	Roll bool
}

// Traffic is what an adapter observed of the traffic layer and of carrying out the actions of
// earlier decisions (routes, Service selectors, instance counts).
type Traffic struct {
	// Error says why carrying out the last decision failed, naming the router or Service,
	// the object and the error; empty when it took effect. While it is set, no step
	// completes, nothing is promoted or switched, and the rollout aborts once it has lasted
	// the progress deadline.
	Error string
	// FailingSince is when carrying out began to fail; zero means not known (the deadline then
	// counts from the current step's start).
	FailingSince time.Time
	// CanaryWeight is the canary weight (percent) the traffic layer was observed to hold
	// before this decision; nil when not known. A setWeight step completes only once the
	// layer holds the step's weight.
	CanaryWeight *int32
}

// Output is one decision's result.
type Output struct {
	// Status is the rollout's new status.
	Status v1alpha1.RolloutStatus
	// Scale is the number of instances each revision should run. A revision not listed
	// should run none. A workload that rolls itself sizes its revisions by itself and follows
	// Workload instead; Scale then only tells the status's desired counts.
	Scale map[int64]int32
	// Workload is set for a rolling update of a workload that rolls itself
	// (Capabilities.RollsItself) once a stable revision exists; nil otherwise.
	Workload *WorkloadGate
	// Restart are the IDs of the instances a restart replaces now: the adapter stops (drains)
	// them, and Scale starts their replacements.
	Restart []string
	// Routes is where traffic should go.
	Routes Routes
	// Events happened in this decision, oldest first.
	Events []Event
	// Gates are the gate webhooks (spec.webhooks) to call now; the driver calls them off the
	// decision loop and writes their answers into status.gates. Nil means none.
	Gates []GateCall
	// Requeue is when the engine next wants to decide even if nothing is observed to
	// change (a pause ending, a deadline passing); zero means no such time.
	Requeue time.Time
}

// Routes is the traffic layer's desired state.
type Routes struct {
	// Weights is the percent of traffic per revision; the values add up to 100.
	Weights map[int64]int32
	// HeaderRoutes go ahead of the weights, in order.
	HeaderRoutes []HeaderRoute
	// Preview is the revision served on the preview address; zero means none.
	Preview int64
	// Stable is the revision the stable address serves (blue-green: the active address),
	// and Canary the one the canary address serves (canary strategy: the canary while it
	// runs, else stable). Zero means the address serves nothing new: it keeps what it had.
	Stable, Canary int64
	// Mirror copies a share of the requests to a revision (spec.strategy.canary.mirror: the
	// canary while it runs, not after a promotion or an abort). Nil means no mirroring.
	Mirror *Mirror
}

// Mirror copies Percent percent of the requests to Revision; the copies' answers are thrown
// away.
type Mirror struct {
	Revision int64
	Percent  int32
}

// HeaderRoute sends requests that match all its conditions to Revision.
type HeaderRoute struct {
	Name        string
	Match       []v1alpha1.HeaderMatch
	CookieMatch []v1alpha1.CookieMatch
	Revision    int64
}

// Event types.
const (
	EventNormal  = "Normal"
	EventWarning = "Warning"
)

// Event is something worth recording in the rollout's history.
type Event struct {
	Type     string
	Reason   string
	Message  string
	Revision int64
}
