package k8senv

import (
	"strings"
	"testing"
)

func TestDecodeYAML(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []string // kind/name of each object
		wantErr string
	}{
		{"one object", "apiVersion: v1\nkind: Service\nmetadata: {name: a}\n", []string{"Service/a"}, ""},
		{"several documents, empty ones and comments skipped",
			"# head\n---\napiVersion: v1\nkind: Service\nmetadata: {name: a}\n---\n---\n# only a comment\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: b}\n",
			[]string{"Service/a", "Deployment/b"}, ""},
		{"kind missing", "apiVersion: v1\nmetadata: {name: a}\n", nil, "document 0: apiVersion and kind are required"},
		{"not YAML", "apiVersion: v1\nkind: [\n", nil, "parse YAML document 0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			objs, err := decodeYAML([]byte(tc.in))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, o := range objs {
				got = append(got, o.GetKind()+"/"+o.GetName())
			}
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestKwokStages(t *testing.T) {
	objs, err := decodeYAML(kwokStages)
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, o := range objs {
		if o.GetKind() != "Stage" {
			t.Errorf("%s: kind %s, want Stage", o.GetName(), o.GetKind())
		}
		names[o.GetName()] = true
	}
	for _, want := range []string{"node-initialize", "node-heartbeat", "pod-ready", "pod-complete", "pod-delete", "ramp-pod-not-ready", "ramp-pod-fail"} {
		if !names[want] {
			t.Errorf("stage %s missing", want)
		}
	}
}

func TestFreePortsDistinct(t *testing.T) {
	ports, err := freePorts(6)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	for _, p := range ports {
		if p <= 0 || seen[p] {
			t.Fatalf("ports %v: want 6 distinct positive ports", ports)
		}
		seen[p] = true
	}
}
