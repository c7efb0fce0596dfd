package k8s

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	prommodel "github.com/prometheus/common/model"
	"ramp.dev/ramp/test/testkit"
)

// scrapeMetrics reads the controller's /metrics at addr.
func scrapeMetrics(ctx context.Context, addr string) (map[string]*dto.MetricFamily, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", "http://"+addr+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	p := expfmt.NewTextParser(prommodel.UTF8Validation)
	return p.TextToMetricFamilies(resp.Body)
}

// checkRampMetrics waits until the controller's /metrics at addr shows the scenario's rollout
// as its status says at the same moment: strategy and revision, phase, and the weight and
// pods of each revision (the observed weight, status.revisions), and reconcile durations.
func checkRampMetrics(t *testing.T, addr string, s *scenario, strategy string) {
	t.Helper()
	eventually(t, 30*time.Second, "ramp's metrics show the rollout's status", func(ctx context.Context) error {
		ro, err := s.rollout(ctx)
		if err != nil {
			return err
		}
		mfs, err := scrapeMetrics(ctx, addr)
		if err != nil {
			return err
		}
		after, err := s.rollout(ctx)
		if err != nil {
			return err
		}
		if after.ResourceVersion != ro.ResourceVersion {
			return fmt.Errorf("the rollout changed during the scrape")
		}
		var diffs []string
		check := func(want float64, name string, labels ...string) {
			labels = append([]string{"namespace", s.ns, "rollout", "chat-api"}, labels...)
			if got, n := testkit.Series(mfs, name, labels...); n != 1 || got != want {
				diffs = append(diffs, fmt.Sprintf("%s%v = %v (%d series), want %v", name, labels, got, n, want))
			}
		}
		check(1, "ramp_rollout_info", "strategy", strategy, "revision", strconv.FormatInt(ro.Status.CurrentRevision, 10))
		check(1, "ramp_rollout_phase", "phase", string(ro.Status.Phase))
		check(float64(ro.Status.CanaryWeight), "ramp_rollout_canary_weight")
		for _, rv := range ro.Status.Revisions {
			rev := strconv.FormatInt(rv.Revision, 10)
			check(float64(rv.Weight), "ramp_rollout_weight", "revision", rev, "role", string(rv.Role))
			check(float64(rv.Desired), "ramp_rollout_replicas", "revision", rev, "state", "desired")
			check(float64(rv.Ready), "ramp_rollout_replicas", "revision", rev, "state", "ready")
			check(float64(rv.Available), "ramp_rollout_replicas", "revision", rev, "state", "available")
		}
		if _, n := testkit.Series(mfs, "ramp_rollout_weight", "namespace", s.ns); n != len(ro.Status.Revisions) || n < 2 {
			diffs = append(diffs, fmt.Sprintf("%d weight series for %d revisions in status, want both revisions", n, len(ro.Status.Revisions)))
		}
		for _, a := range ro.Status.Analysis {
			check(1, "ramp_analysis_run_phase", "run", a.Name, "kind", string(a.Kind), "phase", string(a.Phase))
		}
		if c, _ := testkit.Series(mfs, "ramp_reconcile_duration_seconds", "mode", "kubernetes"); c == 0 {
			diffs = append(diffs, "no reconcile observed in mode kubernetes")
		}
		if len(diffs) > 0 {
			return fmt.Errorf("%v", diffs)
		}
		return nil
	})
}
