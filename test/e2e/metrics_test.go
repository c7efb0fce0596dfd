package e2e

import (
	"fmt"
	"net/http"
	"strconv"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	prommodel "github.com/prometheus/common/model"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/test/testkit"
)

// scrape reads ramp's /metrics into its families.
func (r *ramp) scrape() map[string]*dto.MetricFamily {
	r.t.Helper()
	resp, err := http.Get("http://" + r.apiAddr + "/metrics")
	if err != nil {
		r.t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		r.t.Fatalf("GET /metrics: %s", resp.Status)
	}
	p := expfmt.NewTextParser(prommodel.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		r.t.Fatalf("parse /metrics: %v", err)
	}
	return mfs
}

// ramp's own metrics on the control API's /metrics during a real canary show the rollout as
// its status says at that moment: phase, step, the weight and instances of each revision, the
// judge's run and evidence; after the promotion they move on. Go and process metrics are
// there too.
func TestRampMetricsDuringACanary(t *testing.T) {
	s := spec{Listen: testkit.FreeAddr(t), Strategy: `    canary:
      judge: {metrics: [error-rate]}
      steps:
      - setWeight: 25
      - pause: {}
`}
	r := startRamp(t, model(s, "v1", "CHAT_ERROR_RATE", "0.02"))
	l := startLoad(t, s.Listen, 60, nil)
	defer l.stop()

	mfs := r.scrape()
	for _, name := range []string{"go_goroutines", "process_cpu_seconds_total", "process_resident_memory_bytes"} {
		if _, n := testkit.Series(mfs, name); n != 1 {
			t.Errorf("%s: %d series on local /metrics, want 1", name, n)
		}
	}
	if v, n := testkit.Series(mfs, "ramp_rollout_phase", "rollout", "chat-api", "phase", "Healthy"); n != 1 || v != 1 {
		t.Errorf("before the change: ramp_rollout_phase{phase=Healthy} = %v (%d series), want 1", v, n)
	}

	// When v2 is applied, it pauses at 25% with its judge running
	r.apply(model(s, "v2", "CHAT_ERROR_RATE", "0.02"))
	ro := r.waitFor(30*time.Second, "the canary paused with a ready instance", func(ro v1alpha1.Rollout) bool {
		return ro.Status.Phase == v1alpha1.PhasePaused && readyOf(ro, 2) == 1
	})
	// Then /metrics shows that moment's status, and the judge's counts grow under load
	var judgeRun string
	for _, a := range ro.Status.Analysis {
		if a.Kind == v1alpha1.AnalysisKindJudge {
			judgeRun = a.Name
		}
	}
	if judgeRun == "" {
		t.Fatalf("no judge run in status: %+v", ro.Status.Analysis)
	}
	waitFor(t, 20*time.Second, "/metrics to show the paused canary and the judge's evidence", func() (bool, string) {
		mfs := r.scrape()
		ro := r.get()
		var diffs []string
		check := func(want float64, name string, labels ...string) {
			got, n := testkit.Series(mfs, name, labels...)
			if n != 1 || got != want {
				diffs = append(diffs, fmt.Sprintf("%s%v = %v (%d series), want %v", name, labels, got, n, want))
			}
		}
		check(1, "ramp_rollout_info", "rollout", "chat-api", "strategy", "canary", "revision", "2")
		check(1, "ramp_rollout_phase", "rollout", "chat-api", "phase", string(ro.Status.Phase))
		check(0, "ramp_rollout_phase", "rollout", "chat-api", "phase", "Healthy")
		check(2, "ramp_rollout_step", "rollout", "chat-api") // status.step "2/2": at the pause
		check(2, "ramp_rollout_steps", "rollout", "chat-api")
		check(float64(ro.Status.CanaryWeight), "ramp_rollout_canary_weight", "rollout", "chat-api")
		for _, rv := range ro.Status.Revisions {
			rev := strconv.FormatInt(rv.Revision, 10)
			check(float64(rv.Weight), "ramp_rollout_weight", "rollout", "chat-api", "revision", rev, "role", string(rv.Role))
			check(float64(rv.Desired), "ramp_rollout_replicas", "rollout", "chat-api", "revision", rev, "state", "desired")
			check(float64(rv.Ready), "ramp_rollout_replicas", "rollout", "chat-api", "revision", rev, "state", "ready")
		}
		check(25, "ramp_rollout_weight", "rollout", "chat-api", "revision", "2", "role", "canary")
		check(75, "ramp_rollout_weight", "rollout", "chat-api", "revision", "1", "role", "stable")
		check(1, "ramp_analysis_run_info", "rollout", "chat-api", "run", judgeRun, "kind", "judge", "revision", "2", "baseline_revision", "1")
		check(1, "ramp_analysis_run_phase", "rollout", "chat-api", "run", judgeRun, "phase", "Running")
		verdicts := 0.0
		for _, v := range []string{"worse", "no_worse", "undecided"} {
			x, _ := testkit.Series(mfs, "ramp_judge_verdict", "run", judgeRun, "metric", "error-rate", "verdict", v)
			verdicts += x
		}
		if verdicts != 1 {
			diffs = append(diffs, fmt.Sprintf("%v judge verdicts at 1, want exactly one", verdicts))
		}
		canary, n := testkit.Series(mfs, "ramp_judge_requests", "run", judgeRun, "metric", "error-rate", "side", "canary")
		stable, _ := testkit.Series(mfs, "ramp_judge_requests", "run", judgeRun, "metric", "error-rate", "side", "stable")
		if n != 1 || canary < 50 || stable < 3*canary/2 {
			diffs = append(diffs, fmt.Sprintf("judge requests canary %v, stable %v: want at least 50 on the canary and more on stable", canary, stable))
		}
		if c, _ := testkit.Series(mfs, "ramp_reconcile_duration_seconds", "mode", "local"); c == 0 {
			diffs = append(diffs, "no local reconcile observed")
		}
		if _, n := testkit.Series(mfs, "ramp_requests_total", "rollout", "chat-api", "revision", "2"); n == 0 {
			diffs = append(diffs, "no ramp_requests_total of revision 2")
		}
		return len(diffs) == 0, fmt.Sprint(diffs)
	})

	// When it is promoted, then /metrics shows revision 2 healthy with all the traffic
	r.must("promote", "chat-api")
	r.waitPhase(v1alpha1.PhaseHealthy, 30*time.Second)
	waitFor(t, 10*time.Second, "/metrics to show revision 2 healthy with all the traffic", func() (bool, string) {
		mfs := r.scrape()
		healthy, _ := testkit.Series(mfs, "ramp_rollout_phase", "rollout", "chat-api", "phase", "Healthy")
		w, n := testkit.Series(mfs, "ramp_rollout_weight", "rollout", "chat-api", "revision", "2", "role", "stable")
		_, steps := testkit.Series(mfs, "ramp_rollout_step", "rollout", "chat-api")
		return healthy == 1 && n == 1 && w == 100, fmt.Sprintf("healthy %v, weight of revision 2 as stable %v (%d series), step series %d", healthy, w, n, steps)
	})
}
