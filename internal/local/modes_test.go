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
	c, st := storedController(t)
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
			wantRefused(t, c, b, tt.want, func() error { _, err := st.GetRollout("chat-api"); return err })
		})
	}
}

// storedController is a controller over a store of its own, closed when the test ends.
func storedController(t *testing.T) (*Controller, *store.Store) {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), DBFile))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	c := newController(deps{store: st})
	t.Cleanup(c.proxies.shutdown)
	t.Cleanup(c.measure.Close)
	return c, st
}

// wantRefused applies b and wants it refused as invalid with want, and nothing stored: read
// fails when what b holds is not in the store.
func wantRefused(t *testing.T, c *Controller, b *spec.Bundle, want string, read func() error) {
	t.Helper()
	_, err := c.ApplyBundle(context.Background(), b)
	if !errors.Is(err, control.ErrInvalid) || err.Error() != control.ErrInvalid.Error()+": "+want {
		t.Fatalf("Apply: %v\nwant %s", err, want)
	}
	if read() == nil {
		t.Error("it was stored")
	}
}
