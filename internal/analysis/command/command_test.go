package command

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/intstr"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/analysis"
)

// addresses is a Source with fixed answers.
type addresses struct{}

func (addresses) Addresses(string) (string, string) { return "127.0.0.1:8080", "127.0.0.1:8081" }
func (addresses) Instances(_ string, rev int64) []string {
	if rev == 2 {
		return []string{"127.0.0.1:9001", "127.0.0.1:9002"}
	}
	return nil
}

func TestMeasure(t *testing.T) {
	dir := t.TempDir()
	cmd := func(name string, args ...string) *v1alpha1.CommandMetric {
		return &v1alpha1.CommandMetric{Command: name, Args: args}
	}
	short := intstr.FromString("200ms")
	tests := []struct {
		name     string
		c        *v1alpha1.CommandMetric
		want     float64
		wantText string // substring
		wantErr  string // substring
	}{
		{name: "true succeeds", c: cmd("true"), want: 1, wantText: "1 (exit status 0 in "},
		{name: "exit 1 fails with its output", c: cmd("sh", "-c", "for i in 1 2 3 4 5 6 7; do echo line $i; done; echo oops >&2; exit 3"),
			want: 0, wantText: "exit status 3 in"},
		{name: "last lines only", c: cmd("sh", "-c", "for i in 1 2 3 4 5 6 7; do echo line $i; done; exit 1"),
			want: 0, wantText: "; output: line 3 | line 4 | line 5 | line 6 | line 7)"},
		{name: "target in the environment",
			c:    cmd("sh", "-c", `test "$RAMP_ROLLOUT/$RAMP_REVISION/$RAMP_BASELINE_REVISION/$RAMP_ROLE/$RAMP_ADDR/$RAMP_PREVIEW_ADDR/$RAMP_INSTANCES" = "chat-api/2/1/preview/127.0.0.1:8080/127.0.0.1:8081/127.0.0.1:9001,127.0.0.1:9002" || { env | grep RAMP_; exit 1; }`),
			want: 1},
		{name: "env, working directory and templated args",
			c: &v1alpha1.CommandMetric{Command: "sh", Args: []string{"-c", `test "$GREETING $(pwd) $0" = "hi ` + dir + ` smoke-[x]" || { echo "$GREETING $(pwd) $0"; exit 1; }`, "smoke-{{args.suite}}"},
				Env: []v1alpha1.EnvVar{{Name: "GREETING", Value: "hi"}}, WorkingDir: dir},
			want: 1},
		{name: "killed by signal", c: cmd("sh", "-c", "kill -9 $$"), want: 0, wantText: "signal: killed"},
		{name: "timeout kills the process group", c: &v1alpha1.CommandMetric{Command: "sh", Args: []string{"-c", "echo started; sleep 30 & wait"}, Timeout: &short},
			wantErr: "sh: killed after the timeout of 200ms; output: started"},
		{name: "not found", c: cmd(filepath.Join(dir, "no-such-program")), wantErr: "no such file or directory"},
		{name: "bad template", c: cmd("true", "{{args.missing}}"), wantErr: `args[0]: template: {{args.missing}}: no argument "missing"`},
	}
	p := New(addresses{})
	target := analysis.Target{Rollout: "chat-api", Revision: 2, Baseline: 1, Role: "preview", Args: map[string]string{"suite": "[x]"}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := v1alpha1.Metric{Name: "smoke", Provider: v1alpha1.MetricProvider{Command: tt.c}}
			v, err := p.Measure(context.Background(), m, target)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if v.Result != tt.want || v.Inconclusive || !strings.Contains(v.Text, tt.wantText) {
				t.Errorf("got %+v, want result %v with text containing %q", v, tt.want, tt.wantText)
			}
		})
	}
}

func TestMeasureCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	m := v1alpha1.Metric{Name: "smoke", Provider: v1alpha1.MetricProvider{Command: &v1alpha1.CommandMetric{Command: "true"}}}
	if _, err := New(nil).Measure(ctx, m, analysis.Target{}); err != context.Canceled {
		t.Fatalf("error %v, want context.Canceled", err)
	}
}
