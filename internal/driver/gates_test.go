package driver

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/intstr"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/engine"
	"ramp.dev/ramp/internal/gate"
)

// gaterMode is fakeMode with a gate Caller.
type gaterMode struct {
	*fakeMode
	caller *gate.Caller
}

func (g gaterMode) Gates(r *v1alpha1.Rollout) (*gate.Caller, gate.Target) {
	return g.caller, gate.Target{Rollout: r.Name}
}

// The driver calls the webhook the decision asks for off the step, feeds its answer to the
// next decision, and calls a held gate again after its interval: a confirm-promotion gate
// that answers 500 holds the promotion until it answers 200.
func TestStepCallsGatesOffTheLoop(t *testing.T) {
	var mu sync.Mutex
	code := 500
	var bodies []gate.Body
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var b gate.Body
		_ = json.NewDecoder(r.Body).Decode(&b)
		mu.Lock()
		bodies = append(bodies, b)
		c := code
		mu.Unlock()
		w.WriteHeader(c)
	}))
	defer srv.Close()
	woken := make(chan struct{}, 8)
	m := gaterMode{fakeMode: newMode(t), caller: gate.NewCaller(srv.Client(), func(string, string) { woken <- struct{}{} })}
	t.Cleanup(m.caller.Close)
	ready := []engine.Instance{{ID: "a", Ready: true, ReadySince: t0.Add(-time.Hour)}}
	m.instances = map[int64][]engine.Instance{1: ready}
	r := newRollout()
	r.Spec.Strategy.Canary.Judge = &v1alpha1.CanaryJudge{Enabled: ptrTo(false)}
	iv := intstr.FromInt32(5)
	r.Spec.Webhooks = []v1alpha1.Webhook{{Name: "approve", Type: v1alpha1.WebhookConfirmPromotion, URL: srv.URL, Interval: &iv, Metadata: map[string]string{"k": "v"}}}
	step := func(now time.Time) Result {
		t.Helper()
		res, err := Step(context.Background(), m, r, now)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	wait := func() {
		t.Helper()
		select {
		case <-woken:
		case <-time.After(10 * time.Second):
			t.Fatal("the call's end woke nobody")
		}
	}
	step(t0)
	// Revision 2: its canary is ready at once; promotion waits for the gate.
	m.revision = 2
	r.Status.CurrentRevision = 2
	m.instances = map[int64][]engine.Instance{1: ready, 2: {{ID: "b", Ready: true, ReadySince: t0.Add(-time.Hour)}}}
	step(t0)
	if r.Status.Phase != v1alpha1.PhasePaused || !strings.Contains(r.Status.Message, "gate approve (confirm-promotion): asking") {
		t.Fatalf("%s: %s", r.Status.Phase, r.Status.Message)
	}
	wait()
	res := step(t0.Add(time.Second))
	if !strings.Contains(r.Status.Message, "gate approve (confirm-promotion) answered HTTP 500 Internal Server Error (asked 1 times, again every 5s)") || r.Status.StableRevision != 1 {
		t.Fatalf("%s: %s", r.Status.Phase, r.Status.Message)
	}
	if g := r.Status.Gates; len(g) != 1 || g[0].Phase != v1alpha1.GateFailed || g[0].Attempts != 1 {
		t.Fatalf("gates %+v", g)
	}
	// The next call is due one interval after the answer, not before.
	if res.Next.IsZero() || res.Next.After(r.Status.Gates[0].AnsweredAt.Add(5*time.Second)) {
		t.Fatalf("next %s, answered %s", res.Next, r.Status.Gates[0].AnsweredAt)
	}
	mu.Lock()
	n := len(bodies)
	code = 200
	mu.Unlock()
	if n != 1 {
		t.Fatalf("called %d times before the interval", n)
	}
	step(r.Status.Gates[0].AnsweredAt.Add(5 * time.Second))
	wait()
	step(r.Status.Gates[0].AnsweredAt.Add(6 * time.Second))
	if r.Status.Phase != v1alpha1.PhaseHealthy || r.Status.StableRevision != 2 {
		t.Fatalf("after 200: %s stable %d: %s", r.Status.Phase, r.Status.StableRevision, r.Status.Message)
	}
	mu.Lock()
	defer mu.Unlock()
	b := bodies[0]
	if b.Name != "approve" || b.Type != "confirm-promotion" || b.Rollout != "app" || b.Revision != 2 || b.Phase != "Paused" || b.Metadata["k"] != "v" {
		t.Fatalf("body %+v", b)
	}
	var reasons []string
	for _, e := range m.events {
		if strings.HasPrefix(e.Reason, "Gate") {
			reasons = append(reasons, e.Reason)
		}
	}
	if strings.Join(reasons, ",") != "GateFailed,GatePassed" {
		t.Fatalf("gate events %v", reasons)
	}
}

func ptrTo[T any](v T) *T { return &v }
