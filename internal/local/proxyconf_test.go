package local

import (
	"net/netip"
	"reflect"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/intstr"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/proxy"
)

func TestProxySettings(t *testing.T) {
	dur := func(s string) *intstr.IntOrString { v := intstr.FromString(s); return &v }
	tests := []struct {
		name string
		ps   *v1alpha1.ProxySpec
		want proxy.Settings
		lc   listenerConfig
	}{
		// A hanging instance is cut at the first-byte timeout's default when none is set.
		{"none", nil, proxy.Settings{FirstByteTimeout: 60 * time.Second}, listenerConfig{}},
		{"timeouts without firstByte", &v1alpha1.ProxySpec{Timeouts: &v1alpha1.ProxyTimeouts{Idle: dur("30")}},
			proxy.Settings{FirstByteTimeout: 60 * time.Second, IdleTimeout: 30 * time.Second}, listenerConfig{}},
		{"firstByte 0 turns it off", &v1alpha1.ProxySpec{Timeouts: &v1alpha1.ProxyTimeouts{FirstByte: dur("0")}},
			proxy.Settings{}, listenerConfig{}},
		{"all", &v1alpha1.ProxySpec{
			TLS:              &v1alpha1.ProxyTLS{CertFile: "c", KeyFile: "k"},
			UpstreamProtocol: "h2c",
			Timeouts: &v1alpha1.ProxyTimeouts{Connect: dur("2s"), FirstByte: dur("2m"), Idle: dur("30"),
				ClientHeader: dur("10s"), KeepAlive: dur("2m"), Send: dur("45")},
			MaxRequestBodyBytes:    100,
			MaxRequestHeaderBytes:  200,
			MaxResponseHeaderBytes: 300,
		}, proxy.Settings{ConnectTimeout: 2 * time.Second, FirstByteTimeout: 2 * time.Minute, IdleTimeout: 30 * time.Second, H2C: true, MaxRequestBodyBytes: 100,
			MaxResponseHeaderBytes: 300},
			listenerConfig{certFile: "c", keyFile: "k", maxHeaderBytes: 200,
				headerTimeout: 10 * time.Second, idleTimeout: 2 * time.Minute, writeTimeout: 45 * time.Second}},
		{"http1", &v1alpha1.ProxySpec{UpstreamProtocol: "http1"}, proxy.Settings{FirstByteTimeout: 60 * time.Second}, listenerConfig{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := &v1alpha1.Rollout{Spec: v1alpha1.RolloutSpec{Proxy: tc.ps}}
			if got := proxySettings(r); got != tc.want {
				t.Errorf("settings %+v, want %+v", got, tc.want)
			}
			if got := listenerConfigOf(r); got != tc.lc {
				t.Errorf("listener %+v, want %+v", got, tc.lc)
			}
		})
	}
	sc, err := (listenerConfig{maxHeaderBytes: 200, headerTimeout: time.Second, idleTimeout: time.Minute, writeTimeout: time.Hour}).serverConfig(nil)
	if err != nil || sc.MaxHeaderBytes != 200 || sc.HeaderTimeout != time.Second || sc.IdleTimeout != time.Minute || sc.WriteTimeout != time.Hour {
		t.Errorf("server config %+v, %v", sc, err)
	}
	if _, err := (listenerConfig{certFile: "/nonexistent.crt", keyFile: "/nonexistent.key"}).serverConfig(nil); err == nil ||
		err.Error() != `spec.proxy.tls: "/nonexistent.crt" cannot load: certificate file: stat /nonexistent.crt: no such file or directory` {
		t.Errorf("missing certificate: %v", err)
	}
}

func TestRoutingExtras(t *testing.T) {
	canary := &v1alpha1.CanaryStrategy{
		TrafficRouting: &v1alpha1.TrafficRouting{TrustedSources: []string{"10.0.0.0/8", "::1/128"}},
		Stickiness:     &v1alpha1.Stickiness{Header: &v1alpha1.StickyHeader{Name: "x-user-id"}, Cookie: &v1alpha1.StickyCookie{Name: "b", MaxAgeSeconds: 60}},
		Mirror:         &v1alpha1.CanaryMirror{Percentage: 10, MaxConcurrent: 4, MaxBodyBytes: 1000},
	}
	tests := []struct {
		name     string
		strategy v1alpha1.Strategy
		status   v1alpha1.RolloutStatus
		want     proxy.Table
		pools    []int64
	}{
		{"rolling update has none", v1alpha1.Strategy{RollingUpdate: &v1alpha1.RollingUpdateStrategy{}}, v1alpha1.RolloutStatus{CanaryRevision: 2}, proxy.Table{}, nil},
		{"canary in progress mirrors", v1alpha1.Strategy{Canary: canary}, v1alpha1.RolloutStatus{StableRevision: 1, CanaryRevision: 2}, proxy.Table{
			TrustedSources: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("::1/128")},
			Sticky:         &proxy.Sticky{Header: "x-user-id", Cookie: "b", CookieMaxAge: time.Minute},
			Mirror:         &proxy.Mirror{Revision: 2, Percent: 10, MaxConcurrent: 4, MaxBodyBytes: 1000},
		}, []int64{2}},
		{"no canary, no mirror", v1alpha1.Strategy{Canary: canary}, v1alpha1.RolloutStatus{StableRevision: 2}, proxy.Table{
			TrustedSources: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("::1/128")},
			Sticky:         &proxy.Sticky{Header: "x-user-id", Cookie: "b", CookieMaxAge: time.Minute},
		}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := &v1alpha1.Rollout{Spec: v1alpha1.RolloutSpec{Strategy: tc.strategy}, Status: tc.status}
			var got proxy.Table
			var pools []int64
			routingExtras(r, &got, func(rev int64) { pools = append(pools, rev) })
			if !reflect.DeepEqual(got, tc.want) || !reflect.DeepEqual(pools, tc.pools) {
				t.Errorf("table %+v pools %v, want %+v %v", got, pools, tc.want, tc.pools)
			}
		})
	}
}
