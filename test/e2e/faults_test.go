package e2e

import (
	"strings"
	"testing"
	"time"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/test/testkit"
)

// The five bad models of the chat team's note, each applied with the sample rollout.yaml as
// it ships (only the model's env changed) under 40 chats a second through ramp's proxy: each
// is stopped, by the canary's judge and rules or in the watch window after promotion, and all
// traffic is back on the good model within 60 s of the apply.
func TestSampleStopsEveryBadModel(t *testing.T) {
	for _, c := range []struct {
		name string
		env  []string
		// why lists the parts of the rollout's message that may say why it was stopped; one
		// must be there. A late first token also makes the whole answer late, and a leak slows
		// the process down, so on a loaded machine the judge may name latency first: that is
		// still the right reason, not a lucky stop.
		why []string
	}{
		{"triage fails at HTTP 200", []string{"CHAT_TRIAGE_FAIL_RATE", "0.4"}, []string{"triage"}},
		{"first token 1.5s late", []string{"CHAT_FIRST_TOKEN_DELAY", "1500ms"}, []string{"first-token", "latency"}},
		{"hangs", []string{"CHAT_HANG_RATE", "1"}, []string{"in flight"}},
		{"crashes after 20s", []string{"CHAT_CRASH_AFTER", "20s"}, []string{"exited unexpectedly"}},
		{"leaks memory", []string{"CHAT_LEAK", "512KiB"}, []string{"too much memory", "latency"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			listen := testkit.FreeAddr(t)
			r := startSample(t, listen)
			l := startLoad(t, listen, 40, nil)
			start := time.Now()
			r.writeText(sampleFile(t, listen, "triage-v2", c.env...))
			r.must("apply", "-f", r.specFile)
			ro := r.waitFor(60*time.Second, "the bad model stopped, revision 1 stable", func(ro v1alpha1.Rollout) bool {
				return ro.Status.Phase == v1alpha1.PhaseDegraded && ro.Status.StableRevision == 1
			})
			took := time.Since(start)
			if got := models(t, listen, 20, nil); got["triage-v1"] != 20 {
				t.Fatalf("after the stop: %v, want all 20 from triage-v1", got)
			}
			if took > 60*time.Second {
				t.Fatalf("traffic back on triage-v1 %s after the apply, want within 60s", took)
			}
			said := false
			for _, w := range c.why {
				said = said || strings.Contains(ro.Status.Message, w)
			}
			if !said {
				t.Errorf("message %q says none of %q", ro.Status.Message, c.why)
			}
			l.stop()
			byModel, failures := l.snapshot()
			window := ""
			if strings.Contains(ro.Status.Message, "watch window") {
				window = " (in the watch window)"
			}
			t.Logf("%s: stopped%s %s after the apply: %s; chats by model %v, %d failed or cut", c.name, window,
				took.Round(100*time.Millisecond), ro.Status.Message, byModel, len(failures))
		})
	}
}
