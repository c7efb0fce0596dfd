package k8s

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/rest"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/kube"
	"ramp.dev/ramp/internal/server"
	"ramp.dev/ramp/test/k8senv"
	"ramp.dev/ramp/test/testkit"
)

// testDashboard: `ramp dashboard --kubeconfig` serves the cluster's Rollouts, and its abort
// (with the token) aborts the Rollout in the cluster, which the controller carries out.
func testDashboard(t *testing.T, env *k8senv.Env, cfg *rest.Config, metrics *metricsServer) {
	startController(t, cfg, "dashboard", metrics, kube.Options{})
	s := newScenario(t, env, "dashboard", "chat-api-stable", "chat-api-canary")
	s.createRollout(v1alpha1.Strategy{Canary: &v1alpha1.CanaryStrategy{
		StableService: "chat-api-stable", CanaryService: "chat-api-canary",
		Steps: []v1alpha1.CanaryStep{{SetWeight: ptr(int32(34))}, {Pause: &v1alpha1.RolloutPause{}}},
	}})
	s.waitPhase(v1alpha1.PhaseHealthy, 1, 90*time.Second)
	s.setImage(v2)
	s.waitPhase(v1alpha1.PhasePaused, 1, 60*time.Second)

	// Given ramp dashboard on the cluster, through the kubeconfig
	bin, err := rampBinary()
	if err != nil {
		t.Fatal(err)
	}
	addr := testkit.FreeAddr(t)
	out := &testkit.SyncBuffer{}
	cmd := exec.Command(bin, "--kubeconfig", env.Kubeconfig, "-n", s.ns, "dashboard", "--address", addr)
	cmd.Env = append(os.Environ(), "RAMP_TOKEN=dashboard-token")
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Signal(os.Interrupt); _ = cmd.Wait() })
	base := "http://" + addr
	var list []server.RolloutSummary
	eventually(t, 30*time.Second, "the dashboard lists the paused Rollout", func(context.Context) error {
		code, body := httpDo(base+"/dashboard/api/rollouts", "GET", "")
		if code != 200 {
			return fmt.Errorf("GET /dashboard/api/rollouts: %d %s (ramp dashboard: %s)", code, body, out.String())
		}
		if err := json.Unmarshal([]byte(body), &list); err != nil {
			return err
		}
		if len(list) != 1 || list[0].Name != "chat-api" || list[0].Phase != "Paused" || list[0].CanaryWeight != 34 {
			return fmt.Errorf("list %+v", list)
		}
		return nil
	})
	// Then the rollout's view holds its revisions (from the ControllerRevisions) and events
	code, body := httpDo(base+"/dashboard/api/rollouts/chat-api", "GET", "")
	var v server.RolloutView
	if code != 200 || json.Unmarshal([]byte(body), &v) != nil || len(v.History) < 2 || len(v.Events) == 0 {
		t.Fatalf("GET /dashboard/api/rollouts/chat-api: %d %s", code, body)
	}
	// And an abort without the token is refused; with it, the controller aborts the rollout
	if code, body := httpDo(base+"/api/v1/rollouts/chat-api/abort", "POST", ""); code != http.StatusUnauthorized {
		t.Fatalf("abort without the token: %d %s", code, body)
	}
	if code, body := httpDo(base+"/api/v1/rollouts/chat-api/abort", "POST", "dashboard-token"); code != 200 {
		t.Fatalf("abort with the token: %d %s", code, body)
	}
	s.waitPhase(v1alpha1.PhaseDegraded, 1, 60*time.Second)
	if strings.Contains(out.String(), "dashboard-token") {
		t.Fatalf("ramp dashboard printed the token:\n%s", out.String())
	}
}

func httpDo(url, method, token string) (int, string) {
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		return 0, err.Error()
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(data)
}
