package spec

import (
	"reflect"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/intstr"

	"ramp.dev/ramp/api/v1alpha1"
)

func TestJudgeSettings(t *testing.T) {
	off, on := false, true
	all := DefaultJudgeMetrics()
	floor := DefaultJudgeMinLatencyIncrease
	quarter := intstr.FromString("250ms")
	triage := v1alpha1.JudgeBusinessMetric{Name: "triage", Metric: "chat_triage_total", Events: map[string]string{"outcome": "failed"}}
	tests := []struct {
		name string
		c    *v1alpha1.CanaryStrategy
		want JudgeSettings
	}{
		{"not a canary", nil, JudgeSettings{Alpha: 0.01, MaxRatio: 1.5, MinErrors: 3, MinLatencyIncrease: floor, Metrics: all, EndAnalysisEarly: true}},
		{"no judge block is on with defaults", &v1alpha1.CanaryStrategy{}, JudgeSettings{Enabled: true, Alpha: 0.01, MaxRatio: 1.5, MinErrors: 3, MinLatencyIncrease: floor, Metrics: all, EndAnalysisEarly: true}},
		{"everything set", &v1alpha1.CanaryStrategy{Judge: &v1alpha1.CanaryJudge{
			Enabled: &on, Alpha: "0.001", MaxRatio: "2", MinErrors: 10, MinLatencyIncrease: &quarter, Metrics: []string{"latency"}, EndAnalysisEarly: &off,
			Business: []v1alpha1.JudgeBusinessMetric{triage},
		}}, JudgeSettings{Enabled: true, Alpha: 0.001, MaxRatio: 2, MinErrors: 10, MinLatencyIncrease: 250 * time.Millisecond, Metrics: []string{"latency"}, Business: []v1alpha1.JudgeBusinessMetric{triage}}},
		{"turned off", &v1alpha1.CanaryStrategy{Judge: &v1alpha1.CanaryJudge{Enabled: &off}},
			JudgeSettings{Alpha: 0.01, MaxRatio: 1.5, MinErrors: 3, MinLatencyIncrease: floor, Metrics: all, EndAnalysisEarly: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Judge(tt.c); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Judge = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestDecimalTakesNumbersAndStrings(t *testing.T) {
	b, err := Load([]byte(rollout(okProcess + "  strategy: {canary: {judge: {alpha: 0.02, maxRatio: \"3\"}}}\n")))
	if err != nil {
		t.Fatal(err)
	}
	j := b.Rollouts[0].Spec.Strategy.Canary.Judge
	if j.Alpha != "0.02" || j.MaxRatio != "3" {
		t.Fatalf("alpha %q maxRatio %q, want 0.02 and 3", j.Alpha, j.MaxRatio)
	}
}
