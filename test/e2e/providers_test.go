package e2e

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/test/testkit"
)

// smokeTemplate runs a smoke test against the preview (a command metric, in bash: a GET of
// /healthz through the preview address) and reads the preview instances' own /metrics (a
// scrape metric).
const smokeTemplate = `---
apiVersion: ramp.dev/v1alpha1
kind: AnalysisTemplate
metadata:
  name: smoke
spec:
  metrics:
  - name: smoke
    provider:
      command:
        command: bash
        args:
        - -c
        - |
          set -e
          echo "role=$RAMP_ROLE revision=$RAMP_REVISION addr=$RAMP_ADDR preview=$RAMP_PREVIEW_ADDR instances=$RAMP_INSTANCES"
          test "$RAMP_ROLLOUT/$RAMP_ROLE/$RAMP_REVISION/$RAMP_BASELINE_REVISION" = chat-api/preview/2/1
          test -n "$RAMP_INSTANCES" && test -n "$RAMP_ADDR"
          exec 3<>"/dev/tcp/${RAMP_PREVIEW_ADDR%:*}/${RAMP_PREVIEW_ADDR##*:}"
          printf 'GET /healthz HTTP/1.0\r\n\r\n' >&3
          head -1 <&3 | grep -q ' 200 '
  - name: triage-answers
    successCondition: result >= 0
    provider:
      scrape:
        metric: chat_triage_total
`

func TestCommandAndScrapeProvidersJudgeThePreview(t *testing.T) {
	// Given a blue-green rollout of v1 with a preview address
	preview := testkit.FreeAddr(t)
	s := spec{Listen: testkit.FreeAddr(t), Strategy: `    blueGreen:
      previewListen: ` + preview + `
`}
	r := startRamp(t, model(s, "v1"))

	// When v2 is applied with a pre-promotion analysis of a smoke test and a scrape metric
	s.Strategy += `      prePromotionAnalysis:
        templates:
        - templateName: smoke
`
	file := r.stateDir + "/smoke.yaml"
	if err := os.WriteFile(file, []byte(model(s, "v2").yaml()+smokeTemplate), 0o600); err != nil {
		t.Fatal(err)
	}
	r.must("apply", "-f", file)

	// Then both metrics pass on the preview and v2 is promoted
	ro := r.waitFor(60*time.Second, "v2 promoted", func(ro v1alpha1.Rollout) bool {
		return ro.Status.Phase == v1alpha1.PhaseHealthy && ro.Status.StableRevision == 2 || ro.Status.Phase == v1alpha1.PhaseDegraded
	})
	if ro.Status.Phase != v1alpha1.PhaseHealthy {
		t.Fatalf("rollout %s: %s\nanalysis: %+v", ro.Status.Phase, ro.Status.Message, ro.Status.Analysis)
	}
	var run *v1alpha1.AnalysisRunStatus
	for i := range ro.Status.Analysis {
		if ro.Status.Analysis[i].Kind == v1alpha1.AnalysisKindPrePromote {
			run = &ro.Status.Analysis[i]
		}
	}
	if run == nil || run.Phase != v1alpha1.AnalysisSuccessful || len(run.Metrics) != 2 {
		t.Fatalf("pre-promotion run: %+v", run)
	}
	for _, m := range run.Metrics {
		if m.Phase != v1alpha1.AnalysisSuccessful || len(m.Measurements) != 1 {
			t.Fatalf("metric %s: %+v", m.Name, m)
		}
	}
	if v := run.Metrics[0].Measurements[0].Value; !strings.HasPrefix(v, "1 (exit status 0 in ") {
		t.Errorf("smoke value %q", v)
	}
	if v := run.Metrics[1].Measurements[0].Value; !strings.Contains(v, "chat_triage_total over 2 instances") {
		t.Errorf("scrape value %q, want the preview's 2 instances read", v)
	}
	t.Logf("smoke: %s; triage-answers: %s", run.Metrics[0].Measurements[0].Value, run.Metrics[1].Measurements[0].Value)
	// And ramp get shows the run
	if out := r.must("get", "chat-api"); !strings.Contains(out, "ANALYSIS") || !strings.Contains(out, "triage-answers") {
		t.Errorf("ramp get lacks the analysis:\n%s", out)
	}

	// A job metric needs Kubernetes mode: local mode refuses it.
	job := strings.Replace(smokeTemplate, "      command:\n        command: bash\n", "      job:\n        image: chat-api-tests\n        command: [bash]\n", 1)
	if err := os.WriteFile(file, []byte(job), 0o600); err != nil {
		t.Fatal(err)
	}
	out, code := r.cli("apply", "-f", file)
	if code != 1 || !strings.Contains(out, "analysistemplate/smoke: spec.metrics[0].provider.job: the job provider needs Kubernetes mode") {
		t.Fatalf("apply of a job metric: exit %d:\n%s", code, out)
	}
}

// A test suite that runs for minutes must not hold up ramp: the control loop and the API go on
// while it measures.
func TestSlowMeasurementDoesNotBlockRamp(t *testing.T) {
	s := spec{Listen: testkit.FreeAddr(t), Strategy: `    canary:
      steps:
      - setWeight: 50
`}
	r := startRamp(t, model(s, "v1"))
	s.Strategy += `      - analysis:
          templates:
          - templateName: slow-suite
`
	slow := `---
apiVersion: ramp.dev/v1alpha1
kind: AnalysisTemplate
metadata:
  name: slow-suite
spec:
  metrics:
  - name: suite
    provider:
      command:
        command: sleep
        args: ["61.25"]
        timeout: 120s
`
	file := r.stateDir + "/slow.yaml"
	if err := os.WriteFile(file, []byte(model(s, "v2").yaml()+slow), 0o600); err != nil {
		t.Fatal(err)
	}
	r.must("apply", "-f", file)
	// (The canary judge runs beside the suite's run: wait for the suite's own.)
	r.waitFor(30*time.Second, "the suite running", func(ro v1alpha1.Rollout) bool {
		for _, a := range ro.Status.Analysis {
			if a.Kind == v1alpha1.AnalysisKindStep && a.Phase == v1alpha1.AnalysisRunning && processesWithArgs("sleep", "61.25") == 1 {
				return true
			}
		}
		return false
	})
	// While the suite runs, reads answer at once and abort takes effect.
	start := time.Now()
	r.get()
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("ramp get took %s while a measurement ran", d)
	}
	r.must("abort", "chat-api")
	ro := r.waitPhase(v1alpha1.PhaseDegraded, 10*time.Second)
	if ro.Status.Message != "aborted: by user" {
		t.Fatalf("after abort: %s", ro.Status.Message)
	}
	// And the suite of the aborted revision is stopped.
	waitFor(t, 10*time.Second, "the suite to stop", func() (bool, string) {
		n := processesWithArgs("sleep", "61.25")
		return n == 0, fmt.Sprintf("%d sleep 61.25 processes", n)
	})
}

// processesWithArgs counts the running processes whose command line is exactly args.
func processesWithArgs(args ...string) int {
	want := strings.Join(args, "\x00") + "\x00"
	entries, _ := os.ReadDir("/proc")
	n := 0
	for _, e := range entries {
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err == nil && string(b) == want {
			n++
		}
	}
	return n
}
