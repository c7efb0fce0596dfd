package e2e

import (
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/test/testkit"
)

const canarySteps = `    canary:
      trafficRouting:
        managedRoutes:
        - name: canary-header
      steps:
      - setHeaderRoute:
          name: canary-header
          match:
          - headerName: x-version
            headerValue:
              exact: canary
      - setWeight: 20
      - pause: {duration: 1s}
      - setWeight: 50
      - analysis:
          templates:
          - templateName: error-rate
      - setWeight: 80
      - pause: {duration: 1s}
`

func model(s spec, m string, extra ...string) spec {
	s.Env = map[string]string{"CHAT_MODEL": m}
	for i := 0; i+1 < len(extra); i += 2 {
		s.Env[extra[i]] = extra[i+1]
	}
	return s
}

// assertNoFailures checks the load saw only successful answers, from the wanted models.
func assertNoFailures(t *testing.T, l *load, want ...string) map[string]int {
	t.Helper()
	l.stop()
	byModel, failures := l.snapshot()
	if len(failures) > 0 {
		t.Fatalf("%d of %d requests failed during the rollout; first: %s", len(failures), l.total.Load(), failures[0])
	}
	for _, m := range want {
		if byModel[m] == 0 {
			t.Fatalf("no request answered by %s: %v", m, byModel)
		}
	}
	t.Logf("requests by model: %v (0 failed)", byModel)
	return byModel
}

func TestEachStrategyCompletesWithZeroFailedRequests(t *testing.T) {
	// A short watch window, so that the old instances stop within the test.
	strategies := map[string]string{
		"canary": canarySteps + "      scaleDownDelaySeconds: 2\n",
		"blueGreen": `    blueGreen:
      scaleDownDelaySeconds: 2
`,
		"rollingUpdate": `    rollingUpdate:
      maxSurge: 1
      maxUnavailable: 0
      scaleDownDelaySeconds: 2
`,
	}
	for name, strategy := range strategies {
		t.Run(name, func(t *testing.T) {
			// Given ramp serving v1 under constant load
			s := spec{Listen: testkit.FreeAddr(t), Strategy: strategy, Replicas: 3}
			r := startRamp(t, model(s, "v1"))
			l := startLoad(t, s.Listen, 200, nil)
			// When v2 is applied
			out := r.apply(model(s, "v2"))
			if !strings.Contains(out, "rollout/chat-api configured (new revision 2)") {
				t.Fatalf("apply said: %s", out)
			}
			// Then `ramp status` waits and exits 0, the rollout is Healthy on revision 2
			status, code := r.cli("status", "chat-api", "--timeout", "90s")
			if code != 0 {
				t.Fatalf("ramp status exit %d, want 0:\n%s", code, status)
			}
			ro := r.get()
			if ro.Status.Phase != v1alpha1.PhaseHealthy || ro.Status.StableRevision != 2 {
				t.Fatalf("after status: %s stable %d (%s)", ro.Status.Phase, ro.Status.StableRevision, ro.Status.Message)
			}
			// And no client request failed, and the new model answers everything now
			waitFor(t, 10*time.Second, "old instances to stop", func() (bool, string) {
				ro := r.get()
				return len(ro.Status.Revisions) == 1, "revisions " + str(ro.Status.Revisions)
			})
			assertNoFailures(t, l, "v1", "v2")
			if got := models(t, s.Listen, 20, nil); got["v2"] != 20 {
				t.Fatalf("after the rollout: %v, want all from v2", got)
			}
		})
	}
}

func str(v any) string { return fmt.Sprint(v) }

func TestBadVersionIsAbortedByAnalysis(t *testing.T) {
	// Given a canary rollout of a healthy v1 under load, judged by its analysis template alone
	// (judge_test.go covers the judge)
	s := spec{Listen: testkit.FreeAddr(t), Strategy: canarySteps + "      judge: {enabled: false}\n"}
	r := startRamp(t, model(s, "v1"))
	l := startLoad(t, s.Listen, 200, nil)
	// When v2 answers half its requests with 500
	r.apply(model(s, "v2", "CHAT_ERROR_RATE", "0.5"))
	// Then `ramp status` exits 1 and says analysis failed
	start := time.Now()
	out, code := r.cli("status", "chat-api", "--timeout", "90s")
	if code != 1 || !strings.Contains(out, `analysis step-2-step4 failed: metric "error-rate" failed`) {
		t.Fatalf("ramp status exit %d, want 1 naming the analysis and the metric:\n%s", code, out)
	}
	ro := r.get()
	if ro.Status.Phase != v1alpha1.PhaseDegraded || !ro.Status.Abort || ro.Status.StableRevision != 1 {
		t.Fatalf("after abort: %+v", ro.Status)
	}
	t.Logf("aborted %s after status started: %s", time.Since(start).Round(time.Millisecond), ro.Status.Message)
	// And traffic is back on stable within seconds
	l.stop()
	waitFor(t, 5*time.Second, "all traffic on v1", func() (bool, string) {
		got := models(t, s.Listen, 30, nil)
		return got["v1"] == 30, str(got)
	})
	for _, rv := range ro.Status.Revisions {
		if rv.Revision == 2 && (rv.Weight != 0 || rv.Desired != 0) {
			t.Fatalf("canary still has weight or instances: %+v", rv)
		}
	}
}

func TestUnreadyOrCrashingVersionNeverGetsTraffic(t *testing.T) {
	cases := []struct {
		name     string
		env      []string
		deadline int
		why      string
	}{
		{"fails readiness", []string{"CHAT_FAIL_READINESS", "true"}, 5, "made no progress for 5s: 0/1 instances ready; instance chat-api-r2-1: readiness probe GET /healthz: 503"},
		// It crashes while loading its model, before it is ever ready; the deadline is far. Its
		// first exit aborts it (stable's instances had none), before it could crash-loop.
		{"crashes", []string{"CHAT_STARTUP_DELAY", "10s", "CHAT_CRASH_AFTER", "300ms"}, 60, "revision 2 exited unexpectedly: instance chat-api-r2-1 exited with status 3"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// Given a healthy v1 under load
			s := spec{Listen: testkit.FreeAddr(t), Strategy: canarySteps, Deadline: tc.deadline}
			r := startRamp(t, model(s, "v1"))
			l := startLoad(t, s.Listen, 100, nil)
			// When v2 fails
			r.apply(model(s, "v2", tc.env...))
			// Then the rollout degrades, saying why
			out, code := r.cli("status", "chat-api", "--timeout", "60s")
			if code != 1 || !strings.Contains(out, tc.why) {
				t.Fatalf("ramp status exit %d, want 1 with %q:\n%s", code, tc.why, out)
			}
			// And v2 never answered a request
			byModel := assertNoFailures(t, l, "v1")
			if byModel["v2"] != 0 {
				t.Fatalf("v2 answered %d requests", byModel["v2"])
			}
		})
	}
}

func TestHeaderRouteAndPreviewAddress(t *testing.T) {
	t.Run("x-version: canary reaches the canary", func(t *testing.T) {
		s := spec{Listen: testkit.FreeAddr(t), Strategy: `    canary:
      trafficRouting:
        managedRoutes:
        - name: canary-header
      steps:
      - setHeaderRoute:
          name: canary-header
          match:
          - headerName: x-version
            headerValue:
              exact: canary
      - pause: {}
`}
		r := startRamp(t, model(s, "v1"))
		r.apply(model(s, "v2"))
		r.waitFor(30*time.Second, "paused with a ready canary", func(ro v1alpha1.Rollout) bool {
			return ro.Status.Phase == v1alpha1.PhasePaused && readyOf(ro, 2) == 1
		})
		if got := models(t, s.Listen, 20, http.Header{"X-Version": {"canary"}}); got["v2"] != 20 {
			t.Fatalf("with x-version: canary: %v, want all v2", got)
		}
		if got := models(t, s.Listen, 20, nil); got["v1"] != 20 {
			t.Fatalf("without the header: %v, want all v1 (canary weight is 0)", got)
		}
	})
	t.Run("the preview address reaches the new version", func(t *testing.T) {
		preview := testkit.FreeAddr(t)
		s := spec{Listen: testkit.FreeAddr(t), Strategy: `    blueGreen:
      previewListen: ` + preview + `
      autoPromotionEnabled: false
`}
		r := startRamp(t, model(s, "v1"))
		r.apply(model(s, "v2"))
		r.waitPhase(v1alpha1.PhasePaused, 30*time.Second)
		if got := models(t, preview, 20, nil); got["v2"] != 20 {
			t.Fatalf("preview address: %v, want all v2", got)
		}
		if got := models(t, s.Listen, 20, nil); got["v1"] != 20 {
			t.Fatalf("main address before the switch: %v, want all v1", got)
		}
		r.must("promote", "chat-api")
		r.waitPhase(v1alpha1.PhaseHealthy, 30*time.Second)
		if got := models(t, s.Listen, 20, nil); got["v2"] != 20 {
			t.Fatalf("main address after promote: %v, want all v2", got)
		}
	})
}

const pausedCanary = `    canary:
      steps:
      - setWeight: 25
      - pause: {}
      - setWeight: 50
      - pause: {}
`

func TestUserCommands(t *testing.T) {
	s := spec{Listen: testkit.FreeAddr(t), Strategy: pausedCanary}
	r := startRamp(t, model(s, "v1"))
	stepIs := func(i int32) func(v1alpha1.Rollout) bool {
		return func(ro v1alpha1.Rollout) bool {
			return ro.Status.CurrentStepIndex != nil && *ro.Status.CurrentStepIndex == i && ro.Status.Phase == v1alpha1.PhasePaused
		}
	}

	// promote ends an indefinite pause, one step at a time
	r.apply(model(s, "v2"))
	ro := r.waitFor(30*time.Second, "step 1 paused", stepIs(1))
	if ro.Status.CanaryWeight != 25 || ro.Status.CanaryRevision != 2 {
		t.Fatalf("at step 1: %+v", ro.Status)
	}
	r.must("promote", "chat-api")
	r.waitFor(30*time.Second, "step 3 paused", stepIs(3))

	// pause holds the rollout where it is; resume lets it go on
	r.must("pause", "chat-api")
	r.must("promote", "chat-api")
	ro = r.waitFor(10*time.Second, "paused by user", func(ro v1alpha1.Rollout) bool {
		return strings.Contains(ro.Status.Message, "paused by user")
	})
	if *ro.Status.CurrentStepIndex != 3 {
		t.Fatalf("a paused rollout moved: %+v", ro.Status)
	}
	r.must("resume", "chat-api")
	r.waitPhase(v1alpha1.PhaseHealthy, 30*time.Second)

	// abort sends traffic back to stable and keeps the spec; retry runs it again
	r.apply(model(s, "v3"))
	r.waitFor(30*time.Second, "v3 at step 1", stepIs(1))
	r.must("abort", "chat-api")
	ro = r.waitPhase(v1alpha1.PhaseDegraded, 10*time.Second)
	if ro.Status.StableRevision != 2 || ro.Status.CurrentRevision != 3 {
		t.Fatalf("after abort: %+v", ro.Status)
	}
	if got := models(t, s.Listen, 20, nil); got["v2"] != 20 {
		t.Fatalf("after abort: %v, want all v2", got)
	}
	r.must("retry", "chat-api")
	r.waitFor(30*time.Second, "v3 at step 1 again", stepIs(1))

	// promote --full skips every remaining step
	r.must("promote", "chat-api", "--full")
	ro = r.waitPhase(v1alpha1.PhaseHealthy, 30*time.Second)
	if ro.Status.StableRevision != 3 {
		t.Fatalf("after promote --full: %+v", ro.Status)
	}

	// undo inside the watch window after the promotion goes back to revision 2's instances,
	// still running: no new revision, nothing rolls out
	out := r.must("undo", "chat-api")
	if !strings.Contains(out, "switched back to revision 2") {
		t.Fatalf("undo said: %s", out)
	}
	ro = r.waitPhase(v1alpha1.PhaseHealthy, 10*time.Second)
	if ro.Status.StableRevision != 2 || ro.Status.CurrentRevision != 2 {
		t.Fatalf("after undo in the watch window: %+v", ro.Status)
	}
	if got := models(t, s.Listen, 20, nil); got["v2"] != 20 {
		t.Fatalf("after undo: %v, want all v2", got)
	}
	// undo --to-revision picks any kept revision; one whose instances are gone rolls forward
	// to its template as a new revision
	out = r.must("undo", "chat-api", "--to-revision", "1")
	if !strings.Contains(out, "revision 4") {
		t.Fatalf("undo --to-revision 1 said: %s", out)
	}
	r.must("promote", "chat-api", "--full")
	r.waitFor(30*time.Second, "revision 4 stable", func(ro v1alpha1.Rollout) bool {
		return ro.Status.StableRevision == 4 && ro.Status.Phase == v1alpha1.PhaseHealthy
	})
	if got := models(t, s.Listen, 20, nil); got["v1"] != 20 {
		t.Fatalf("after undo --to-revision 1: %v, want all v1", got)
	}

	// history lists every revision and what made it
	hist := r.must("history", "chat-api")
	for _, want := range []string{"1", "2", "3", "4", "undo to revision 1"} {
		if !strings.Contains(hist, want) {
			t.Fatalf("history lacks %q:\n%s", want, hist)
		}
	}
	// commands that do not fit the state are refused with a reason
	out, code := r.cli("promote", "chat-api")
	if code == 0 || !strings.Contains(out, "no revision is rolling out") {
		t.Fatalf("promote on a healthy rollout: exit %d: %s", code, out)
	}
}

func TestKill9MidRolloutResumes(t *testing.T) {
	// Given a canary paused at step 1 of v2
	s := spec{Listen: testkit.FreeAddr(t), Strategy: pausedCanary}
	r := startRamp(t, model(s, "v1"))
	r.apply(model(s, "v2"))
	r.waitFor(30*time.Second, "step 1", func(ro v1alpha1.Rollout) bool {
		return ro.Status.Phase == v1alpha1.PhasePaused && ro.Status.CurrentStepIndex != nil && *ro.Status.CurrentStepIndex == 1
	})
	histBefore := r.must("history", "chat-api")
	eventsBefore := r.must("events", "chat-api")

	// When ramp is killed with SIGKILL and started again with the same file
	r.kill9()
	r.up("-f", r.specFile)

	// Then the rollout is where it was, with every revision and event kept
	ro := r.waitFor(30*time.Second, "stable and canary ready again", func(ro v1alpha1.Rollout) bool {
		return readyOf(ro, 1) == 2 && readyOf(ro, 2) >= 1 && ro.Status.Phase == v1alpha1.PhasePaused
	})
	if *ro.Status.CurrentStepIndex != 1 || ro.Status.CanaryWeight != 25 || ro.Status.StableRevision != 1 {
		t.Fatalf("after restart: %+v", ro.Status)
	}
	if h := r.must("history", "chat-api"); h != histBefore {
		t.Fatalf("history changed across kill -9:\nbefore:\n%s\nafter:\n%s", histBefore, h)
	}
	eventsAfter := r.must("events", "chat-api")
	if !strings.HasPrefix(eventsAfter, strings.TrimRight(eventsBefore, "\n")) {
		t.Fatalf("events lost across kill -9:\nbefore:\n%s\nafter:\n%s", eventsBefore, eventsAfter)
	}
	// And the rollout goes on to the end
	got := models(t, s.Listen, 40, nil)
	if got["v1"]+got["v2"] != 40 || got["v2"] == 0 {
		t.Fatalf("traffic after restart: %v, want v1 and v2", got)
	}
	r.must("promote", "chat-api", "--full")
	r.waitPhase(v1alpha1.PhaseHealthy, 30*time.Second)
}

// readyOf is the number of ready instances of revision rev.
func readyOf(ro v1alpha1.Rollout, rev int64) int32 {
	for _, rv := range ro.Status.Revisions {
		if rv.Revision == rev {
			return rv.Ready
		}
	}
	return 0
}

func TestInvalidSpecsAreRefusedAndChangeNothing(t *testing.T) {
	s := spec{Listen: testkit.FreeAddr(t), Strategy: pausedCanary}
	r := startRamp(t, model(s, "v1"))
	bad := strings.NewReplacer(
		"replicas: 2", "replicas: -1",
		"setWeight: 25", "setWeight: 150",
		"progressDeadlineSeconds: 15", "progressDeadlineSeconds: 0",
	).Replace(model(s, "v2").yaml())
	file := r.stateDir + "/bad.yaml"
	if err := os.WriteFile(file, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	wantProblems := []string{
		"spec.replicas: -1",
		"spec.strategy.canary.steps[0].setWeight: 150 is not between 0 and 100",
		"spec.progressDeadlineSeconds: 0",
	}
	// lint reports every problem at once, offline
	out, code := r.cli("lint", "-f", file)
	if code != 1 {
		t.Fatalf("lint exit %d, want 1:\n%s", code, out)
	}
	for _, p := range wantProblems {
		if !strings.Contains(out, p) {
			t.Fatalf("lint output lacks %q:\n%s", p, out)
		}
	}
	// apply refuses the same problems, and the rollout is unchanged
	hist := r.must("history", "chat-api")
	out, code = r.cli("apply", "-f", file)
	if code != 1 {
		t.Fatalf("apply exit %d, want 1:\n%s", code, out)
	}
	for _, p := range wantProblems {
		if !strings.Contains(out, p) {
			t.Fatalf("apply output lacks %q:\n%s", p, out)
		}
	}
	// a template that does not exist and a taken address are refused too
	taken := r.get().Spec.Listen
	other := spec{Listen: taken, Strategy: strings.ReplaceAll(canarySteps, "error-rate", "no-such-template")}
	otherYAML := strings.Replace(model(other, "v1").yaml(), "name: chat-api\n", "name: other-api\n", 1)
	otherYAML = otherYAML[strings.Index(otherYAML, "---"):]
	if err := os.WriteFile(file, []byte(otherYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	out, code = r.cli("apply", "-f", file)
	if code != 1 || !strings.Contains(out, "no-such-template") {
		t.Fatalf("apply with an unknown template: exit %d:\n%s", code, out)
	}
	if h := r.must("history", "chat-api"); h != hist {
		t.Fatalf("a refused apply changed history:\nbefore:\n%s\nafter:\n%s", hist, h)
	}
	if out, _ := r.cli("get", "other-api"); !strings.Contains(out, "not found") {
		t.Fatalf("a refused apply created other-api:\n%s", out)
	}
	if ro := r.get(); ro.Status.Phase != v1alpha1.PhaseHealthy || ro.Status.CurrentRevision != 1 {
		t.Fatalf("after refused applies: %+v", ro.Status)
	}
}
