package engine

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"ramp.dev/ramp/api/v1alpha1"
)

// restartWorld runs revision 1 of a rollout, stable, and carries out restarts the way the
// adapters do: the instances of Output.Restart stop (they are gone one decision later), Scale
// starts new instances, and a new instance is ready one decision after it started.
type restartWorld struct {
	t     *testing.T
	r     *v1alpha1.Rollout
	now   time.Time
	insts []Instance
	seq   int
	in    *RestartBudget
	out   Output
	// minReady is the fewest ready, not terminating instances seen; maxLive the most not
	// terminating ones.
	minReady, maxLive int
	events            []Event
}

func newRestartWorld(t *testing.T, replicas int32, strategy v1alpha1.Strategy, budget *RestartBudget) *restartWorld {
	w := &restartWorld{
		t: t, now: time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC), in: budget, minReady: 1 << 30,
		r: &v1alpha1.Rollout{Spec: v1alpha1.RolloutSpec{Replicas: ptr(replicas), Strategy: strategy}},
	}
	w.r.Name = "chat-api"
	for range 50 {
		w.step()
		if w.r.Status.Phase == v1alpha1.PhaseHealthy {
			w.minReady, w.maxLive = 1<<30, 0
			return w
		}
	}
	t.Fatalf("revision 1 did not become stable: %+v", w.r.Status)
	return nil
}

// step is one decision, carried out, a second later than the last.
func (w *restartWorld) step() {
	w.t.Helper()
	w.now = w.now.Add(time.Second)
	// What a decision stopped is gone at the next one; what it started is ready two
	// decisions later.
	w.insts = slices.DeleteFunc(w.insts, func(in Instance) bool { return in.Terminating })
	for i := range w.insts {
		if !w.insts[i].Ready && w.now.Sub(w.insts[i].StartedAt) >= 2*time.Second {
			w.insts[i].Ready, w.insts[i].ReadySince = true, w.now
		}
	}
	w.out = Decide(Input{Rollout: w.r, Revision: 1, Instances: map[int64][]Instance{1: slices.Clone(w.insts)}, Now: w.now, Restart: w.in})
	w.r.Status = w.out.Status
	w.events = append(w.events, w.out.Events...)
	for i := range w.insts {
		if slices.Contains(w.out.Restart, w.insts[i].ID) {
			w.insts[i].Terminating = true
		}
	}
	live := 0
	for _, in := range w.insts {
		if !in.Terminating {
			live++
		}
	}
	for ; live < int(w.out.Scale[1]); live++ {
		w.seq++
		w.insts = append(w.insts, Instance{ID: fmt.Sprintf("i%d", w.seq), StartedAt: w.now})
	}
	if live > int(w.out.Scale[1]) {
		w.t.Fatalf("scale %d below the %d instances running: a restart must stop instances by Restart only", w.out.Scale[1], live)
	}
	ready := 0
	for _, in := range w.insts {
		if in.Ready && !in.Terminating {
			ready++
		}
	}
	w.minReady, w.maxLive = min(w.minReady, ready), max(w.maxLive, live)
}

func (w *restartWorld) restartNow() time.Time {
	at := metav1.NewTime(w.now.Add(time.Second))
	w.r.Spec.RestartAt = &at
	return at.Time
}

// restartedAll steps until the restart completes and checks that every instance is new.
func (w *restartWorld) restartedAll(at time.Time) {
	w.t.Helper()
	for range 100 {
		w.step()
		if w.r.Status.RestartedAt != nil && w.r.Status.RestartedAt.Equal(&metav1.Time{Time: at}) {
			break
		}
	}
	if w.r.Status.RestartedAt == nil {
		w.t.Fatalf("the restart did not complete: %+v", w.r.Status)
	}
	n := 0
	for _, in := range w.insts {
		if in.StartedAt.Before(at) {
			w.t.Errorf("instance %s started at %s, before the restart at %s", in.ID, in.StartedAt, at)
		}
		n++
	}
	if n != int(*w.r.Spec.Replicas) {
		w.t.Errorf("%d instances after the restart, want %d", n, *w.r.Spec.Replicas)
	}
	if !slices.ContainsFunc(w.events, func(e Event) bool { return e.Reason == "Restarted" }) {
		w.t.Errorf("no Restarted event in %+v", w.events)
	}
	// Complete means every new instance is available: the rollout is Healthy again.
	if w.r.Status.Phase != v1alpha1.PhaseHealthy {
		w.t.Errorf("phase %s when the restart completed: %s", w.r.Status.Phase, w.r.Status.Message)
	}
}

func TestRestartReplacesEveryInstanceWithinTheBudget(t *testing.T) {
	canary := v1alpha1.Strategy{Canary: &v1alpha1.CanaryStrategy{Steps: []v1alpha1.CanaryStep{{SetWeight: ptr(int32(50))}}, Judge: &v1alpha1.CanaryJudge{Enabled: ptr(false)}}}
	for _, tc := range []struct {
		name     string
		replicas int32
		strategy v1alpha1.Strategy
		budget   *RestartBudget
		// minReady and maxLive bound the instances during the restart.
		minReady, maxLive int
	}{
		// Local mode: new instances start first (25% surge, at least one), none unavailable.
		{"local canary", 4, canary, nil, 4, 5},
		{"local rolling 50% surge", 4, v1alpha1.Strategy{RollingUpdate: &v1alpha1.RollingUpdateStrategy{
			MaxSurge: ptr(intstr.Parse("50%")), MaxUnavailable: ptr(intstr.FromInt32(0))}}, nil, 4, 6},
		// Kubernetes mode: no surge; maxUnavailable old pods go at a time, at least one.
		{"kubernetes maxUnavailable 1", 3, canary, &RestartBudget{Unavailable: 1}, 2, 3},
		{"kubernetes maxUnavailable 0", 3, canary, &RestartBudget{}, 2, 3},
		{"kubernetes maxUnavailable 2", 5, canary, &RestartBudget{Unavailable: 2}, 3, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newRestartWorld(t, tc.replicas, tc.strategy, tc.budget)
			at := w.restartNow()
			// Before restartAt nothing happens, and the decision asks to be woken then.
			w.out = Decide(Input{Rollout: w.r, Revision: 1, Instances: map[int64][]Instance{1: w.insts}, Now: w.now, Restart: w.in})
			if len(w.out.Restart) != 0 || !w.out.Requeue.Equal(at) {
				t.Fatalf("before restartAt: restart %v, requeue %s; want none, %s", w.out.Restart, w.out.Requeue, at)
			}
			w.restartedAll(at)
			if w.minReady < tc.minReady || w.maxLive > tc.maxLive {
				t.Errorf("during the restart: at least %d ready, at most %d running; want >= %d and <= %d", w.minReady, w.maxLive, tc.minReady, tc.maxLive)
			}
			// A completed restart does not run again.
			before := w.seq
			for range 5 {
				w.step()
			}
			if w.seq != before || len(w.out.Restart) != 0 {
				t.Errorf("after the restart: %d more instances started, restart %v", w.seq-before, w.out.Restart)
			}
		})
	}
}

func TestRestartStopsNotReadyInstancesFirst(t *testing.T) {
	w := newRestartWorld(t, 3, v1alpha1.Strategy{Canary: &v1alpha1.CanaryStrategy{}}, &RestartBudget{Unavailable: 1})
	w.insts[2].Ready = false // a stuck pod
	at := metav1.NewTime(w.now)
	w.r.Spec.RestartAt = &at
	out := Decide(Input{Rollout: w.r, Revision: 1, Instances: map[int64][]Instance{1: w.insts}, Now: w.now.Add(time.Second), Restart: w.in})
	// 2 ready of 3 with 1 unavailable allowed: only the not-ready one may go now.
	if want := []string{w.insts[2].ID}; !slices.Equal(out.Restart, want) {
		t.Errorf("restart %v, want %v", out.Restart, want)
	}
	if !strings.Contains(out.Status.Message, "restarting revision 1") {
		t.Errorf("message %q does not say the restart is under way", out.Status.Message)
	}
}

func TestRestartWaitsForARolloutToEnd(t *testing.T) {
	w := newWorld(t, canarySpec(v1alpha1.CanaryStep{SetWeight: ptr(int32(50))}, v1alpha1.CanaryStep{Pause: &v1alpha1.RolloutPause{}}))
	w.apply(2)
	w.wantPhase(v1alpha1.PhasePaused, "")
	at := metav1.NewTime(w.now)
	w.r.Spec.RestartAt = &at
	w.advance(time.Minute)
	if len(w.out.Restart) != 0 || w.r.Status.RestartedAt != nil {
		t.Fatalf("mid-canary: restart %v, restartedAt %v; want the restart to wait", w.out.Restart, w.r.Status.RestartedAt)
	}
	// Once revision 2 is stable, its instances all started after restartAt: nothing to do.
	w.r.Status.PromoteFull = true
	w.advance(time.Second)
	w.wantPhase(v1alpha1.PhaseHealthy, "revision 2 is stable")
	if w.r.Status.RestartedAt == nil || !w.r.Status.RestartedAt.Equal(&at) {
		t.Errorf("restartedAt %v, want %s", w.r.Status.RestartedAt, at)
	}
}

func TestRestartAfterAnAbortKeepsTheAbortMessage(t *testing.T) {
	w := newWorld(t, canarySpec(v1alpha1.CanaryStep{SetWeight: ptr(int32(50))}, v1alpha1.CanaryStep{Pause: &v1alpha1.RolloutPause{}}))
	w.apply(2)
	if err := Abort(w.r); err != nil {
		t.Fatal(err)
	}
	w.advance(time.Second)
	w.wantPhase(v1alpha1.PhaseDegraded, "aborted: by user")
	at := metav1.NewTime(w.now.Add(time.Second))
	w.r.Spec.RestartAt = &at
	w.now = w.now.Add(2 * time.Second)
	w.decide()
	if len(w.out.Restart) != 0 || w.out.Scale[1] != 5 {
		t.Fatalf("restart %v scale %v; want a 5th instance of stable revision 1 started first", w.out.Restart, w.out.Scale)
	}
	w.wantPhase(v1alpha1.PhaseDegraded, "aborted: by user")
}
