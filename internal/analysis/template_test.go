package analysis

import (
	"strings"
	"testing"
	"time"

	"ramp.dev/ramp/api/v1alpha1"
)

func TestExpand(t *testing.T) {
	target := Target{Rollout: "chat-api", Revision: 3, Baseline: 2, Role: "preview", Namespace: "prod", Service: "chat-api-preview",
		Args: map[string]string{"service-name": "chat", "empty": ""}, PodTemplateHashes: map[int64]string{2: "5d8f9c7b6", 3: "7c9d4f8b5"}}
	withInterval := v1alpha1.Metric{Interval: secs("90s")}
	tests := []struct {
		name, in string
		m        v1alpha1.Metric
		want     string
		wantErr  string
	}{
		{name: "all variables", in: "{{rollout}} {{revision}} {{baselineRevision}} {{role}} {{namespace}} {{service}} {{interval}} {{args.service-name}}",
			m: withInterval, want: "chat-api 3 2 preview prod chat-api-preview 90s chat"},
		{name: "pod-template-hash of the revision and of the baseline", in: `x{pod_template_hash="{{podTemplateHash}}"} / x{pod_template_hash="{{ baselinePodTemplateHash }}"}`,
			want: `x{pod_template_hash="7c9d4f8b5"} / x{pod_template_hash="5d8f9c7b6"}`},
		{name: "spaces as in Flagger", in: `{{ namespace }}/{{ args.service-name }}`, want: "prod/chat"},
		{name: "interval defaults to 1m", in: "[{{interval}}]", want: "[60s]"},
		{name: "an empty argument", in: "a{{args.empty}}b", want: "ab"},
		{name: "no variables", in: `rate(x{a="b"}[5m])`, want: `rate(x{a="b"}[5m])`},
		{name: "unknown variable", in: "{{version}} {{ns}}", wantErr: "template: unknown variable {{version}}; known: rollout, revision, baselineRevision, role, namespace, service, interval, podTemplateHash, baselinePodTemplateHash, args.NAME; unknown variable {{ns}}"},
		{name: "missing argument", in: "{{args.x}}", wantErr: `template: {{args.x}}: no argument "x"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Expand(tt.in, &tt.m, target)
			if tt.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("Expand = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
	// Local mode has no namespace or service.
	if _, err := Expand("{{namespace}}", &v1alpha1.Metric{}, Target{}); err == nil || !strings.Contains(err.Error(), "{{namespace}} has no value here") {
		t.Errorf("namespace in local mode: %v", err)
	}
	if _, err := Expand("{{podTemplateHash}}", &v1alpha1.Metric{}, Target{Revision: 1}); err == nil || !strings.Contains(err.Error(), "{{podTemplateHash}} has no value here") {
		t.Errorf("podTemplateHash in local mode: %v", err)
	}
	// A revision whose pods do not exist yet has no hash: an error (the measurement is taken
	// again), never an empty label value that would select every series without the label.
	if _, err := Expand("{{podTemplateHash}}", &v1alpha1.Metric{}, Target{Revision: 4, PodTemplateHashes: map[int64]string{3: "x"}}); err == nil || !strings.Contains(err.Error(), "revision 4 runs no pods yet") {
		t.Errorf("podTemplateHash of a revision without pods: %v", err)
	}
}

func TestRoleOf(t *testing.T) {
	for kind, want := range map[v1alpha1.AnalysisKind]string{
		v1alpha1.AnalysisKindStep: "canary", v1alpha1.AnalysisKindBackground: "canary",
		v1alpha1.AnalysisKindPrePromote: "preview", v1alpha1.AnalysisKindPostPromote: "active",
	} {
		if got := RoleOf(kind); got != want {
			t.Errorf("RoleOf(%s) = %s, want %s", kind, got, want)
		}
	}
}

func TestPromDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{30 * time.Second: "30s", 90 * time.Second: "90s", 1500 * time.Millisecond: "1500ms"} {
		if got := PromDuration(d); got != want {
			t.Errorf("PromDuration(%s) = %s, want %s", d, got, want)
		}
	}
}
