package spec

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/intstr"

	"ramp.dev/ramp/api/v1alpha1"
)

var update = flag.Bool("update", false, "rewrite the testdata/*.golden.json files")

// TestLoadValid loads every testdata/valid-*.yaml, checks the result re-validates clean and
// matches its golden JSON (defaults applied). Run with -update to rewrite the golden files.
func TestLoadValid(t *testing.T) {
	files, err := filepath.Glob("testdata/valid-*.yaml")
	if err != nil || len(files) < 5 {
		t.Fatalf("want at least 5 testdata/valid-*.yaml files, got %d (%v)", len(files), err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			b, err := Load(data)
			if err != nil {
				t.Fatalf("Load:\n%v", err)
			}
			revalidate(t, b)
			got, err := json.MarshalIndent(b, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			golden := strings.TrimSuffix(f, ".yaml") + ".golden.json"
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("Load(%s) differs from %s; run with -update and review the diff:\n%s", f, golden, got)
			}
		})
	}
}

// revalidate fails t when a loaded bundle does not validate clean, or when defaults applied
// again change it.
func revalidate(t *testing.T, b *Bundle) {
	t.Helper()
	for i := range b.Rollouts {
		r := &b.Rollouts[i]
		if errs := ValidateRollout(r); len(errs) > 0 {
			t.Errorf("rollout %q does not re-validate:\n%v", r.Name, errs)
		}
		// DeepCopy keeps an empty list empty (a JSON copy would turn steps: [] into nil).
		c := r.DeepCopy()
		SetDefaults(c)
		if !reflect.DeepEqual(c, r) {
			t.Errorf("SetDefaults is not idempotent on rollout %q", r.Name)
		}
		if r.Status.Phase != "" {
			t.Errorf("rollout %q kept the status of the input", r.Name)
		}
	}
	for i := range b.AnalysisTemplates {
		at := &b.AnalysisTemplates[i]
		if errs := ValidateAnalysisTemplate(at); len(errs) > 0 {
			t.Errorf("template %q does not re-validate:\n%v", at.Name, errs)
		}
	}
}

func TestLoadKinds(t *testing.T) {
	data, err := os.ReadFile("testdata/valid-multi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	b, err := Load(data)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range b.Rollouts {
		names = append(names, "rollout/"+r.Name)
	}
	for _, at := range b.AnalysisTemplates {
		names = append(names, "template/"+at.Name)
	}
	want := []string{"rollout/chat-api", "rollout/chat-admin", "template/latency", "template/restarts"}
	if !slices.Equal(names, want) {
		t.Errorf("loaded %v, want %v", names, want)
	}
}

func TestLoadEmpty(t *testing.T) {
	for _, in := range []string{"", "---\n", "# nothing\n---\n---\n"} {
		b, err := Load([]byte(in))
		if err != nil || b == nil || len(b.Rollouts)+len(b.AnalysisTemplates) != 0 {
			t.Errorf("Load(%q) = %+v, %v; want an empty bundle", in, b, err)
		}
	}
}

func ptr[T any](v T) *T { return &v }

func TestSetDefaults(t *testing.T) {
	pct := func(s string) *intstr.IntOrString { v := intstr.FromString(s); return &v }
	tests := []struct {
		name string
		in   v1alpha1.RolloutSpec
		want v1alpha1.RolloutSpec
	}{
		{
			name: "rolling update with a probe",
			in: v1alpha1.RolloutSpec{
				Template: v1alpha1.Template{Process: &v1alpha1.ProcessTemplate{
					Command: "x", ReadinessProbe: &v1alpha1.Probe{InitialDelaySeconds: 2},
				}},
				Strategy: v1alpha1.Strategy{RollingUpdate: &v1alpha1.RollingUpdateStrategy{}},
			},
			want: v1alpha1.RolloutSpec{
				Replicas: ptr(int32(1)),
				Template: v1alpha1.Template{Process: &v1alpha1.ProcessTemplate{
					Command: "x",
					ReadinessProbe: &v1alpha1.Probe{
						HTTPGet:             v1alpha1.HTTPGetAction{Path: "/"},
						InitialDelaySeconds: 2, PeriodSeconds: 1, TimeoutSeconds: 1,
						SuccessThreshold: 1, FailureThreshold: 3,
					},
					StopSignal:                    "SIGTERM",
					TerminationGracePeriodSeconds: ptr(int32(30)),
				}},
				Strategy: v1alpha1.Strategy{RollingUpdate: &v1alpha1.RollingUpdateStrategy{
					MaxSurge: pct("25%"), MaxUnavailable: pct("25%"),
				}},
				RevisionHistoryLimit:    ptr(int32(10)),
				ProgressDeadlineSeconds: ptr(int32(600)),
			},
		},
		{
			name: "blue-green keeps what the user set",
			in: v1alpha1.RolloutSpec{
				Replicas: ptr(int32(0)),
				Template: v1alpha1.Template{Upstreams: []string{"127.0.0.1:1"}},
				Strategy: v1alpha1.Strategy{BlueGreen: &v1alpha1.BlueGreenStrategy{
					AutoPromotionEnabled: ptr(false), ScaleDownDelaySeconds: ptr(int32(0)),
				}},
				RevisionHistoryLimit:    ptr(int32(0)),
				ProgressDeadlineSeconds: ptr(int32(5)),
			},
			want: v1alpha1.RolloutSpec{
				Replicas: ptr(int32(0)),
				Template: v1alpha1.Template{Upstreams: []string{"127.0.0.1:1"}},
				Strategy: v1alpha1.Strategy{BlueGreen: &v1alpha1.BlueGreenStrategy{
					AutoPromotionEnabled: ptr(false), ScaleDownDelaySeconds: ptr(int32(0)),
				}},
				RevisionHistoryLimit:    ptr(int32(0)),
				ProgressDeadlineSeconds: ptr(int32(5)),
			},
		},
		{
			name: "blue-green defaults",
			in: v1alpha1.RolloutSpec{
				Template: v1alpha1.Template{Upstreams: []string{"127.0.0.1:1"}},
				Strategy: v1alpha1.Strategy{BlueGreen: &v1alpha1.BlueGreenStrategy{}},
			},
			want: v1alpha1.RolloutSpec{
				Replicas: ptr(int32(1)),
				Template: v1alpha1.Template{Upstreams: []string{"127.0.0.1:1"}},
				Strategy: v1alpha1.Strategy{BlueGreen: &v1alpha1.BlueGreenStrategy{
					AutoPromotionEnabled: ptr(true), ScaleDownDelaySeconds: ptr(int32(300)),
				}},
				RevisionHistoryLimit:    ptr(int32(10)),
				ProgressDeadlineSeconds: ptr(int32(600)),
			},
		},
		{
			name: "canary has no strategy defaults",
			in: v1alpha1.RolloutSpec{
				Template: v1alpha1.Template{Process: &v1alpha1.ProcessTemplate{Command: "x", StopSignal: "SIGINT"}},
				Strategy: v1alpha1.Strategy{Canary: &v1alpha1.CanaryStrategy{}},
			},
			want: v1alpha1.RolloutSpec{
				Replicas: ptr(int32(1)),
				Template: v1alpha1.Template{Process: &v1alpha1.ProcessTemplate{
					Command: "x", StopSignal: "SIGINT", TerminationGracePeriodSeconds: ptr(int32(30)),
				}},
				Strategy:                v1alpha1.Strategy{Canary: &v1alpha1.CanaryStrategy{}},
				RevisionHistoryLimit:    ptr(int32(10)),
				ProgressDeadlineSeconds: ptr(int32(600)),
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &v1alpha1.Rollout{Spec: tt.in}
			SetDefaults(r)
			if !reflect.DeepEqual(r.Spec, tt.want) {
				got, _ := json.Marshal(r.Spec)
				want, _ := json.Marshal(tt.want)
				t.Errorf("SetDefaults:\n got %s\nwant %s", got, want)
			}
		})
	}
}

func TestSetAnalysisTemplateDefaults(t *testing.T) {
	iv := intstr.FromString("10s")
	at := &v1alpha1.AnalysisTemplate{Spec: v1alpha1.AnalysisTemplateSpec{Metrics: []v1alpha1.Metric{
		{Name: "once", Provider: v1alpha1.MetricProvider{Builtin: &v1alpha1.BuiltinMetric{Metric: "cpu"}}},
		{Name: "every", Interval: &iv, ConsecutiveErrorLimit: ptr(int32(0)),
			Provider: v1alpha1.MetricProvider{Builtin: &v1alpha1.BuiltinMetric{Metric: "cpu", MinRequests: 7}}},
	}}}
	SetAnalysisTemplateDefaults(at)
	want := []v1alpha1.Metric{
		{Name: "once", Count: ptr(int32(1)), ConsecutiveErrorLimit: ptr(int32(4)),
			Provider: v1alpha1.MetricProvider{Builtin: &v1alpha1.BuiltinMetric{Metric: "cpu", MinRequests: 1}}},
		{Name: "every", Interval: &iv, ConsecutiveErrorLimit: ptr(int32(0)),
			Provider: v1alpha1.MetricProvider{Builtin: &v1alpha1.BuiltinMetric{Metric: "cpu", MinRequests: 7}}},
	}
	if !reflect.DeepEqual(at.Spec.Metrics, want) {
		got, _ := json.Marshal(at.Spec.Metrics)
		w, _ := json.Marshal(want)
		t.Errorf("SetAnalysisTemplateDefaults:\n got %s\nwant %s", got, w)
	}
}

func TestCheckReferences(t *testing.T) {
	data, err := os.ReadFile("testdata/valid-bluegreen.yaml")
	if err != nil {
		t.Fatal(err)
	}
	b, err := Load(data)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.CheckReferences(nil); err == nil || err.Error() != strings.Join([]string{
		`spec.strategy.blueGreen.prePromotionAnalysis.templates[0].templateName: "smoke" names no AnalysisTemplate`,
		`spec.strategy.blueGreen.postPromotionAnalysis.templates[0].templateName: "smoke" names no AnalysisTemplate`,
	}, "\n") {
		t.Errorf("CheckReferences(nil) = %v", err)
	}
	if err := b.CheckReferences(func(n string) bool { return n == "smoke" }); err != nil {
		t.Errorf("CheckReferences with smoke stored = %v, want nil", err)
	}

	data, err = os.ReadFile("testdata/valid-multi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if b, err = Load(data); err != nil {
		t.Fatal(err)
	}
	if err := b.CheckReferences(nil); err != nil {
		t.Errorf("templates in the bundle: CheckReferences = %v, want nil", err)
	}
	b.AnalysisTemplates = b.AnalysisTemplates[:1]
	want := `rollout/chat-api: spec.strategy.canary.steps[1].analysis.templates[1].templateName: "restarts" names no AnalysisTemplate`
	if err := b.CheckReferences(func(string) bool { return false }); err == nil || err.Error() != want {
		t.Errorf("CheckReferences = %v, want %s", err, want)
	}
}

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in      intstr.IntOrString
		want    time.Duration
		wantErr bool
	}{
		{intstr.FromInt32(30), 30 * time.Second, false},
		{intstr.FromInt32(-2), -2 * time.Second, false},
		{intstr.FromString("30"), 30 * time.Second, false},
		{intstr.FromString("1m30s"), 90 * time.Second, false},
		{intstr.FromString("250ms"), 250 * time.Millisecond, false},
		{intstr.FromString(""), 0, true},
		{intstr.FromString("soon"), 0, true},
		{intstr.FromString("30x"), 0, true},
		{intstr.FromString("99999999999999999"), 0, true},
	}
	for _, tt := range tests {
		got, err := ParseDuration(&tt.in)
		if got != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("ParseDuration(%s) = %v, %v; want %v, error %t", tt.in.String(), got, err, tt.want, tt.wantErr)
		}
	}
	if d, err := ParseDuration(nil); d != 0 || err != nil {
		t.Errorf("ParseDuration(nil) = %v, %v; want 0, nil", d, err)
	}
}

func TestScaledValue(t *testing.T) {
	tests := []struct {
		in      intstr.IntOrString
		total   int32
		up      bool
		want    int32
		wantErr bool
	}{
		{intstr.FromInt32(3), 10, false, 3, false},
		{intstr.FromString("25%"), 10, true, 3, false},
		{intstr.FromString("25%"), 10, false, 2, false},
		{intstr.FromString("25%"), 1, true, 1, false},
		{intstr.FromString("25%"), 1, false, 0, false},
		{intstr.FromString("100%"), 7, false, 7, false},
		{intstr.FromString("0%"), 7, true, 0, false},
		{intstr.FromString("25"), 10, true, 0, true},
		{intstr.FromString("abc%"), 10, true, 0, true},
	}
	for _, tt := range tests {
		got, err := ScaledValue(&tt.in, tt.total, tt.up)
		if got != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("ScaledValue(%s, %d, %t) = %d, %v; want %d, error %t", tt.in.String(), tt.total, tt.up, got, err, tt.want, tt.wantErr)
		}
	}
	if _, err := ScaledValue(nil, 1, true); err == nil {
		t.Error("ScaledValue(nil) succeeded")
	}
}

func TestFieldErrorFormat(t *testing.T) {
	tests := []struct {
		e    FieldError
		want string
	}{
		{FieldError{"spec.strategy.canary.steps[2].setWeight", int32(150), "is not between 0 and 100"}, "spec.strategy.canary.steps[2].setWeight: 150 is not between 0 and 100"},
		{FieldError{"spec.listen", "x", "is not host:port"}, `spec.listen: "x" is not host:port`},
		{FieldError{"metadata.name", nil, "is required"}, "metadata.name: is required"},
	}
	for _, tt := range tests {
		if got := tt.e.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
}
