package local

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"ramp.dev/ramp/internal/control"
	"ramp.dev/ramp/internal/spec"
	"ramp.dev/ramp/internal/store"
)

// TestApplyRefusesKubernetesFields: local mode refuses, with its path, a field only
// Kubernetes mode carries out, and stores nothing.
func TestApplyRefusesKubernetesFields(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), DBFile))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	c := newController(deps{store: st})
	t.Cleanup(c.proxies.shutdown)
	t.Cleanup(c.measure.Close)
	for _, tt := range []struct{ name, spec, want string }{
		{name: "workloadRef", spec: "  workloadRef: {name: chat-api}\n  strategy: {rollingUpdate: {}}\n",
			want: "rollout/chat-api: spec.workloadRef: needs Kubernetes mode (ramp controller); local mode runs spec.template.process or spec.template.upstreams"},
		{name: "router", spec: "  template: {upstreams: [\"127.0.0.1:9\"]}\n  strategy: {canary: {stableService: a, canaryService: b, trafficRouting: {smi: {}}, steps: [{setWeight: 10}]}}\n",
			want: "rollout/chat-api: spec.strategy.canary.trafficRouting.smi: needs Kubernetes mode (spec.workloadRef); local mode routes through its own proxy\n" +
				`rollout/chat-api: spec.strategy.canary.stableService: "a" names a Kubernetes Service; local mode has no Services: its own proxy carries the traffic` + "\n" +
				`rollout/chat-api: spec.strategy.canary.canaryService: "b" names a Kubernetes Service; local mode has no Services: its own proxy carries the traffic`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b, err := spec.Load([]byte("apiVersion: ramp.dev/v1alpha1\nkind: Rollout\nmetadata: {name: chat-api}\nspec:\n" + tt.spec))
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.ApplyBundle(context.Background(), b)
			if !errors.Is(err, control.ErrInvalid) || err.Error() != control.ErrInvalid.Error()+": "+tt.want {
				t.Fatalf("Apply: %v\nwant %s", err, tt.want)
			}
			if _, err := st.GetRollout("chat-api"); err == nil {
				t.Error("the rollout was stored")
			}
		})
	}
}
