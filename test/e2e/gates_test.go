package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/test/testkit"
)

// gateStrategy is a canary of two weight steps, judged by no analysis (the gates are under
// test), with the webhooks given (YAML list items under spec.webhooks, indented by 2).
func gateStrategy(webhooks string) string {
	return `    canary:
      judge: {enabled: false}
      steps:
      - setWeight: 20
      - setWeight: 50
  webhooks:
` + webhooks
}

// canaryWeight is the weight of revision rev in ro's status, or -1 when it has none.
func canaryWeight(ro v1alpha1.Rollout, rev int64) int32 {
	for _, rv := range ro.Status.Revisions {
		if rv.Revision == rev {
			return rv.Weight
		}
	}
	return -1
}

// Given a canary with a pre-rollout, a confirm-promotion and a post-rollout webhook, when the
// confirm-promotion receiver answers 500, the rollout holds at 50% (its status naming the
// gate and the answer) however often it asks; when it answers 200, the rollout completes and
// post-rollout is told.
func TestGateHoldsPromotionUntil2xx(t *testing.T) {
	recv := testkit.NewGateReceiver(t, "")
	recv.Set("approve", 500)
	hooks := fmt.Sprintf(`  - {name: smoke, type: pre-rollout, url: %[1]s/smoke, timeout: 2s, interval: 1s}
  - {name: approve, type: confirm-promotion, url: %[1]s/approve, timeout: 2s, interval: 1s, metadata: {ticket: CHG-42}}
  - {name: done, type: post-rollout, url: %[1]s/done}
`, recv.URL)
	s := spec{Listen: testkit.FreeAddr(t), Strategy: gateStrategy(hooks)}
	r := startRamp(t, model(s, "v1"))
	if n := len(recv.Calls("")); n != 0 {
		t.Fatalf("the first revision called %d webhooks: %+v", n, recv.Calls(""))
	}
	// When v2 is applied
	r.apply(model(s, "v2"))
	// Then the gate holds: watch the status while the receiver is asked at least 3 times
	maxWeight := int32(0)
	r.waitFor(60*time.Second, "confirm-promotion asked 3 times", func(ro v1alpha1.Rollout) bool {
		maxWeight = max(maxWeight, canaryWeight(ro, 2))
		if ro.Status.StableRevision != 1 {
			t.Fatalf("promoted past a gate that answers 500: %+v", ro.Status)
		}
		return len(recv.Calls("approve")) >= 3
	})
	ro := r.waitFor(10*time.Second, "the status to show the 500", func(ro v1alpha1.Rollout) bool {
		return strings.Contains(ro.Status.Message, "gate approve (confirm-promotion) answered HTTP 500 Internal Server Error: answer of approve (asked ")
	})
	if ro.Status.Phase != v1alpha1.PhasePaused || ro.Status.StableRevision != 1 || canaryWeight(ro, 2) != 50 || maxWeight > 50 {
		t.Fatalf("held: phase %s stable %d weight %d (max seen %d): %s", ro.Status.Phase, ro.Status.StableRevision, canaryWeight(ro, 2), maxWeight, ro.Status.Message)
	}
	out := r.must("get", "chat-api", "-o", "wide")
	if !strings.Contains(out, "gate approve (confirm-promotion) answered HTTP 500") {
		t.Fatalf("ramp get -o wide does not show the gate:\n%s", out)
	}
	out, code := r.cli("status", "chat-api", "--timeout", "1s")
	if code != 2 || !strings.Contains(out, "Rollout chat-api held by a gate webhook: waiting before promoting revision 2: gate approve (confirm-promotion) answered HTTP 500") {
		t.Fatalf("ramp status exit %d:\n%s", code, out)
	}
	// And each call is a new ask, at least an interval apart
	calls := recv.Calls("approve")
	for i := 1; i < len(calls); i++ {
		if gap := calls[i].At.Sub(calls[i-1].At); gap < 900*time.Millisecond {
			t.Fatalf("calls %d and %d %s apart, interval 1s", i-1, i, gap)
		}
	}
	c := calls[0]
	if c.Rollout != "chat-api" || c.Revision != 2 || c.Type != "confirm-promotion" || c.Weight != 50 || c.Metadata["ticket"] != "CHG-42" || c.Phase != "Paused" {
		t.Fatalf("confirm-promotion body %+v", c)
	}
	// And pre-rollout was asked before the canary had any traffic
	smoke := recv.Calls("smoke")
	if len(smoke) != 1 || smoke[0].Revision != 2 || smoke[0].Weight != 0 || smoke[0].Type != "pre-rollout" {
		t.Fatalf("pre-rollout calls %+v", smoke)
	}
	// When the receiver answers 200
	recv.Set("approve", 200)
	// Then the rollout completes, and post-rollout is called once
	ro = r.waitPhase(v1alpha1.PhaseHealthy, 30*time.Second)
	if ro.Status.StableRevision != 2 {
		t.Fatalf("after 200: %+v", ro.Status)
	}
	waitFor(t, 10*time.Second, "post-rollout", func() (bool, string) {
		d := recv.Calls("done")
		return len(d) == 1 && d[0].Revision == 2, fmt.Sprint(d)
	})
	events := r.must("events", "chat-api")
	for _, want := range []string{"GateFailed", "GatePassed"} {
		if !strings.Contains(events, want) {
			t.Fatalf("no %s event:\n%s", want, events)
		}
	}
}

// Given a canary whose confirm-traffic-increase receiver hangs longer than its timeout, the
// rollout holds at weight 0 with the timeout in its status; an abort then calls the rollback
// webhook.
func TestGateTimeoutHoldsAndRollbackIsCalled(t *testing.T) {
	recv := testkit.NewGateReceiver(t, "")
	recv.Set("more", 0) // hangs
	hooks := fmt.Sprintf(`  - {name: more, type: confirm-traffic-increase, url: %[1]s/more, timeout: 500ms, interval: 1s}
  - {name: page, type: rollback, url: %[1]s/page, metadata: {severity: low}}
`, recv.URL)
	s := spec{Listen: testkit.FreeAddr(t), Strategy: gateStrategy(hooks)}
	r := startRamp(t, model(s, "v1"))
	r.apply(model(s, "v2"))
	r.waitFor(60*time.Second, "confirm-traffic-increase asked twice", func(ro v1alpha1.Rollout) bool {
		if w := canaryWeight(ro, 2); w > 0 {
			t.Fatalf("weight %d went past a gate that timed out: %s", w, ro.Status.Message)
		}
		return len(recv.Calls("more")) >= 2
	})
	ro := r.waitFor(10*time.Second, "the status to show the timeout", func(ro v1alpha1.Rollout) bool {
		return strings.Contains(ro.Status.Message, "step 1/2 sets the canary weight from 0% to 20%: gate more (confirm-traffic-increase) answered timed out after 500ms")
	})
	if ro.Status.Phase != v1alpha1.PhasePaused || canaryWeight(ro, 2) > 0 {
		t.Fatalf("phase %s weight %d: %s", ro.Status.Phase, canaryWeight(ro, 2), ro.Status.Message)
	}
	if c := recv.Calls("more")[0]; c.Weight != 20 || c.Step != 1 || c.Revision != 2 {
		t.Fatalf("confirm-traffic-increase body %+v", c)
	}
	if n := len(recv.Calls("page")); n != 0 {
		t.Fatalf("rollback called %d times before any abort", n)
	}
	// When the rollout is aborted
	r.must("abort", "chat-api")
	r.waitPhase(v1alpha1.PhaseDegraded, 20*time.Second)
	// Then the rollback webhook is called, once
	waitFor(t, 10*time.Second, "the rollback webhook", func() (bool, string) {
		p := recv.Calls("page")
		return len(p) == 1 && p[0].Revision == 2 && p[0].Phase == "Degraded" && p[0].Metadata["severity"] == "low", fmt.Sprint(p)
	})
	ro = r.get()
	for _, g := range ro.Status.Gates {
		if g.Name == "page" && g.Phase != v1alpha1.GatePassed {
			t.Fatalf("rollback gate %+v", g)
		}
	}
}

// Given a blue-green rollout, when confirm-promotion answers 503, the switch waits (the
// preview takes no traffic) while confirm-traffic-increase, asked beside it, passed; when it
// answers 200, traffic switches.
func TestGateHoldsBlueGreenSwitch(t *testing.T) {
	recv := testkit.NewGateReceiver(t, "")
	recv.Set("approve", 503)
	hooks := fmt.Sprintf(`  - {name: more, type: confirm-traffic-increase, url: %[1]s/more, interval: 1s}
  - {name: approve, type: confirm-promotion, url: %[1]s/approve, interval: 1s}
`, recv.URL)
	s := spec{Listen: testkit.FreeAddr(t), Preview: testkit.FreeAddr(t), Strategy: "    blueGreen:\n      previewListen: PREVIEW\n  webhooks:\n" + hooks}
	s.Strategy = strings.Replace(s.Strategy, "PREVIEW", s.Preview, 1)
	r := startRamp(t, model(s, "v1"))
	r.apply(model(s, "v2"))
	r.waitFor(60*time.Second, "confirm-promotion asked twice", func(ro v1alpha1.Rollout) bool {
		if ro.Status.ActiveRevision != 1 || canaryWeight(ro, 2) > 0 {
			t.Fatalf("switched past a gate that answers 503: %+v", ro.Status)
		}
		return len(recv.Calls("approve")) >= 2
	})
	ro := r.waitFor(10*time.Second, "the status to show the 503", func(ro v1alpha1.Rollout) bool {
		return strings.Contains(ro.Status.Message, "waiting before the switch to revision 2: gate approve (confirm-promotion) answered HTTP 503 Service Unavailable")
	})
	if ro.Status.Phase != v1alpha1.PhasePaused || len(recv.Calls("more")) != 1 {
		t.Fatalf("phase %s, confirm-traffic-increase asked %d times: %s", ro.Status.Phase, len(recv.Calls("more")), ro.Status.Message)
	}
	if got := models(t, s.Listen, 10, nil); got["v1"] != 10 {
		t.Fatalf("production traffic while the switch waits: %v", got)
	}
	if got := models(t, s.Preview, 5, nil); got["v2"] != 5 {
		t.Fatalf("the preview address while the switch waits: %v", got)
	}
	if c := recv.Calls("more")[0]; c.Weight != 100 || c.Revision != 2 {
		t.Fatalf("confirm-traffic-increase body %+v", c)
	}
	recv.Set("approve", 200)
	ro = r.waitPhase(v1alpha1.PhaseHealthy, 30*time.Second)
	if ro.Status.StableRevision != 2 || ro.Status.ActiveRevision != 2 {
		t.Fatalf("after 200: %+v", ro.Status)
	}
	if got := models(t, s.Listen, 10, nil); got["v2"] != 10 {
		t.Fatalf("after the switch: %v", got)
	}
}
