package engine

import (
	"strings"
	"testing"

	"ramp.dev/ramp/api/v1alpha1"
)

// judgeSpec is a canary with the judge at its defaults (on).
func judgeSpec(steps ...v1alpha1.CanaryStep) v1alpha1.RolloutSpec {
	s := canarySpec(steps...)
	s.Strategy.Canary.Judge = nil
	return s
}

func (w *world) run(name string) *v1alpha1.AnalysisRunStatus {
	w.t.Helper()
	for i := range w.r.Status.Analysis {
		if w.r.Status.Analysis[i].Name == name {
			return &w.r.Status.Analysis[i]
		}
	}
	w.t.Fatalf("no analysis run %s in %+v", name, w.r.Status.Analysis)
	return nil
}

func TestJudgeRunsForTheWholeCanaryAndItsFailureAborts(t *testing.T) {
	w := newWorld(t, judgeSpec(
		v1alpha1.CanaryStep{SetWeight: ptr(int32(5))},
		v1alpha1.CanaryStep{Pause: &v1alpha1.RolloutPause{}},
	))
	w.apply(2)
	j := w.run("judge-2")
	if j.Kind != v1alpha1.AnalysisKindJudge || j.Revision != 2 || j.BaselineRevision != 1 || j.Phase != v1alpha1.AnalysisPending {
		t.Fatalf("judge run %+v", j)
	}
	msg := "error-rate: canary worse than stable: canary 12 errors in 240 (5%), stable 3 errors in 4560 (0.0658%); log Bayes factor 9.1 ≥ 4.6 = log(1/α)"
	w.setRun("judge-2", v1alpha1.AnalysisFailed, msg)
	w.wantPhase(v1alpha1.PhaseDegraded, "analysis judge-2 failed: "+msg)
	w.wantWeights(map[int64]int32{1: 100})
	w.wantEvent("RolloutAborted")
	// The failed run stays to say why.
	if w.run("judge-2").Phase != v1alpha1.AnalysisFailed {
		t.Fatal("failed judge run was dropped")
	}
}

func TestJudgeEndsAnAnalysisStepEarly(t *testing.T) {
	for _, allow := range []bool{true, false} {
		t.Run(map[bool]string{true: "allowed", false: "endAnalysisEarly false"}[allow], func(t *testing.T) {
			s := judgeSpec(
				v1alpha1.CanaryStep{SetWeight: ptr(int32(25))},
				v1alpha1.CanaryStep{Analysis: &analysisRef},
				v1alpha1.CanaryStep{SetWeight: ptr(int32(50))},
				v1alpha1.CanaryStep{Pause: &v1alpha1.RolloutPause{}},
			)
			if !allow {
				s.Strategy.Canary.Judge = &v1alpha1.CanaryJudge{EndAnalysisEarly: ptr(false)}
			}
			w := newWorld(t, s)
			w.apply(2)
			w.wantStep(1)
			// The judge speaks for another run: nothing happens.
			j := w.run("judge-2")
			j.Phase, j.NoWorseFor, j.Message = v1alpha1.AnalysisRunning, "step-2-step7", "latency: canary no worse than stable"
			w.settle()
			w.wantStep(1)
			// It speaks for the running step: the step ends with success.
			j = w.run("judge-2")
			j.NoWorseFor = "step-2-step1"
			w.settle()
			if !allow {
				w.wantStep(1)
				if w.run("step-2-step1").Phase.Completed() {
					t.Fatal("step analysis ended although endAnalysisEarly is false")
				}
				return
			}
			w.wantStep(3)
			w.wantPhase(v1alpha1.PhasePaused, "canary weight 50%")
			step := w.run("step-2-step1")
			if step.Phase != v1alpha1.AnalysisSuccessful || !strings.Contains(step.Message, "ended early by the judge: latency: canary no worse") {
				t.Fatalf("step run %+v", step)
			}
			w.wantEvent("AnalysisEndedEarly")
			// The judge keeps watching after the step.
			if w.run("judge-2").Phase != v1alpha1.AnalysisRunning {
				t.Fatal("judge stopped")
			}
		})
	}
}

func TestJudgeOffAndPromoteFullStartNoJudge(t *testing.T) {
	w := newWorld(t, canarySpec(v1alpha1.CanaryStep{SetWeight: ptr(int32(5))}, v1alpha1.CanaryStep{Pause: &v1alpha1.RolloutPause{}}))
	w.apply(2)
	if len(w.r.Status.Analysis) != 0 {
		t.Fatalf("judge off, runs %+v", w.r.Status.Analysis)
	}
	w = newWorld(t, judgeSpec(v1alpha1.CanaryStep{SetWeight: ptr(int32(5))}, v1alpha1.CanaryStep{Pause: &v1alpha1.RolloutPause{}}))
	w.apply(2)
	if err := Promote(w.r, true); err != nil {
		t.Fatal(err)
	}
	w.settle()
	w.wantPhase(v1alpha1.PhaseHealthy, "revision 2 is stable")
	for _, r := range w.r.Status.Analysis {
		if r.Kind == v1alpha1.AnalysisKindJudge {
			t.Fatalf("judge run kept after promotion: %+v", r)
		}
	}
}
