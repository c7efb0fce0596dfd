package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"testing"
	"time"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/test/testkit"
)

// Given a canary behind TLS with sticky users and a header route for 10.0.0.0/8 only,
// when the canary weight grows from 30% to 60%,
// then clients speak HTTP/2, the x-version header from 127.0.0.1 is ignored, and every user
// on the canary stays there while more users join it.
func TestProxyTLSStickyAndTrustedSources(t *testing.T) {
	certFile, keyFile, cert := testkit.SelfSigned(t, t.TempDir(), 1, "ramp e2e")
	s := spec{Listen: testkit.FreeAddr(t), Proxy: fmt.Sprintf(`    tls: {certFile: %q, keyFile: %q}
    timeouts: {connect: 2s, firstByte: 30s, clientHeader: 10s, keepAlive: 2m, send: 1m}
    maxRequestBodyBytes: 65536
`, certFile, keyFile), Strategy: `    canary:
      stickiness: {header: {name: x-user-id}}
      trafficRouting:
        trustedSources: [10.0.0.0/8]
        managedRoutes: [{name: testers}]
      steps:
      - setHeaderRoute: {name: testers, match: [{headerName: x-version, headerValue: {exact: canary}}]}
      - setWeight: 30
      - pause: {}
      - setWeight: 60
      - pause: {}
`}
	r := startRamp(t, model(s, "v1"))
	r.apply(model(s, "v2"))
	r.waitFor(30*time.Second, "paused at 30% with a ready canary", func(ro v1alpha1.Rollout) bool {
		return ro.Status.Phase == v1alpha1.PhasePaused && ro.Status.CanaryWeight == 30 && readyOf(ro, 2) > 0
	})
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, ForceAttemptHTTP2: true}
	t.Cleanup(tr.CloseIdleConnections)
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	url := "https://" + s.Listen + "/v1/chat?message=hi"

	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("https: %v", err)
	}
	resp.Body.Close()
	if resp.ProtoMajor != 2 || resp.Header.Get("X-Request-Id") == "" {
		t.Fatalf("proto %s request id %q, want HTTP/2 and an id", resp.Proto, resp.Header.Get("X-Request-Id"))
	}

	got := map[string]int{}
	for range 30 {
		m, err := chat(c, url, http.Header{"X-Version": {"canary"}})
		if err != nil {
			t.Fatal(err)
		}
		got[m]++
	}
	if got["v1"] == 0 {
		t.Fatalf("x-version: canary from an untrusted client: %v, want it ignored (the weights send most to v1)", got)
	}

	const users = 60
	versionOf := func() ([]string, int) {
		out, onCanary := make([]string, users), 0
		for u := range users {
			m, err := chat(c, url, http.Header{"X-User-Id": {fmt.Sprintf("user-%d", u)}})
			if err != nil {
				t.Fatal(err)
			}
			out[u] = m
			if m == "v2" {
				onCanary++
			}
		}
		return out, onCanary
	}
	at30, n30 := versionOf()
	if again, _ := versionOf(); fmt.Sprint(again) != fmt.Sprint(at30) {
		t.Fatalf("users changed version at one weight:\n%v\n%v", at30, again)
	}
	r.must("promote", "chat-api")
	r.waitFor(30*time.Second, "paused at 60%", func(ro v1alpha1.Rollout) bool {
		return ro.Status.Phase == v1alpha1.PhasePaused && ro.Status.CanaryWeight == 60
	})
	at60, n60 := versionOf()
	for u := range users {
		if at30[u] == "v2" && at60[u] != "v2" {
			t.Fatalf("user %d moved back from the canary to %s", u, at60[u])
		}
	}
	if n60 <= n30 {
		t.Errorf("users on the canary: %d at 30%%, %d at 60%%; want more", n30, n60)
	}
	t.Logf("users on the canary: %d/%d at 30%%, %d/%d at 60%%", n30, users, n60, users)
}

func TestHangingInstanceGets504AtTheFirstByteTimeout(t *testing.T) {
	// Given a rollout whose model accepts chats and never answers them (its health check is
	// fine), behind ramp's proxy with a first-byte timeout of 1s
	s := spec{Listen: testkit.FreeAddr(t), Strategy: canarySteps, Proxy: "    timeouts: {firstByte: 1s}\n"}
	startRamp(t, model(s, "v1", "CHAT_LATENCY", "10m", "CHAT_SHUTDOWN_TIMEOUT", "1s"))
	// When a client asks it something
	c := &http.Client{Timeout: 30 * time.Second}
	start := time.Now()
	resp, err := c.Get("http://" + s.Listen + "/v1/chat?message=hi")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	took := time.Since(start)
	// Then the client gets 504 once the timeout passes, instead of hanging
	if resp.StatusCode != http.StatusGatewayTimeout || took < time.Second || took > 5*time.Second {
		t.Fatalf("status %d after %s, want 504 after about 1s", resp.StatusCode, took)
	}
	t.Logf("504 after %s", took.Round(time.Millisecond))
}
