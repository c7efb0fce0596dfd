package engine

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/intstr"

	"ramp.dev/ramp/api/v1alpha1"
)

// rollingSpec is a rolling update of 4 instances that may surge by 3 and holds at pause.
func rollingSpec(pause *v1alpha1.RollingUpdatePause) v1alpha1.RolloutSpec {
	return v1alpha1.RolloutSpec{
		Replicas:                ptr(int32(4)),
		ProgressDeadlineSeconds: ptr(int32(60)),
		Strategy: v1alpha1.Strategy{RollingUpdate: &v1alpha1.RollingUpdateStrategy{
			MaxSurge: ptr(intstr.FromInt32(3)), MaxUnavailable: ptr(intstr.FromInt32(0)), Pause: pause,
		}},
	}
}

func (w *world) noEvent(reason string) {
	w.t.Helper()
	for _, e := range w.events {
		if e.Reason == reason {
			w.t.Fatalf("unexpected %s event: %s", reason, e.Message)
		}
	}
}

func TestRollingUpdateHoldsAtThePausePointWhileAnalysisRuns(t *testing.T) {
	w := newWorld(t, rollingSpec(&v1alpha1.RollingUpdatePause{Updated: intstr.FromString("25%"), Analysis: &analysisRef}))
	w.apply(2)
	// The surge would allow 3 new instances at once; the update stops at the pause point.
	w.wantPhase(v1alpha1.PhasePaused, "holds at 1/4 new instances, waiting for analysis pause-2")
	w.wantScale(map[int64]int32{1: 4, 2: 1})
	w.wantStep(0)
	w.wantEvent("RollingUpdatePaused")
	w.advance(time.Hour) // the progress deadline does not run while the update holds
	w.wantPhase(v1alpha1.PhasePaused, "holds at 1/4")

	w.setRun("pause-2", v1alpha1.AnalysisSuccessful, "")
	w.wantEvent("RollingUpdateResumed")
	w.wantPhase(v1alpha1.PhaseHealthy, "revision 2 is stable")
	w.wantScale(map[int64]int32{1: 4, 2: 4}) // revision 1 out of rotation, warm for the watch window
}

func TestRollingUpdatePauseAnalysisFailureUndoesTheUpdate(t *testing.T) {
	w := newWorld(t, rollingSpec(&v1alpha1.RollingUpdatePause{Updated: intstr.FromInt32(2), Analysis: &analysisRef}))
	w.apply(2)
	w.wantScale(map[int64]int32{1: 4, 2: 2})
	w.setRun("pause-2", v1alpha1.AnalysisFailed, "error-rate 0.5 is not < 0.05")
	w.wantPhase(v1alpha1.PhaseDegraded, "analysis pause-2 failed: error-rate 0.5")
	w.wantScale(map[int64]int32{1: 4})
	w.wantWeights(map[int64]int32{1: 100})

	// Retry runs it again from before the pause point.
	if err := Retry(w.r, w.now); err != nil {
		t.Fatal(err)
	}
	w.settle()
	w.wantStep(0)
	w.wantPhase(v1alpha1.PhasePaused, "holds at 2/4")
}

func TestRollingUpdatePauseDuration(t *testing.T) {
	w := newWorld(t, rollingSpec(&v1alpha1.RollingUpdatePause{Updated: intstr.FromInt32(1), Duration: ptr(intstr.FromString("30s"))}))
	w.apply(2)
	w.wantPhase(v1alpha1.PhasePaused, "waiting until")
	if !w.out.Requeue.Equal(w.now.Add(30 * time.Second)) {
		t.Fatalf("requeue %v, want when the pause ends", w.out.Requeue)
	}
	w.advance(29 * time.Second)
	w.wantScale(map[int64]int32{1: 4, 2: 1})
	w.advance(time.Second)
	w.wantPhase(v1alpha1.PhaseHealthy, "revision 2 is stable")
}

func TestRollingUpdatePauseWithoutAnalysisWaitsForPromote(t *testing.T) {
	w := newWorld(t, rollingSpec(&v1alpha1.RollingUpdatePause{Updated: intstr.FromInt32(1)}))
	w.apply(2)
	w.advance(time.Hour)
	w.wantPhase(v1alpha1.PhasePaused, "waiting for `ramp promote`")
	if err := Promote(w.r, false); err != nil {
		t.Fatal(err)
	}
	w.settle()
	w.wantPhase(v1alpha1.PhaseHealthy, "revision 2 is stable")
}

func TestRollingUpdatePromoteBeforeThePausePointSkipsIt(t *testing.T) {
	w := newWorld(t, rollingSpec(&v1alpha1.RollingUpdatePause{Updated: intstr.FromInt32(1), Analysis: &analysisRef}))
	w.rev = 2
	w.decide() // starts the update: one new instance, not yet seen ready
	if err := Promote(w.r, false); err != nil {
		t.Fatal(err)
	}
	w.settle()
	w.wantPhase(v1alpha1.PhaseHealthy, "revision 2 is stable")
	w.noEvent("RollingUpdatePaused")
	for _, r := range w.r.Status.Analysis {
		if strings.HasPrefix(r.Name, "pause-") {
			t.Fatalf("pause analysis ran: %+v", r)
		}
	}
}

func TestPausePoint(t *testing.T) {
	for _, tc := range []struct {
		updated  intstr.IntOrString
		replicas int32
		want     int32
	}{
		{intstr.FromString("25%"), 4, 1},
		{intstr.FromString("34%"), 3, 2},
		{intstr.FromString("1%"), 3, 1},
		{intstr.FromString("100%"), 3, 3},
		{intstr.FromInt32(5), 3, 3},
	} {
		if got := PausePoint(&v1alpha1.RollingUpdatePause{Updated: tc.updated}, tc.replicas); got != tc.want {
			t.Errorf("PausePoint(%s, %d) = %d, want %d", tc.updated.String(), tc.replicas, got, tc.want)
		}
	}
}

// A workload that rolled past the pause point before the first decision saw it (a change that
// also resumed a paused Deployment) holds where it is, and says so rather than the pause point.
func TestRollingUpdatePastThePausePointSaysSo(t *testing.T) {
	w := newWorld(t, rollingSpec(&v1alpha1.RollingUpdatePause{Updated: intstr.FromInt32(1), Analysis: &analysisRef}))
	w.rev = 2
	for i := range 3 {
		w.inst[2] = append(w.inst[2], Instance{ID: fmt.Sprintf("early-%d", i), StartedAt: w.now, Ready: true, ReadySince: w.now})
	}
	w.decide()
	w.wantPhase(v1alpha1.PhasePaused, "holds at 3/4 new instances (past its pause point of 1)")
	w.wantEvent("RollingUpdatePastPausePoint")
}
