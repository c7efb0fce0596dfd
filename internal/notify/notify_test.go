package notify

import (
	"slices"
	"strings"
	"testing"
	"time"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/engine"
)

var t0 = time.Date(2026, 12, 3, 6, 0, 0, 0, time.UTC)

func canary(st v1alpha1.RolloutStatus) *v1alpha1.Rollout {
	w := int32(20)
	r := &v1alpha1.Rollout{Spec: v1alpha1.RolloutSpec{Strategy: v1alpha1.Strategy{Canary: &v1alpha1.CanaryStrategy{
		Steps: []v1alpha1.CanaryStep{{SetWeight: &w}, {Pause: &v1alpha1.RolloutPause{}}, {SetWeight: &w}}}}}, Status: st}
	r.Name, r.Namespace = "chat-api", "team"
	return r
}

func ptr[T any](v T) *T { return &v }

func ev(reason, msg string, rev int64) engine.Event {
	return engine.Event{Type: engine.EventNormal, Reason: reason, Message: msg, Revision: rev}
}

func TestOf(t *testing.T) {
	progressing := v1alpha1.RolloutStatus{Phase: v1alpha1.PhaseProgressing, StableRevision: 1, CanaryRevision: 2, CurrentRevision: 2}
	healthy := v1alpha1.RolloutStatus{Phase: v1alpha1.PhaseHealthy, StableRevision: 1, CurrentRevision: 1}
	tests := []struct {
		name   string
		before v1alpha1.RolloutStatus
		after  v1alpha1.RolloutStatus
		spec   func(*v1alpha1.Rollout)
		events []engine.Event
		want   []string // event:reason
		msg    []string // a part of each notification's message
	}{
		{
			name: "started and a step", before: healthy,
			after:  v1alpha1.RolloutStatus{Phase: v1alpha1.PhaseProgressing, StableRevision: 1, CanaryRevision: 2, CanaryWeight: 20, CurrentStepIndex: ptr(int32(1))},
			events: []engine.Event{ev("RolloutStarted", "rolling out revision 2 over stable revision 1", 2), ev("AnalysisStarted", "analysis judge-2 started", 2), ev("StepCompleted", "step 1/3 completed", 2)},
			want:   []string{"rollout-started:RolloutStarted", "step-completed:StepCompleted"},
			msg:    []string{"rolling out revision 2", "step 1/3 completed; canary weight 20%"},
		},
		{
			name: "pause step", before: progressing,
			after:  v1alpha1.RolloutStatus{Phase: v1alpha1.PhasePaused, StableRevision: 1, CanaryRevision: 2, Message: "step 2/3: paused until `ramp promote`", PauseConditions: []v1alpha1.PauseCondition{{Reason: v1alpha1.PauseReasonStep}}},
			events: []engine.Event{ev("StepCompleted", "step 1/3 completed", 2)},
			want:   []string{"step-completed:StepCompleted", "rollout-paused:CanaryPauseStep"},
			msg:    []string{"step 1/3", "paused until"},
		},
		{
			name: "inconclusive", before: progressing,
			after: v1alpha1.RolloutStatus{Phase: v1alpha1.PhasePaused, StableRevision: 1, CanaryRevision: 2, Message: "paused: analysis a is inconclusive: too few requests",
				PauseConditions: []v1alpha1.PauseCondition{{Reason: v1alpha1.PauseReasonInconclusive}}},
			events: []engine.Event{{Type: engine.EventWarning, Reason: "AnalysisInconclusive", Message: "analysis a: Inconclusive too few requests", Revision: 2}},
			want:   []string{"analysis-inconclusive:AnalysisInconclusive", "rollout-paused:InconclusiveAnalysis"},
			msg:    []string{"too few requests", "is inconclusive"},
		},
		{
			name: "paused by user", before: progressing, spec: func(r *v1alpha1.Rollout) { r.Spec.Paused = true },
			after: v1alpha1.RolloutStatus{Phase: v1alpha1.PhasePaused, StableRevision: 1, CanaryRevision: 2, Message: "paused by user: `ramp resume` goes on"},
			want:  []string{"rollout-paused:UserPause"},
			msg:   []string{"paused by user"},
		},
		{
			name: "still paused says nothing", before: v1alpha1.RolloutStatus{Phase: v1alpha1.PhasePaused, StableRevision: 1, CanaryRevision: 2},
			after: v1alpha1.RolloutStatus{Phase: v1alpha1.PhasePaused, StableRevision: 1, CanaryRevision: 2},
		},
		{
			name: "aborted by analysis", before: progressing,
			after: v1alpha1.RolloutStatus{Phase: v1alpha1.PhaseDegraded, StableRevision: 1, CanaryRevision: 2, Abort: true},
			events: []engine.Event{{Type: engine.EventWarning, Reason: "AnalysisFailed", Message: "analysis judge-2: Failed", Revision: 2},
				{Type: engine.EventWarning, Reason: "RolloutAborted", Message: "revision 2 aborted: analysis judge-2 failed: error-rate: canary worse than stable", Revision: 2}},
			want: []string{"rollout-aborted:RolloutAborted"},
			msg:  []string{"canary worse than stable"},
		},
		{
			name: "abort in the watch window is a roll back", before: v1alpha1.RolloutStatus{Phase: v1alpha1.PhaseHealthy, StableRevision: 1, CurrentRevision: 2, Abort: true, AbortedRevision: 2},
			after:  v1alpha1.RolloutStatus{Phase: v1alpha1.PhaseDegraded, StableRevision: 1, Abort: true, AbortedRevision: 2},
			events: []engine.Event{{Type: engine.EventWarning, Reason: "RolloutAborted", Message: "revision 2 aborted: revision 2 rolled back in the watch window: by user", Revision: 2}},
			want:   []string{"rollout-rolled-back:RolloutAborted"},
		},
		{
			name: "started and aborted in one step", before: healthy,
			after: v1alpha1.RolloutStatus{Phase: v1alpha1.PhaseDegraded, StableRevision: 1, CanaryRevision: 2, Abort: true, AbortedRevision: 2},
			events: []engine.Event{ev("RolloutStarted", "rolling out revision 2 over stable revision 1", 2),
				{Type: engine.EventWarning, Reason: "RolloutAborted", Message: "revision 2 aborted: revision 2 is crash-looping", Revision: 2}},
			want: []string{"rollout-started:RolloutStarted", "rollout-aborted:RolloutAborted"},
		},
		{
			name: "ramp abort of a canary", before: v1alpha1.RolloutStatus{Phase: v1alpha1.PhasePaused, StableRevision: 1, CanaryRevision: 2, CurrentRevision: 2, Abort: true, AbortedRevision: 2},
			after:  v1alpha1.RolloutStatus{Phase: v1alpha1.PhaseDegraded, StableRevision: 1, CanaryRevision: 2, Abort: true, AbortedRevision: 2},
			events: []engine.Event{{Type: engine.EventWarning, Reason: "RolloutAborted", Message: "revision 2 aborted: by user", Revision: 2}},
			want:   []string{"rollout-aborted:RolloutAborted"},
		},
		{
			name: "degraded in the watch window", before: v1alpha1.RolloutStatus{Phase: v1alpha1.PhaseHealthy, StableRevision: 2, CurrentRevision: 2},
			after:  v1alpha1.RolloutStatus{Phase: v1alpha1.PhaseDegraded, StableRevision: 1, Abort: true, AbortedRevision: 2},
			events: []engine.Event{{Type: engine.EventWarning, Reason: "RolledBack", Message: "revision 2 degraded in the watch window", Revision: 2}},
			want:   []string{"rollout-rolled-back:RolledBack"},
		},
		{
			name: "undo to stable", before: progressing, after: healthy,
			events: []engine.Event{ev("RolloutReverted", "template is back to stable revision 1", 1)},
			want:   []string{"rollout-rolled-back:RolloutReverted"},
		},
		{
			name: "promoted", before: progressing,
			after:  v1alpha1.RolloutStatus{Phase: v1alpha1.PhaseHealthy, StableRevision: 2, CurrentRevision: 2, Revisions: []v1alpha1.RevisionStatus{{Revision: 2, Role: v1alpha1.RoleStable, Weight: 100}}},
			events: []engine.Event{ev("StepCompleted", "step 3/3 completed", 2), ev("RolloutCompleted", "revision 2 promoted to stable, replacing revision 1", 2)},
			want:   []string{"step-completed:StepCompleted", "rollout-promoted:RolloutCompleted"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := canary(tt.after)
			if tt.spec != nil {
				tt.spec(r)
			}
			ns := Of(&tt.before, r, tt.events, t0)
			var got []string
			ids := map[string]bool{}
			for i, n := range ns {
				got = append(got, n.Event+":"+n.Reason)
				if n.Rollout != "chat-api" || n.Namespace != "team" || n.Phase != string(tt.after.Phase) || !n.Time.Equal(t0) || n.ID == "" || ids[n.ID] {
					t.Errorf("notification %d: %+v", i, n)
				}
				ids[n.ID] = true
				if i < len(tt.msg) && !strings.Contains(n.Message, tt.msg[i]) {
					t.Errorf("notification %d message %q lacks %q", i, n.Message, tt.msg[i])
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

// TestOfIDs: the same step gives the same ids (a retry is recognisable), another step others.
func TestOfIDs(t *testing.T) {
	r := canary(v1alpha1.RolloutStatus{Phase: v1alpha1.PhaseProgressing, StableRevision: 1, CanaryRevision: 2,
		Revisions: []v1alpha1.RevisionStatus{{Revision: 1, Role: v1alpha1.RoleStable, Weight: 80}, {Revision: 2, Role: v1alpha1.RoleCanary, Weight: 20}}})
	r.Status.CurrentStepIndex = ptr(int32(1))
	before := &v1alpha1.RolloutStatus{}
	evs := []engine.Event{ev("StepCompleted", "step 1/3 completed", 2)}
	a, b, c := Of(before, r, evs, t0), Of(before, r, evs, t0), Of(before, r, evs, t0.Add(time.Second))
	if a[0].ID != b[0].ID || a[0].ID == c[0].ID {
		t.Fatalf("ids %s %s %s: want the first two equal, the third different", a[0].ID, b[0].ID, c[0].ID)
	}
	if a[0].Step != "1/3" || len(a[0].Weights) != 2 || a[0].Weights[1] != (Weight{Revision: 2, Role: "canary", Weight: 20}) {
		t.Fatalf("step %q weights %+v", a[0].Step, a[0].Weights)
	}
}
