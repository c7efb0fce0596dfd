package kube

import (
	"testing"

	"k8s.io/client-go/rest"
)

// TestRateLimits: the controller's client is not left at client-go's 5 QPS / 10 burst; flags
// win over the config, the config over the defaults, and the caller's config is not changed.
func TestRateLimits(t *testing.T) {
	for _, tc := range []struct {
		name     string
		cfgQPS   float32
		cfgBurst int
		qps      float32
		burst    int
		wantQ    float32
		wantB    int
	}{
		{"nothing set", 0, 0, 0, 0, DefaultQPS, DefaultBurst},
		{"flags", 0, 0, 20, 40, 20, 40},
		{"the config's", 7, 9, 0, 0, 7, 9},
		{"flags over the config's", 7, 9, 200, 400, 200, 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := &rest.Config{Host: "https://127.0.0.1:6443", QPS: tc.cfgQPS, Burst: tc.cfgBurst}
			got := rateLimits(in, tc.qps, tc.burst)
			if got.QPS != tc.wantQ || got.Burst != tc.wantB {
				t.Errorf("QPS %v, burst %d; want %v, %d", got.QPS, got.Burst, tc.wantQ, tc.wantB)
			}
			if in.QPS != tc.cfgQPS || in.Burst != tc.cfgBurst {
				t.Errorf("the caller's config changed: %v, %d", in.QPS, in.Burst)
			}
		})
	}
}
