package e2e

import (
	"strings"
	"testing"
	"time"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/test/testkit"
)

// A canary with no analysis of its own: only the judge (on by default) watches it.
const judgeOnlySteps = `    canary:
      steps:
      - setWeight: 20
      - pause: {duration: 60s}
      - setWeight: 50
      - pause: {duration: 60s}
`

func TestJudgeAbortsABadVersionWithoutAnyAnalysisTemplate(t *testing.T) {
	// Given a canary rollout of a healthy v1 under load, with no analysis steps
	s := spec{Listen: testkit.FreeAddr(t), Strategy: judgeOnlySteps}
	r := startRamp(t, model(s, "v1"))
	l := startLoad(t, s.Listen, 200, nil)
	defer l.stop()
	// When v2 answers 20% of its requests with 500
	start := time.Now()
	r.apply(model(s, "v2", "CHAT_ERROR_RATE", "0.2"))
	// Then the judge aborts it within seconds, well inside the first 60 s pause, and says why
	ro := r.waitPhase(v1alpha1.PhaseDegraded, 20*time.Second)
	took := time.Since(start)
	for _, want := range []string{"analysis judge-2 failed", "error-rate: canary worse than stable", "errors in", "log Bayes factor", "log(1/α)"} {
		if !strings.Contains(ro.Status.Message, want) {
			t.Fatalf("abort message lacks %q: %s", want, ro.Status.Message)
		}
	}
	if !ro.Status.Abort || ro.Status.StableRevision != 1 {
		t.Fatalf("after abort: %+v", ro.Status)
	}
	t.Logf("aborted %s after apply: %s", took.Round(time.Millisecond), ro.Status.Message)
	events := r.must("events", "chat-api")
	if !strings.Contains(events, "AnalysisFailed") || !strings.Contains(events, "canary worse than stable") {
		t.Fatalf("events do not explain the abort:\n%s", events)
	}
}

// A step analysis that would take 60 s on its own.
const longAnalysis = `---
apiVersion: ramp.dev/v1alpha1
kind: AnalysisTemplate
metadata:
  name: slow-check
spec:
  metrics:
  - name: error-rate
    initialDelay: 1s
    interval: 1s
    count: 60
    successCondition: result < 0.2
    provider:
      builtin:
        metric: error-rate
`

func TestJudgeEndsTheAnalysisStepOfAHealthyVersionEarly(t *testing.T) {
	// Given a canary whose analysis step runs 60 measurements a second apart, and a judge of
	// the error rate that tolerates a ratio of 3. Both versions fail 5% of requests, so the
	// judge has errors to compare (with none on either side it can show nothing); latency and
	// ttfb are left out because they reach "no worse" slowly on a loaded machine, and the
	// judge's unit tests cover them.
	s := spec{Listen: testkit.FreeAddr(t), Extra: longAnalysis, Strategy: `    canary:
      judge: {maxRatio: 3, metrics: [error-rate]}
      steps:
      - setWeight: 50
      - analysis:
          templates:
          - templateName: slow-check
`}
	r := startRamp(t, model(s, "v1", "CHAT_ERROR_RATE", "0.05"))
	l := startLoad(t, s.Listen, 200, nil)
	// When an equally good v2 is applied
	start := time.Now()
	r.apply(model(s, "v2", "CHAT_ERROR_RATE", "0.05"))
	// Then it is promoted long before the 60 s the analysis would take
	ro := r.waitPhase(v1alpha1.PhaseHealthy, 45*time.Second)
	took := time.Since(start)
	if ro.Status.StableRevision != 2 {
		t.Fatalf("stable %d, want 2: %s", ro.Status.StableRevision, ro.Status.Message)
	}
	var step *v1alpha1.AnalysisRunStatus
	for i := range ro.Status.Analysis {
		if ro.Status.Analysis[i].Kind == v1alpha1.AnalysisKindStep {
			step = &ro.Status.Analysis[i]
		}
	}
	if step == nil || step.Phase != v1alpha1.AnalysisSuccessful || !strings.Contains(step.Message, "ended early by the judge") {
		t.Fatalf("step analysis %+v, want Successful and ended early by the judge", step)
	}
	if took > 45*time.Second {
		t.Fatalf("promotion took %s", took)
	}
	events := r.must("events", "chat-api")
	if !strings.Contains(events, "AnalysisEndedEarly") || !strings.Contains(events, "no worse than stable") {
		t.Fatalf("events do not say the step ended early:\n%s", events)
	}
	t.Logf("promoted %s after apply: %s\n%s", took.Round(time.Millisecond), step.Message, events)
	l.stop()
	if byModel, _ := l.snapshot(); byModel["v2"] == 0 {
		t.Fatalf("v2 answered no request: %v", byModel)
	}
}

func TestJudgeAbortsAVersionThatFailsTriageAtHTTP200(t *testing.T) {
	// Given a canary rollout of v1, which fails 2% of its triage answers, under load, with a
	// judge that also reads the instances' own chat_triage_total
	s := spec{Listen: testkit.FreeAddr(t), Strategy: `    canary:
      judge:
        business:
        - name: triage
          metric: chat_triage_total
          events: {outcome: failed}
      steps:
      - setWeight: 20
      - pause: {duration: 60s}
      - setWeight: 50
      - pause: {duration: 60s}
`}
	r := startRamp(t, model(s, "v1", "CHAT_TRIAGE_FAIL_RATE", "0.02"))
	l := startLoad(t, s.Listen, 200, nil)
	// When v2 answers every request with 200 but fails triage half of the time
	start := time.Now()
	r.apply(model(s, "v2", "CHAT_TRIAGE_FAIL_RATE", "0.5"))
	// Then the judge aborts it within seconds, naming the triage metric and its counts
	ro := r.waitPhase(v1alpha1.PhaseDegraded, 20*time.Second)
	took := time.Since(start)
	for _, want := range []string{"analysis judge-2 failed", "triage: canary worse than stable", `chat_triage_total{outcome="failed"} in`, "log Bayes factor"} {
		if !strings.Contains(ro.Status.Message, want) {
			t.Fatalf("abort message lacks %q: %s", want, ro.Status.Message)
		}
	}
	if !ro.Status.Abort || ro.Status.StableRevision != 1 {
		t.Fatalf("after abort: %+v", ro.Status)
	}
	if took > 15*time.Second {
		t.Fatalf("abort took %s, want at most 15s", took)
	}
	t.Logf("aborted %s after apply: %s", took.Round(time.Millisecond), ro.Status.Message)
	// No request failed at the HTTP level: only the business metric could tell.
	assertNoFailures(t, l, "v1", "v2")
}

func TestJudgeEndsTheAnalysisStepEarlyOnTriageAnswers(t *testing.T) {
	// Given a canary judged on errors and on failed triage answers only, whose analysis step
	// would take 60 s, and a v1 that fails 10% of its triage answers
	s := spec{Listen: testkit.FreeAddr(t), Extra: longAnalysis, Strategy: `    canary:
      judge:
        maxRatio: 3
        metrics: [error-rate]
        business:
        - {name: triage, metric: chat_triage_total, events: {outcome: failed}}
      steps:
      - setWeight: 50
      - analysis:
          templates:
          - templateName: slow-check
`}
	r := startRamp(t, model(s, "v1", "CHAT_TRIAGE_FAIL_RATE", "0.1"))
	l := startLoad(t, s.Listen, 200, nil)
	// When a v2 that fails triage as often is applied
	start := time.Now()
	r.apply(model(s, "v2", "CHAT_TRIAGE_FAIL_RATE", "0.1"))
	// Then the judge shows it no worse on the triage answers and ends the step early
	ro := r.waitPhase(v1alpha1.PhaseHealthy, 45*time.Second)
	took := time.Since(start)
	var step *v1alpha1.AnalysisRunStatus
	for i := range ro.Status.Analysis {
		if ro.Status.Analysis[i].Kind == v1alpha1.AnalysisKindStep {
			step = &ro.Status.Analysis[i]
		}
	}
	if ro.Status.StableRevision != 2 || step == nil || step.Phase != v1alpha1.AnalysisSuccessful ||
		!strings.Contains(step.Message, "ended early by the judge") || !strings.Contains(step.Message, "triage: canary no worse than stable") {
		t.Fatalf("stable %d, step analysis %+v: want v2 promoted, the step ended early by the judge on triage", ro.Status.StableRevision, step)
	}
	t.Logf("promoted %s after apply: %s", took.Round(time.Millisecond), step.Message)
	assertNoFailures(t, l, "v1", "v2")
}

func TestJudgeAbortsAVersionWhoseFirstTokenIsLate(t *testing.T) {
	// Given a canary rollout of v1 under chat load, judged on the first token only (so that
	// the total time, which rises too, cannot be what stops it)
	s := spec{Listen: testkit.FreeAddr(t), Strategy: `    canary:
      judge: {metrics: [first-token]}
      steps:
      - setWeight: 20
      - pause: {duration: 60s}
      - setWeight: 50
      - pause: {duration: 60s}
`}
	r := startRamp(t, model(s, "v1"))
	l := startLoad(t, s.Listen, 40, nil)
	// When v2 sends its headers at once but its first token 1.5 s late
	start := time.Now()
	r.apply(model(s, "v2", "CHAT_FIRST_TOKEN_DELAY", "1500ms"))
	// Then the judge aborts it on the first token, within seconds
	ro := r.waitPhase(v1alpha1.PhaseDegraded, 30*time.Second)
	took := time.Since(start)
	if !strings.Contains(ro.Status.Message, "first-token over") || !strings.Contains(ro.Status.Message, "canary worse than stable") {
		t.Fatalf("abort message does not name the first token: %s", ro.Status.Message)
	}
	if !ro.Status.Abort || ro.Status.StableRevision != 1 {
		t.Fatalf("after abort: %+v", ro.Status)
	}
	t.Logf("aborted %s after apply: %s", took.Round(time.Millisecond), ro.Status.Message)
	// Slow is not failed: every request was answered.
	assertNoFailures(t, l, "v1", "v2")
}

func TestJudgeAbortsAHangingVersionBeforeItsRequestsEnd(t *testing.T) {
	// Given a canary rollout of v1 under chat load, with the judge's defaults
	s := spec{Listen: testkit.FreeAddr(t), Strategy: judgeOnlySteps}
	r := startRamp(t, model(s, "v1"))
	l := startLoad(t, s.Listen, 40, nil)
	defer l.stop()
	// When v2 accepts requests and never answers them (its health check is fine)
	start := time.Now()
	r.apply(model(s, "v2", "CHAT_LATENCY", "10m", "CHAT_SHUTDOWN_TIMEOUT", "1s"))
	// Then the judge aborts it on the requests in flight, long before the clients' 30 s
	// timeout ends any of them
	ro := r.waitPhase(v1alpha1.PhaseDegraded, 25*time.Second)
	took := time.Since(start)
	if !strings.Contains(ro.Status.Message, "canary worse than stable") || !strings.Contains(ro.Status.Message, "still in flight") {
		t.Fatalf("abort message does not say it counted requests in flight: %s", ro.Status.Message)
	}
	if !ro.Status.Abort || ro.Status.StableRevision != 1 {
		t.Fatalf("after abort: %+v", ro.Status)
	}
	if took > 20*time.Second {
		t.Fatalf("abort took %s, want under 20s", took)
	}
	t.Logf("aborted %s after apply: %s", took.Round(time.Millisecond), ro.Status.Message)
}
