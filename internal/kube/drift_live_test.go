package kube

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/engine"
)

// weightRouter keeps the canary weight in a ConfigMap, read and written through the client
// it is built with: a stand-in for a routing object behind the manager's cache.
type weightRouter struct{ c client.Client }

func (w weightRouter) SetRoutes(ctx context.Context, ro *v1alpha1.Rollout, r Routes) error {
	var cm corev1.ConfigMap
	if err := w.c.Get(ctx, client.ObjectKey{Namespace: ro.Namespace, Name: "routes"}, &cm); err != nil {
		return err
	}
	cm.Data = map[string]string{"weight": strconv.Itoa(int(r.CanaryWeight))}
	return w.c.Update(ctx, &cm)
}

func (w weightRouter) ObservedRoutes(ctx context.Context, ro *v1alpha1.Rollout) (Routes, error) {
	var cm corev1.ConfigMap
	if err := w.c.Get(ctx, client.ObjectKey{Namespace: ro.Namespace, Name: "routes"}, &cm); err != nil {
		return Routes{}, err
	}
	n, err := strconv.Atoi(cm.Data["weight"])
	c := ro.Spec.Strategy.Canary
	return Routes{StableService: c.StableService, CanaryService: c.CanaryService, CanaryWeight: int32(n)}, err
}

// A cache that lags behind ramp's own last write is not a change by hand: drift is reported
// only when the API server itself shows it.
func TestDriftIsConfirmedPastTheCache(t *testing.T) {
	saved := routerFactories["nginx"]
	routerFactories["nginx"] = func(c client.Client) Router { return weightRouter{c} }
	t.Cleanup(func() { routerFactories["nginx"] = saved })

	ro := &v1alpha1.Rollout{ObjectMeta: metav1.ObjectMeta{Name: "chat-api", Namespace: ns}}
	ro.Spec.Strategy.Canary = &v1alpha1.CanaryStrategy{StableService: "s", CanaryService: "c",
		TrafficRouting: &v1alpha1.TrafficRouting{Nginx: &v1alpha1.NginxTrafficRouting{}}}
	routes := func(weight string) *corev1.ConfigMap {
		return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "routes", Namespace: ns}, Data: map[string]string{"weight": weight}}
	}
	// ramp set 50 (the status says so); the decision wants 50 again.
	before := &v1alpha1.RolloutStatus{CanaryRevision: 2, CanaryWeight: 50}
	out := engine.Output{Routes: engine.Routes{Stable: 1, Canary: 2, Weights: map[int64]int32{1: 50, 2: 50}}}
	for _, tt := range []struct {
		name        string
		cached      string
		live        string // "" means no live reader
		wantDrifted bool
	}{
		{"cache lags, server agrees with ramp", "0", "50", false},
		{"changed by hand on the server", "0", "0", true},
		{"no live reader: the cache is believed", "0", "", true},
		{"cache current", "50", "50", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cached := fake.NewClientBuilder().WithScheme(Scheme()).WithObjects(routes(tt.cached)).Build()
			rec := events.NewFakeRecorder(10)
			o := ReconcilerOptions{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
			if tt.live != "" {
				o.APIReader = fake.NewClientBuilder().WithScheme(Scheme()).WithObjects(routes(tt.live)).Build()
			}
			r := NewReconciler(cached, rec, o)
			if err := r.route(context.Background(), ro, before, out, mirrors{}); err != nil {
				t.Fatal(err)
			}
			drifted := false
			for len(rec.Events) > 0 {
				drifted = drifted || strings.Contains(<-rec.Events, "TrafficDrift")
			}
			if drifted != tt.wantDrifted {
				t.Errorf("TrafficDrift reported: %v, want %v", drifted, tt.wantDrifted)
			}
		})
	}
}

// countingReader counts the gets that go past the cache.
type countingReader struct {
	client.Reader
	gets int
}

func (c *countingReader) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	c.gets++
	return c.Reader.Get(ctx, key, obj, opts...)
}

// A Rollout read from a cache that is behind the controller's own last write is read again
// past the cache, so no decision is taken from an older status; a cache that holds what the
// controller wrote costs no read.
func TestStaleRolloutIsReadAgain(t *testing.T) {
	ro := &v1alpha1.Rollout{ObjectMeta: metav1.ObjectMeta{Name: "chat-api", Namespace: ns}}
	server := fake.NewClientBuilder().WithScheme(Scheme()).WithObjects(ro).WithStatusSubresource(&v1alpha1.Rollout{}).Build()
	live := &countingReader{Reader: server}
	r := NewReconciler(server, events.NewFakeRecorder(10), ReconcilerOptions{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), APIReader: live})
	ctx := context.Background()
	key := client.ObjectKeyFromObject(ro)

	var cached v1alpha1.Rollout
	if err := server.Get(ctx, key, &cached); err != nil {
		t.Fatal(err)
	}
	stale := cached.DeepCopy() // what a lagging cache still holds after the write below
	cached.Status.CanaryWeight = 50
	if err := server.Status().Update(ctx, &cached); err != nil {
		t.Fatal(err)
	}
	r.wrote(&cached)

	if err := r.fresh(ctx, key, stale); err != nil {
		t.Fatal(err)
	}
	if stale.Status.CanaryWeight != 50 || live.gets != 1 {
		t.Fatalf("from a stale cache: weight %d after %d live gets, want 50 after 1", stale.Status.CanaryWeight, live.gets)
	}
	current := cached.DeepCopy()
	if err := r.fresh(ctx, key, current); err != nil {
		t.Fatal(err)
	}
	if live.gets != 1 {
		t.Errorf("a cache holding the controller's own write was read again (%d live gets)", live.gets)
	}
}
