package e2e

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/test/testkit"
)

// TestControlAPIRefusesRebindingAndTokenlessReads: a web page whose name is rebound to
// 127.0.0.1 must neither read the rollouts (their env holds a DB_PASSWORD) nor change them,
// and a read without the token shows nothing; the CLI, which finds the token in the state
// directory, keeps working.
func TestControlAPIRefusesRebindingAndTokenlessReads(t *testing.T) {
	const password = "e2e-db-password-4f1c"
	s := spec{Listen: testkit.FreeAddr(t), Replicas: 1, Strategy: "    canary:\n      steps:\n      - setWeight: 50\n"}
	r := startRamp(t, model(s, "v1", "DB_PASSWORD", password))
	tok, err := os.ReadFile(filepath.Join(r.stateDir, "token"))
	if err != nil {
		t.Fatal(err)
	}
	token := strings.TrimSpace(string(tok))
	port := r.apiAddr[strings.LastIndex(r.apiAddr, ":")+1:]

	call := func(method, path, host string, header map[string]string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, "http://"+r.apiAddr+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if host != "" {
			req.Host = host
		}
		for k, v := range header {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	bearer := map[string]string{"Authorization": "Bearer " + token}
	refused := []struct {
		name, method, path, host string
		header                   map[string]string
		want                     int
	}{
		{"read without the token", "GET", "/api/v1/rollouts/chat-api", "", nil, 401},
		{"list without the token", "GET", "/api/v1/rollouts", "", nil, 401},
		{"history without the token", "GET", "/api/v1/rollouts/chat-api/history", "", nil, 401},
		{"rebound name reads", "GET", "/api/v1/rollouts", "evil.example:" + port, bearer, 403},
		{"rebound name aborts", "POST", "/api/v1/rollouts/chat-api/abort", "evil.example:" + port, bearer, 403},
		{"cross-site page aborts", "POST", "/api/v1/rollouts/chat-api/abort", "", map[string]string{"Authorization": "Bearer " + token, "Origin": "http://evil.example"}, 403},
		{"rebound name reads metrics", "GET", "/metrics", "evil.example:" + port, nil, 403},
	}
	for _, c := range refused {
		status, body := call(c.method, c.path, c.host, c.header)
		if status != c.want || strings.Contains(body, password) || strings.Contains(body, "chat-api") {
			t.Errorf("%s: %d %s, want %d without the rollout", c.name, status, body, c.want)
		}
	}
	if status, body := call("GET", "/api/v1/rollouts/chat-api", "", bearer); status != 200 || !strings.Contains(body, password) {
		t.Errorf("read with the token: %d, want 200 with the rollout as applied:\n%s", status, body)
	}

	// The CLI reads and writes with the token of the state directory.
	if out := r.must("get", "chat-api", "-o", "json"); !strings.Contains(out, `"name": "chat-api"`) {
		t.Errorf("ramp get: %s", out)
	}
	if out := r.must("status", "chat-api", "--watch=false"); !strings.Contains(out, "successfully rolled out") {
		t.Errorf("ramp status: %s", out)
	}
	r.must("history", "chat-api")
	r.must("events", "chat-api")
	if ro := r.get(); ro.Status.Phase != v1alpha1.PhaseHealthy || ro.Status.StableRevision != 1 {
		t.Errorf("a refused abort changed the rollout: %+v", ro.Status)
	}
	if out := r.apply(model(s, "v2", "DB_PASSWORD", password)); !strings.Contains(out, "rollout/chat-api") {
		t.Errorf("ramp apply: %s", out)
	}
}
