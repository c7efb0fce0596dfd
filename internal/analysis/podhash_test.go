package analysis

import (
	"context"
	"testing"
	"time"

	"ramp.dev/ramp/api/v1alpha1"
)

// queryProvider expands its metric's query as a provider does, and keeps the result.
type queryProvider struct{ got []string }

func (p *queryProvider) Measure(_ context.Context, m v1alpha1.Metric, t Target) (Value, error) {
	q, err := Expand(m.Provider.Prometheus.Query, &m, t)
	if err != nil {
		return Value{}, err
	}
	p.got = append(p.got, q)
	return Value{Result: 1}, nil
}

// TestStepForPodTemplateHash: the runner hands a measurement the caller's pod-template-hashes,
// so a query reads the series of the run's revision and of its baseline.
func TestStepForPodTemplateHash(t *testing.T) {
	p := &queryProvider{}
	r := &Runner{Providers: map[string]Provider{"prometheus": p}}
	tmpl := &v1alpha1.AnalysisTemplate{Spec: v1alpha1.AnalysisTemplateSpec{Metrics: []v1alpha1.Metric{{
		Name: "errors",
		Provider: v1alpha1.MetricProvider{Prometheus: &v1alpha1.PrometheusMetric{Address: "http://prometheus:9090",
			Query: `x{pod_template_hash="{{podTemplateHash}}"} - x{pod_template_hash="{{baselinePodTemplateHash}}"}`}},
	}}}}
	tmpl.Name = "errors"
	run := &v1alpha1.AnalysisRunStatus{Name: "step-2", Kind: v1alpha1.AnalysisKindStep, Revision: 2, BaselineRevision: 1,
		Spec: v1alpha1.RolloutAnalysis{Templates: []v1alpha1.AnalysisTemplateRef{{TemplateName: "errors"}}}}
	on := Target{Rollout: "chat-api", Namespace: "carepath-demo", PodTemplateHashes: map[int64]string{1: "aaa111", 2: "bbb222"}}
	r.StepFor(context.Background(), time.Unix(1000, 0), on, run, map[string]*v1alpha1.AnalysisTemplate{"errors": tmpl})
	want := `x{pod_template_hash="bbb222"} - x{pod_template_hash="aaa111"}`
	if len(p.got) != 1 || p.got[0] != want {
		t.Fatalf("queries %q; want [%s] (run %+v)", p.got, want, run)
	}
}
