package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/test/testkit"
)

// sampleFile is examples/chat-api/rollout.yaml as it ships, with only what a test machine
// needs changed: the listen address (a free port), the chat-api binary's path, the model's
// name and the extra model env given as name, value pairs.
func sampleFile(t *testing.T, listen, model string, env ...string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "examples", "chat-api", "rollout.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	replace := func(old, new string) {
		t.Helper()
		if strings.Count(s, old) != 1 {
			t.Fatalf("the sample has %d %q, want 1", strings.Count(s, old), old)
		}
		s = strings.Replace(s, old, new, 1)
	}
	replace("listen: 127.0.0.1:8080", "listen: "+listen)
	replace("command: bin/chat-api", "command: "+chatBin)
	var extra strings.Builder
	extra.WriteString("        value: " + model + "\n")
	for i := 0; i+1 < len(env); i += 2 {
		extra.WriteString("      - name: " + env[i] + "\n        value: \"" + env[i+1] + "\"\n")
	}
	replace("        value: triage-v1\n", extra.String())
	return s
}

// startSample runs ramp up on the sample file with model v1 and waits until it is healthy.
func startSample(t *testing.T, listen string) *ramp {
	t.Helper()
	return startRampText(t, sampleFile(t, listen, "triage-v1"))
}

// waitNoPause waits for phase want, failing at once if the rollout pauses on the way.
func (r *ramp) waitNoPause(want v1alpha1.RolloutPhase, timeout time.Duration) v1alpha1.Rollout {
	r.t.Helper()
	return r.waitFor(timeout, "phase "+string(want)+" with no pause", func(ro v1alpha1.Rollout) bool {
		if ro.Status.Phase == v1alpha1.PhasePaused || len(ro.Status.PauseConditions) > 0 {
			r.t.Fatalf("the rollout paused for a human: %s (%+v)", ro.Status.Message, ro.Status.PauseConditions)
		}
		return ro.Status.Phase == want
	})
}

func TestSampleRolloutPromotesAHealthyModelWithNoHumanStep(t *testing.T) {
	// Given the sample rollout as it ships, with triage-v1 under 40 chats a second
	listen := testkit.FreeAddr(t)
	r := startSample(t, listen)
	l := startLoad(t, listen, 40, nil)
	// When a healthy triage-v2 is applied
	start := time.Now()
	r.writeText(sampleFile(t, listen, "triage-v2"))
	r.must("apply", "-f", r.specFile)
	// Then it goes from 5% to 100% with no human step: the analysis after the 5% step
	// waits for enough canary requests instead of pausing on its first look
	ro := r.waitNoPause(v1alpha1.PhaseHealthy, 90*time.Second)
	took := time.Since(start)
	if ro.Status.StableRevision != 2 {
		t.Fatalf("stable revision %d, want 2: %s", ro.Status.StableRevision, ro.Status.Message)
	}
	for _, a := range ro.Status.Analysis {
		if a.Kind == v1alpha1.AnalysisKindStep && a.Phase != v1alpha1.AnalysisSuccessful {
			t.Fatalf("analysis %s is %s: %s", a.Name, a.Phase, a.Message)
		}
	}
	t.Logf("promoted %s after apply", took.Round(time.Millisecond))
	assertNoFailures(t, l, "triage-v1", "triage-v2")
}

func TestSampleRolloutAbortsAModelThatFailsTriageAtHTTP200(t *testing.T) {
	// Given the sample rollout as it ships, with triage-v1 under 40 chats a second
	listen := testkit.FreeAddr(t)
	r := startSample(t, listen)
	l := startLoad(t, listen, 40, nil)
	// When triage-v2 answers every chat with 200 but fails 40% of its triage answers
	start := time.Now()
	r.writeText(sampleFile(t, listen, "triage-v2", "CHAT_TRIAGE_FAIL_RATE", "0.4"))
	r.must("apply", "-f", r.specFile)
	// Then it is aborted on the triage metric, with no human step, and all traffic is back
	// on triage-v1 within 60 s
	ro := r.waitNoPause(v1alpha1.PhaseDegraded, 60*time.Second)
	took := time.Since(start)
	if !ro.Status.Abort || ro.Status.StableRevision != 1 || !strings.Contains(ro.Status.Message, "triage") {
		t.Fatalf("after abort: stable %d, abort %v, message %q: want an abort on triage", ro.Status.StableRevision, ro.Status.Abort, ro.Status.Message)
	}
	l.stop()
	if got := models(t, listen, 20, nil); got["triage-v1"] != 20 {
		t.Fatalf("after the abort, 20 chats were answered by %v, want all by triage-v1", got)
	}
	t.Logf("aborted %s after apply: %s", took.Round(time.Millisecond), ro.Status.Message)
	assertNoFailures(t, l, "triage-v1")
}
