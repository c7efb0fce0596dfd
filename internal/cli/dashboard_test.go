package cli

import (
	"context"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/control"
	"ramp.dev/ramp/internal/kube"
	"ramp.dev/ramp/test/testkit"
)

// dashboardRun is `ramp dashboard` running in Kubernetes mode over a fake cluster.
type dashboardRun struct {
	cluster client.Client
	stdout  *testkit.SyncBuffer
	page    string // the page's address as printed
	token   string // the token of the printed ?token= address, if any
	done    chan int
}

// startDashboard runs `ramp --kubeconfig ... dashboard --address 127.0.0.1:0 ARGS` with the
// given environment and terminal, over a cluster holding a canary rollout in progress.
func startDashboard(t *testing.T, env map[string]string, terminal bool, args ...string) *dashboardRun {
	t.Helper()
	ro := canary("chat-api", v1alpha1.PhaseProgressing, 2, 20, "")
	ro.Namespace = "team-chat"
	cluster := fake.NewClientBuilder().WithScheme(kube.Scheme()).WithObjects(&ro).WithStatusSubresource(&v1alpha1.Rollout{}).Build()
	d := &dashboardRun{cluster: cluster, stdout: &testkit.SyncBuffer{}, done: make(chan int, 1)}
	a := &app{
		stdin: strings.NewReader(""), stdout: d.stdout, stderr: io.Discard,
		getenv:     func(k string) string { return env[k] },
		now:        time.Now,
		isTerminal: func(io.Writer) bool { return terminal },
		dashboardBackend: func() (control.Control, error) {
			return &kube.Commands{Client: cluster, Namespace: "team-chat"}, nil
		},
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		d.done <- a.run(ctx, append([]string{"--kubeconfig", "/nonexistent/kubeconfig", "dashboard", "--address", "127.0.0.1:0"}, args...))
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case code := <-d.done:
			if code != 0 {
				t.Errorf("ramp dashboard exited %d after Ctrl-C:\n%s", code, d.stdout.String())
			}
		case <-time.After(10 * time.Second):
			t.Error("ramp dashboard did not stop")
		}
	})
	printed := regexp.MustCompile(`ramp dashboard: (http://127\.0\.0\.1:\d+/dashboard/)`)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if m := printed.FindStringSubmatch(d.stdout.String()); m != nil {
			d.page = m[1]
			break
		}
		select {
		case code := <-d.done:
			t.Fatalf("ramp dashboard exited %d:\n%s", code, d.stdout.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("ramp dashboard printed no address:\n%s", d.stdout.String())
		}
		time.Sleep(10 * time.Millisecond) // a poll interval, bounded by the deadline above
	}
	if m := regexp.MustCompile(`\?token=([0-9a-f]+)`).FindStringSubmatch(d.stdout.String()); m != nil {
		d.token = m[1]
	}
	return d
}

func (d *dashboardRun) do(t *testing.T, method, path, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, strings.TrimSuffix(d.page, "/dashboard/")+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func (d *dashboardRun) aborted(t *testing.T) bool {
	t.Helper()
	var ro v1alpha1.Rollout
	if err := d.cluster.Get(context.Background(), client.ObjectKey{Namespace: "team-chat", Name: "chat-api"}, &ro); err != nil {
		t.Fatal(err)
	}
	return ro.Status.Abort
}

func TestDashboardServesTheClusterWithTheToken(t *testing.T) {
	// Given ramp dashboard in Kubernetes mode with RAMP_TOKEN, stdout not a terminal
	d := startDashboard(t, map[string]string{"RAMP_TOKEN": "my-token"}, false)
	if strings.Contains(d.stdout.String(), "my-token") {
		t.Fatalf("ramp dashboard printed the token:\n%s", d.stdout.String())
	}
	// Then the page and its read API answer without the token, from the cluster
	if code, body := d.do(t, "GET", "/dashboard/", ""); code != 200 || !strings.Contains(body, "<title>ramp dashboard</title>") {
		t.Fatalf("GET /dashboard/: %d %.200s", code, body)
	}
	if code, body := d.do(t, "GET", "/dashboard/api/rollouts", ""); code != 200 || !strings.Contains(body, `"name": "chat-api"`) || !strings.Contains(body, `"canaryWeight": 20`) {
		t.Fatalf("GET /dashboard/api/rollouts: %d %s", code, body)
	}
	if code, body := d.do(t, "GET", "/dashboard/api/rollouts/chat-api/series", ""); code != http.StatusNotImplemented {
		t.Fatalf("series in Kubernetes mode: %d %s, want 501", code, body)
	}
	// And an abort without the token (or with another) is refused, and the rollout untouched
	for _, tok := range []string{"", "not-my-token"} {
		if code, body := d.do(t, "POST", "/api/v1/rollouts/chat-api/abort", tok); code != http.StatusUnauthorized {
			t.Fatalf("abort with token %q: %d %s, want 401", tok, code, body)
		}
	}
	if d.aborted(t) {
		t.Fatal("a refused abort aborted the rollout")
	}
	// When the token holder aborts, then the cluster's Rollout is aborted
	if code, body := d.do(t, "POST", "/api/v1/rollouts/chat-api/abort", "my-token"); code != 200 || !strings.Contains(body, "rollout/chat-api aborted") {
		t.Fatalf("abort with the token: %d %s", code, body)
	}
	if !d.aborted(t) {
		t.Fatal("the Rollout's status.abort is not set after the dashboard's abort")
	}
}

func TestDashboardPrintsANewTokenOnlyToATerminal(t *testing.T) {
	// On a terminal, without --token, a new token is printed once, in the page's address.
	d := startDashboard(t, nil, true)
	if len(d.token) != 64 {
		t.Fatalf("on a terminal ramp dashboard printed no new token:\n%s", d.stdout.String())
	}
	if code, body := d.do(t, "POST", "/api/v1/rollouts/chat-api/pause", d.token); code != 200 {
		t.Fatalf("pause with the printed token: %d %s", code, body)
	}
	// Elsewhere it is not printed.
	d = startDashboard(t, nil, false)
	if d.token != "" || !strings.Contains(d.stdout.String(), "not printed") {
		t.Fatalf("stdout not a terminal:\n%s", d.stdout.String())
	}
	// --read-only refuses every change, even with RAMP_TOKEN.
	d = startDashboard(t, map[string]string{"RAMP_TOKEN": "my-token"}, true, "--read-only")
	if d.token != "" {
		t.Fatalf("--read-only printed a token:\n%s", d.stdout.String())
	}
	if code, _ := d.do(t, "POST", "/api/v1/rollouts/chat-api/abort", "my-token"); code != http.StatusUnauthorized || d.aborted(t) {
		t.Fatalf("abort on --read-only: %d, want 401", code)
	}
}

func TestDashboardInLocalModePrintsWhereUpServesIt(t *testing.T) {
	h := newHarness(t, nil)
	code, out, errOut := h.run(t, "dashboard")
	if code != 0 || !strings.Contains(out, "local mode serves the dashboard at "+h.url+"/dashboard/") || !strings.Contains(out, h.stateDir) {
		t.Fatalf("ramp dashboard in local mode: exit %d\n%s%s", code, out, errOut)
	}
}

func TestDashboardRefusesABadAddress(t *testing.T) {
	var stderr strings.Builder
	a := &app{stdin: strings.NewReader(""), stdout: io.Discard, stderr: &stderr, getenv: func(string) string { return "" }, now: time.Now,
		dashboardBackend: func() (control.Control, error) { return &kube.Commands{}, nil }}
	code := a.run(context.Background(), []string{"--kubeconfig", "/nonexistent", "dashboard", "--address", "127.0.0.1"})
	if code != exitError || !strings.Contains(stderr.String(), `--address "127.0.0.1"`) || !strings.Contains(stderr.String(), "missing port") {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
}
