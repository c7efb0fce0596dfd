package engine

import (
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"ramp.dev/ramp/api/v1alpha1"
)

func hook(name string, typ v1alpha1.WebhookType, policy v1alpha1.WebhookFailurePolicy) v1alpha1.Webhook {
	return v1alpha1.Webhook{Name: name, Type: typ, URL: "http://127.0.0.1:9/" + name, FailurePolicy: policy}
}

// answer answers every gate call of the last decision with code, as the driver writes a
// webhook's answer into the status, and settles. It returns the calls answered.
func (w *world) answer(code int) []GateCall {
	w.t.Helper()
	calls := w.out.Gates
	for _, c := range calls {
		found := false
		for i := range w.r.Status.Gates {
			g := &w.r.Status.Gates[i]
			if !SameGate(g, c.Webhook.Name, c.Revision, c.Step, c.Since) {
				continue
			}
			found = true
			g.Attempts++
			g.Phase = v1alpha1.GateFailed
			if code/100 == 2 {
				g.Phase = v1alpha1.GatePassed
			}
			g.Message = fmt.Sprintf("HTTP %d", code)
			at := metav1.NewTime(w.now)
			g.AnsweredAt = &at
		}
		if !found {
			w.t.Fatalf("call %+v has no gate in the status %+v", c, w.r.Status.Gates)
		}
	}
	w.settle()
	return calls
}

// calls names the gate calls of the last decision, as "name@revision[/step]".
func (w *world) calls() string {
	var s []string
	for _, c := range w.out.Gates {
		n := fmt.Sprintf("%s@%d", c.Webhook.Name, c.Revision)
		if c.Step != nil {
			n += fmt.Sprintf("/%d", *c.Step)
		}
		s = append(s, n)
	}
	return strings.Join(s, ",")
}

func (w *world) wantCalls(want string) {
	w.t.Helper()
	if got := w.calls(); got != want {
		w.t.Fatalf("gate calls %q, want %q (status %s: %s)", got, want, w.r.Status.Phase, w.r.Status.Message)
	}
}

func (w *world) gateStatus(name string, rev int64) *v1alpha1.GateStatus {
	for i := range w.r.Status.Gates {
		if g := &w.r.Status.Gates[i]; g.Name == name && g.Revision == rev {
			return g
		}
	}
	return nil
}

// A confirm-promotion gate that answers 500 holds the canary at its last weight, paused with
// the gate and its answer in the message, however often it is asked; a 2xx promotes, and the
// post-rollout webhook is then called once.
func TestGateConfirmPromotionHolds(t *testing.T) {
	w := newWorld(t, canarySpec(v1alpha1.CanaryStep{SetWeight: ptr(int32(20))}, v1alpha1.CanaryStep{SetWeight: ptr(int32(50))}))
	w.r.Spec.Webhooks = []v1alpha1.Webhook{hook("approve", v1alpha1.WebhookConfirmPromotion, ""), hook("done", v1alpha1.WebhookPostRollout, "")}
	w.apply(2)
	w.wantPhase(v1alpha1.PhasePaused, "waiting before promoting revision 2: gate approve (confirm-promotion): asking http://127.0.0.1:9/approve")
	w.wantWeights(map[int64]int32{1: 50, 2: 50})
	w.wantCalls("approve@2")
	for i := 1; i <= 3; i++ {
		w.answer(500)
		w.advance(10 * time.Second)
		w.wantPhase(v1alpha1.PhasePaused, fmt.Sprintf("gate approve (confirm-promotion) answered HTTP 500 (asked %d times, again every 10s)", i))
		w.wantWeights(map[int64]int32{1: 50, 2: 50})
		w.wantCalls("approve@2")
		if w.r.Status.StableRevision != 1 {
			t.Fatalf("promoted past a gate that answered 500")
		}
	}
	// A promote does not skip the gate.
	if err := Promote(w.r, false); err != nil {
		t.Fatal(err)
	}
	w.settle()
	w.wantPhase(v1alpha1.PhasePaused, "gate approve")
	w.answer(200)
	w.wantPhase(v1alpha1.PhaseHealthy, "revision 2 is stable")
	w.wantWeights(map[int64]int32{2: 100})
	w.wantCalls("done@2")
	if g := w.gateStatus("approve", 2); g == nil || g.Phase != v1alpha1.GatePassed || g.Attempts != 4 {
		t.Fatalf("approve gate %+v, want Passed after 4 attempts", g)
	}
	w.answer(500) // informative: its answer changes nothing
	w.wantPhase(v1alpha1.PhaseHealthy, "revision 2 is stable")
	w.wantCalls("")
	if g := w.gateStatus("done", 2); g == nil || g.Phase != v1alpha1.GateFailed {
		t.Fatalf("post-rollout gate %+v", g)
	}
}

// confirm-traffic-increase is asked before each step that raises the weight, each step its
// own gate: the answer for one step does not open the next. A step that lowers the weight is
// not asked.
func TestGateConfirmTrafficIncreasePerStep(t *testing.T) {
	w := newWorld(t, canarySpec(
		v1alpha1.CanaryStep{SetWeight: ptr(int32(20))},
		v1alpha1.CanaryStep{SetWeight: ptr(int32(50))},
		v1alpha1.CanaryStep{SetWeight: ptr(int32(30))},
	))
	w.r.Spec.Webhooks = []v1alpha1.Webhook{hook("more", v1alpha1.WebhookConfirmTrafficIncrease, "")}
	w.apply(2)
	w.wantPhase(v1alpha1.PhasePaused, "waiting before step 1/3 sets the canary weight from 0% to 20%: gate more")
	w.wantWeights(map[int64]int32{1: 100})
	w.wantCalls("more@2/0")
	w.answer(503)
	w.wantWeights(map[int64]int32{1: 100})
	w.answer(200)
	w.wantStep(1)
	w.wantWeights(map[int64]int32{1: 80, 2: 20})
	w.wantPhase(v1alpha1.PhasePaused, "step 2/3 sets the canary weight from 20% to 50%: gate more (confirm-traffic-increase): asking")
	w.wantCalls("more@2/1")
	if err := Promote(w.r, false); err != nil {
		t.Fatal(err)
	}
	w.settle()
	w.wantStep(1)
	w.wantWeights(map[int64]int32{1: 80, 2: 20})
	w.answer(200)
	// 50 -> 30 lowers the weight: no gate; then the promotion, which has no gate.
	w.wantPhase(v1alpha1.PhaseHealthy, "revision 2 is stable")
	// The promoted revision's gates stay to be seen: one per step that raised the weight.
	if g := w.r.Status.Gates; len(g) != 2 || *g[0].Step != 0 || *g[1].Step != 1 || g[0].Attempts != 2 || g[1].Attempts != 1 {
		t.Fatalf("gates of the promoted revision: %+v", g)
	}
}

// pre-rollout holds the canary at weight 0 with one instance; a changed template asks again.
func TestGatePreRolloutAndNewRevision(t *testing.T) {
	w := newWorld(t, canarySpec(v1alpha1.CanaryStep{SetWeight: ptr(int32(20))}, v1alpha1.CanaryStep{Pause: &v1alpha1.RolloutPause{}}))
	w.r.Spec.Webhooks = []v1alpha1.Webhook{hook("smoke", v1alpha1.WebhookPreRollout, "")}
	w.apply(2)
	w.wantPhase(v1alpha1.PhasePaused, "waiting before revision 2 takes traffic: gate smoke (pre-rollout)")
	w.wantWeights(map[int64]int32{1: 100})
	w.wantScale(map[int64]int32{1: 4, 2: 1})
	w.answer(200)
	w.wantWeights(map[int64]int32{1: 80, 2: 20})
	w.wantPhase(v1alpha1.PhasePaused, "paused until `ramp promote`")
	w.wantCalls("")
	// When revision 3 replaces it, its own pre-rollout gate holds it from traffic.
	w.apply(3)
	w.wantPhase(v1alpha1.PhasePaused, "waiting before revision 3 takes traffic: gate smoke")
	w.wantWeights(map[int64]int32{1: 100})
	w.wantCalls("smoke@3")
	if g := w.gateStatus("smoke", 2); g != nil {
		t.Fatalf("revision 2's gate kept: %+v", g)
	}
	// Plain Services split by instances: no canary instance while the gate holds.
	w.byReplicas = true
	w.settle()
	w.wantScale(map[int64]int32{1: 4, 3: 0})
}

// failurePolicy Abort aborts at the first answer that is not 2xx, and the rollback webhook is
// then called once; Ignore goes on with an event.
func TestGateAbortAndIgnorePolicies(t *testing.T) {
	w := newWorld(t, canarySpec(v1alpha1.CanaryStep{SetWeight: ptr(int32(20))}))
	w.r.Spec.Webhooks = []v1alpha1.Webhook{
		hook("tests", v1alpha1.WebhookConfirmPromotion, v1alpha1.WebhookAbort),
		hook("page", v1alpha1.WebhookRollback, ""),
	}
	w.apply(2)
	w.wantCalls("tests@2")
	w.answer(500)
	w.wantBackOn1("aborted: gate tests (confirm-promotion) before promoting revision 2: HTTP 500 (failurePolicy Abort)", 4)
	w.wantCalls("page@2")
	w.answer(200)
	w.wantCalls("")
	w.advance(time.Minute)
	w.wantCalls("")
	// A retry asks the gate again, and a second abort calls rollback again.
	if err := Retry(w.r, w.now); err != nil {
		t.Fatal(err)
	}
	w.settle()
	w.wantCalls("tests@2")
	w.answer(504)
	w.wantCalls("page@2")

	w2 := newWorld(t, canarySpec(v1alpha1.CanaryStep{SetWeight: ptr(int32(20))}))
	w2.r.Spec.Webhooks = []v1alpha1.Webhook{hook("maybe", v1alpha1.WebhookConfirmPromotion, v1alpha1.WebhookIgnore)}
	w2.apply(2)
	w2.answer(500)
	w2.wantPhase(v1alpha1.PhaseHealthy, "revision 2 is stable")
	w2.wantEvent("GateIgnored")
}

// Blue-green: pre-rollout holds before pre-promotion analysis; confirm-traffic-increase and
// confirm-promotion both hold the switch.
func TestGateBlueGreenSwitch(t *testing.T) {
	w := newWorld(t, blueGreenSpec(v1alpha1.BlueGreenStrategy{}))
	w.r.Spec.Webhooks = []v1alpha1.Webhook{
		hook("smoke", v1alpha1.WebhookPreRollout, ""),
		hook("more", v1alpha1.WebhookConfirmTrafficIncrease, ""),
		hook("approve", v1alpha1.WebhookConfirmPromotion, ""),
	}
	w.apply(2)
	w.wantCalls("smoke@2")
	w.wantPhase(v1alpha1.PhasePaused, "waiting before preview revision 2 is analysed and switched to")
	w.answer(200)
	w.wantCalls("more@2,approve@2")
	w.wantPhase(v1alpha1.PhasePaused, "waiting before the switch to revision 2")
	w.wantWeights(map[int64]int32{1: 100})
	// One passes, the other holds: no switch.
	w.out.Gates = w.out.Gates[:1]
	w.answer(200)
	w.wantCalls("approve@2")
	w.wantWeights(map[int64]int32{1: 100})
	if w.r.Status.ActiveRevision != 1 {
		t.Fatalf("switched with a gate holding")
	}
	w.answer(200)
	w.wantPhase(v1alpha1.PhaseHealthy, "revision 2 is stable")
	w.wantWeights(map[int64]int32{2: 100})
}

// A rolling update waits for pre-rollout before its first new instance.
func TestGateRollingPreRollout(t *testing.T) {
	w := newWorld(t, rollingSpec(nil))
	w.r.Spec.Webhooks = []v1alpha1.Webhook{hook("smoke", v1alpha1.WebhookPreRollout, "")}
	w.apply(2)
	w.wantPhase(v1alpha1.PhasePaused, "waiting before the rolling update to revision 2 starts: gate smoke")
	w.wantScale(map[int64]int32{1: 4, 2: 0})
	w.answer(500)
	w.wantScale(map[int64]int32{1: 4, 2: 0})
	w.answer(200)
	w.wantPhase(v1alpha1.PhaseHealthy, "revision 2 is stable")
}

// A Deployment that rolls itself is held (Roll false) while pre-rollout holds, and rolls once
// it answers 2xx.
func TestGateRollsItselfPreRollout(t *testing.T) {
	w := newWorld(t, rollingSpec(nil))
	w.rollsItself = true
	w.workload = &Workload{Name: "deployment chat-api", Revision: 1, Complete: true}
	w.settle()
	w.r.Spec.Webhooks = []v1alpha1.Webhook{hook("smoke", v1alpha1.WebhookPreRollout, "")}
	w.apply(2)
	w.wantPhase(v1alpha1.PhasePaused, "gate smoke (pre-rollout)")
	if g := w.out.Workload; g == nil || g.Roll || g.Revision != 2 {
		t.Fatalf("workload gate %+v while pre-rollout holds, want revision 2 held", g)
	}
	w.answer(200)
	if g := w.out.Workload; g == nil || !g.Roll || g.Revision != 2 {
		t.Fatalf("workload gate %+v after 2xx, want revision 2 rolling", g)
	}
}
