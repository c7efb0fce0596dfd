package local

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestRunGuardsTheAPIListener runs local mode for real and checks that everything its API
// listener serves, /metrics included, refuses a Host that is neither its address nor a listed
// name, and that the rollouts need the token.
func TestRunGuardsTheAPIListener(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{StateDir: dir, APIAddr: "127.0.0.1:0", APIAllowedHosts: []string{"ramp.internal"}}, nil)
	}()
	defer func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("Run did not return 30s after its context ended")
		}
	}()

	var base string
	deadline := time.Now().Add(20 * time.Second)
	for base == "" {
		if b, err := os.ReadFile(filepath.Join(dir, AddrFile)); err == nil {
			base = strings.TrimSpace(string(b))
			break
		}
		select {
		case err := <-done:
			t.Fatalf("Run returned before writing %s: %v", AddrFile, err)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s after 20s", AddrFile)
		}
	}
	tok, err := os.ReadFile(filepath.Join(dir, TokenFile))
	if err != nil {
		t.Fatal(err)
	}
	token := strings.TrimSpace(string(tok))
	port := base[strings.LastIndex(base, ":")+1:]

	tests := []struct {
		name, path, host, token string
		want                    int
	}{
		{"rollouts with the token", "/api/v1/rollouts", "", token, 200},
		{"rollouts without the token", "/api/v1/rollouts", "", "", 401},
		{"rollouts from a rebound name", "/api/v1/rollouts", "evil.example:" + port, token, 403},
		{"rollouts by a listed name", "/api/v1/rollouts", "ramp.internal:" + port, token, 200},
		{"metrics", "/metrics", "", "", 200},
		{"metrics by localhost", "/metrics", "localhost:" + port, "", 200},
		{"metrics from a rebound name", "/metrics", "evil.example:" + port, "", 403},
		{"healthz from a rebound name", "/healthz", "evil.example:" + port, "", 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodGet, base+tt.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			if tt.host != "" {
				req.Host = tt.host
			}
			if tt.token != "" {
				req.Header.Set("Authorization", "Bearer "+tt.token)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Errorf("status %d, want %d: %s", resp.StatusCode, tt.want, body)
			}
			if tt.want == 403 && !strings.Contains(string(body), `host \"`+tt.host+`\" is not allowed`) {
				t.Errorf("403 does not name the host: %s", body)
			}
		})
	}
}

func TestRunRefusesABadAllowedHost(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	err := Run(context.Background(), Options{StateDir: dir, APIAddr: "127.0.0.1:0", APIAllowedHosts: []string{"http://ramp.internal"}}, nil)
	if err == nil || !strings.Contains(err.Error(), `allowed host "http://ramp.internal": give a host name or host:port, without a scheme`) {
		t.Fatalf("err = %v, want the bad entry named", err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("state directory created before the options were checked: %v", err)
	}
}
