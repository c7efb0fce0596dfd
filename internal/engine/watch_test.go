package engine

import (
	"errors"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/intstr"

	"ramp.dev/ramp/api/v1alpha1"
)

// promoted returns a world whose revision 2 was just promoted over revision 1 by a canary
// with two steps, with the watch window of the default length.
func promoted(t *testing.T, watchJudge bool) *world {
	t.Helper()
	w := newWorld(t, canarySpec(v1alpha1.CanaryStep{SetWeight: ptr(int32(50))}))
	w.watchJudge = watchJudge
	w.apply(2)
	w.wantPhase(v1alpha1.PhaseHealthy, "revision 2 is stable")
	return w
}

// wantSwitchedBack checks that all traffic is back on revision 1's instances that were kept
// warm, with no instance started since started.
func (w *world) wantSwitchedBack(started int, msgPart string) {
	w.t.Helper()
	w.wantBackOn1(msgPart, 4)
	if w.seq != started {
		w.t.Fatalf("%d instances started by the switch back, want none", w.seq-started)
	}
	if st := w.r.Status; st.StableRevision != 1 || !st.Abort || st.AbortedRevision != 2 || st.Watch != nil {
		w.t.Fatalf("after the switch back: stable %d abort %v aborted %d watch %+v", st.StableRevision, st.Abort, st.AbortedRevision, st.Watch)
	}
}

func TestWatchWindowKeepsThePreviousRevisionWarmThenEnds(t *testing.T) {
	w := promoted(t, false)
	w.wantWeights(map[int64]int32{2: 100})
	w.wantScale(map[int64]int32{1: 4, 2: 4})
	w.wantPhase(v1alpha1.PhaseHealthy, "watching it until 2026-11-27T08:05:00Z, revision 1 kept warm")
	wt := w.r.Status.Watch
	if wt == nil || wt.Revision != 2 || wt.PreviousRevision != 1 || wt.Until.Sub(wt.Since.Time) != 300*time.Second {
		t.Fatalf("watch %+v, want revision 2 over 1 for 300s", wt)
	}
	if w.out.Requeue.IsZero() || w.out.Requeue.After(wt.Until.Time) {
		t.Fatalf("requeue %v, want by the window's end %v", w.out.Requeue, wt.Until)
	}
	w.advance(299 * time.Second)
	w.wantScale(map[int64]int32{1: 4, 2: 4})
	w.advance(time.Second)
	w.wantScale(map[int64]int32{2: 4})
	w.wantEvent("WatchEnded")
	if w.r.Status.Watch != nil {
		t.Fatalf("watch still open: %+v", w.r.Status.Watch)
	}
	if err := Abort(w.r); !errors.Is(err, ErrNotInProgress) {
		t.Fatalf("abort after the window: %v, want ErrNotInProgress", err)
	}
}

func TestWatchWindowOff(t *testing.T) {
	spec := canarySpec(v1alpha1.CanaryStep{SetWeight: ptr(int32(50))})
	spec.Strategy.Canary.ScaleDownDelaySeconds = ptr(int32(0))
	w := newWorld(t, spec)
	w.apply(2)
	w.wantScale(map[int64]int32{2: 4})
	if w.r.Status.Watch != nil {
		t.Fatalf("watch %+v with scaleDownDelaySeconds 0", w.r.Status.Watch)
	}
}

func TestWatchSwitchesBackOnACrashLoop(t *testing.T) {
	w := promoted(t, false)
	started := w.seq
	w.advance(20 * time.Second)
	for i := range w.inst[2] {
		w.inst[2][i].CrashLooping, w.inst[2][i].Restarts, w.inst[2][i].LastExit = true, 3, "exited with status 3"
	}
	w.advance(time.Second)
	w.wantSwitchedBack(started, "revision 2 rolled back in the watch window: revision 2 is crash-looping")
	w.wantEvent("RolledBack")
	// A retry runs revision 2 again as a canary over revision 1 (here it no longer crashes).
	if err := Retry(w.r, w.now); err != nil {
		t.Fatal(err)
	}
	w.decide()
	if w.r.Status.CanaryRevision != 2 || w.r.Status.StableRevision != 1 {
		t.Fatalf("retry: canary %d stable %d", w.r.Status.CanaryRevision, w.r.Status.StableRevision)
	}
}

func TestWatchSwitchesBackOnOneExitWhenThePreviousHadNone(t *testing.T) {
	w := promoted(t, false)
	started := w.seq
	for i := range w.inst[1] {
		w.inst[1][i].CreatedAt = w.now.Add(-time.Hour)
	}
	created := w.now.Add(-time.Minute)
	w.advance(20 * time.Second)
	w.exit(2, 1, 1, created)
	w.advance(time.Second)
	w.wantSwitchedBack(started, "revision 2 exited unexpectedly")
}

func TestWatchSwitchesBackOnAMemoryLeak(t *testing.T) {
	w := promoted(t, false)
	started := w.seq
	set := func(rev int64, mib int64) {
		for i := range w.inst[rev] {
			w.inst[rev][i].MemoryBytes = mib << 20
		}
	}
	set(1, 20)
	// Twice the memory but under the floor: noise of a small service, not a leak.
	set(2, 60)
	w.advance(10 * time.Second)
	w.wantPhase(v1alpha1.PhaseHealthy, "watching")
	// One instance under the ratio holds it back: every instance must be above.
	set(2, 200)
	w.inst[2][0].MemoryBytes = 25 << 20
	w.advance(10 * time.Second)
	w.wantPhase(v1alpha1.PhaseHealthy, "watching")
	set(2, 200)
	w.advance(time.Second)
	w.wantSwitchedBack(started, "revision 2 uses too much memory: its smallest instance r2-")
}

func TestWatchJudgeRunFailureSwitchesBack(t *testing.T) {
	w := promoted(t, true)
	started := w.seq
	var run *v1alpha1.AnalysisRunStatus
	for i := range w.r.Status.Analysis {
		if w.r.Status.Analysis[i].Kind == v1alpha1.AnalysisKindWatch {
			run = &w.r.Status.Analysis[i]
		}
	}
	if run == nil || run.Revision != 2 || run.BaselineRevision != 1 || run.Name != "watch-2" {
		t.Fatalf("watch run %+v in %+v", run, w.r.Status.Analysis)
	}
	w.advance(5 * time.Second)
	w.setRun("watch-2", v1alpha1.AnalysisFailed, "first-token: new stable worse than the previous revision's record")
	w.wantSwitchedBack(started, "analysis watch-2 failed: first-token: new stable worse")
}

func TestAbortInTheWatchWindowSwitchesBackAtOnce(t *testing.T) {
	w := promoted(t, false)
	started := w.seq
	w.advance(time.Minute)
	if err := Abort(w.r); err != nil {
		t.Fatalf("abort in the window: %v", err)
	}
	w.decide() // one decision, not a settle: the switch is immediate
	w.wantSwitchedBack(started, "rolled back in the watch window: by user")
}

func TestUndoInTheWatchWindowIsImmediate(t *testing.T) {
	w := promoted(t, false)
	started := w.seq
	if UndoInWatch(w.r, 3) {
		t.Fatal("undo to a revision other than the previous one used the window")
	}
	if !UndoInWatch(w.r, 1) {
		t.Fatal("undo to the previous revision in the window did not switch back")
	}
	w.rev = 1 // the adapter sets the template back to revision 1's
	w.decide()
	w.wantPhase(v1alpha1.PhaseHealthy, "revision 1 is stable")
	w.wantWeights(map[int64]int32{1: 100})
	w.wantScale(map[int64]int32{1: 4})
	if w.seq != started {
		t.Fatalf("%d instances started by the undo, want none", w.seq-started)
	}
}

func TestBlueGreenAbortInTheWatchWindow(t *testing.T) {
	w := newWorld(t, blueGreenSpec(v1alpha1.BlueGreenStrategy{}))
	w.apply(2)
	w.wantScale(map[int64]int32{1: 2, 2: 2})
	started := w.seq
	if err := Abort(w.r); err != nil {
		t.Fatal(err)
	}
	w.decide()
	w.wantPhase(v1alpha1.PhaseDegraded, "by user")
	w.wantWeights(map[int64]int32{1: 100})
	w.wantScale(map[int64]int32{1: 2})
	if w.r.Status.ActiveRevision != 1 || w.seq != started {
		t.Fatalf("active %d, %d instances started", w.r.Status.ActiveRevision, w.seq-started)
	}
}

// A rolling update with a watch window takes old instances out of rotation instead of
// stopping them: none of revision 1's instances is stopped or started again, during the
// update or after it, and an abort in the window needs no start-up.
func TestRollingUpdateKeepsOldInstancesWarm(t *testing.T) {
	one := intstr.FromInt32(1)
	w := newWorld(t, v1alpha1.RolloutSpec{Replicas: ptr(int32(4)),
		Strategy: v1alpha1.Strategy{RollingUpdate: &v1alpha1.RollingUpdateStrategy{MaxSurge: &one, MaxUnavailable: &one}}})
	ids := map[string]bool{}
	for _, in := range w.inst[1] {
		ids[in.ID] = true
	}
	w.rev = 2
	for range 50 {
		w.decide()
		if n := len(w.inst[1]); n != 4 {
			t.Fatalf("revision 1 runs %d instances during the update, want its 4 kept warm", n)
		}
		var weight1 int32
		for _, rs := range w.r.Status.Revisions {
			if rs.Revision == 1 {
				weight1 = rs.Weight
				if rs.Desired+rs.Warm != 4 {
					t.Fatalf("revision 1: desired %d + warm %d, want 4", rs.Desired, rs.Warm)
				}
			}
		}
		if w.r.Status.StableRevision == 2 {
			if weight1 != 0 {
				t.Fatalf("revision 1 still weighs %d after promotion", weight1)
			}
			break
		}
	}
	w.wantPhase(v1alpha1.PhaseHealthy, "revision 2 is stable")
	for _, in := range w.inst[1] {
		if !ids[in.ID] {
			t.Fatalf("instance %s of revision 1 was started during the update", in.ID)
		}
	}
	started := w.seq
	if err := Abort(w.r); err != nil {
		t.Fatal(err)
	}
	w.decide()
	w.wantWeights(map[int64]int32{1: 100})
	if w.seq != started {
		t.Fatalf("%d instances started by the switch back", w.seq-started)
	}
}

// A user's abort is recorded as an event once, when it takes effect; a new revision applied
// over an aborted one does not claim to replace a revision "still rolling out".
func TestUserAbortIsAnEventAndANewRevisionAfterItIsNoRestart(t *testing.T) {
	w := newWorld(t, canarySpec(v1alpha1.CanaryStep{SetWeight: ptr(int32(50))}, v1alpha1.CanaryStep{Pause: &v1alpha1.RolloutPause{}}))
	w.apply(2)
	if err := Abort(w.r); err != nil {
		t.Fatal(err)
	}
	w.settle()
	w.advance(time.Second)
	n := 0
	for _, e := range w.events {
		if e.Reason == "RolloutAborted" {
			n++
			if e.Message != "revision 2 aborted: by user" {
				t.Errorf("abort event %q", e.Message)
			}
		}
	}
	if n != 1 {
		t.Fatalf("%d RolloutAborted events, want 1: %+v", n, w.events)
	}
	w.apply(3)
	w.wantEvent("RolloutStarted")
	for _, e := range w.events {
		if e.Reason == "RolloutRestarted" {
			t.Fatalf("revision 3 said it replaced the aborted revision 2: %s", e.Message)
		}
	}
}
