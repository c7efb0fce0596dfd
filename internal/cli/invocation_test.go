package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"ramp.dev/ramp/api/v1alpha1"
)

// The hints the CLI prints repeat how the user ran it: `kubectl ramp -n carepath-demo
// promote chat-api` for the plugin with a namespace, plain `ramp promote` in local mode.
func TestHintsFollowTheInvocation(t *testing.T) {
	paused := canary("chat-api", v1alpha1.PhasePaused, 1, 25, "")
	paused.Status.PauseConditions = []v1alpha1.PauseCondition{{Reason: v1alpha1.PauseReasonStep}}
	line, _ := describeProgress(&paused)
	for _, tc := range []struct {
		a    *app
		want string
	}{
		{&app{plugin: true, namespace: "carepath-demo", getenv: noEnv}, "run `kubectl ramp -n carepath-demo promote chat-api` or `kubectl ramp -n carepath-demo resume chat-api` to continue"},
		{&app{kubeconfig: "/home/me/my cluster.yaml", getenv: noEnv}, "run `ramp --kubeconfig '/home/me/my cluster.yaml' promote chat-api`"},
		{&app{getenv: noEnv, stateDir: t.TempDir()}, "run `ramp promote chat-api` or `ramp resume chat-api` to continue"},
	} {
		if got := tc.a.hints(line); !strings.Contains(got, tc.want) {
			t.Errorf("hint %q; want it to contain %q", got, tc.want)
		}
	}
	// An engine message read from the cluster gets the same treatment.
	a := &app{plugin: true, namespace: "carepath-demo", getenv: noEnv}
	if got := a.hints("step 2/3: paused until `ramp promote`; canary weight 20%"); got != "step 2/3: paused until `kubectl ramp -n carepath-demo promote`; canary weight 20%" {
		t.Errorf("engine message hint %q", got)
	}
	// The plugin's help shows kubectl ramp in its examples.
	var out bytes.Buffer
	p := &app{plugin: true, getenv: noEnv, stdout: &out, stderr: &out, stdin: strings.NewReader("")}
	if code := p.run(context.Background(), []string{"promote", "--help"}); code != 0 || !strings.Contains(out.String(), "  kubectl ramp promote chat-api") || strings.Contains(out.String(), "\n  ramp promote") {
		t.Errorf("kubectl ramp promote --help: code %d\n%s", code, out.String())
	}
}

func noEnv(string) string { return "" }

// With KUBECONFIG set and no local mode named, the verbs work on the cluster, as kubectl's
// users expect; a refused local connection says how to reach a cluster.
func TestKubeconfigEnvPicksKubernetesMode(t *testing.T) {
	env := map[string]string{"KUBECONFIG": filepath.Join(t.TempDir(), "none")}
	getenv := func(k string) string { return env[k] }
	dir := t.TempDir()
	a := &app{getenv: getenv, stateDir: dir}
	if !a.kubernetesMode() {
		t.Error("KUBECONFIG set, no local mode named: want Kubernetes mode")
	}
	if (&app{getenv: getenv, stateDir: dir, server: "http://127.0.0.1:1"}).kubernetesMode() {
		t.Error("KUBECONFIG and --server: want local mode")
	}
	if err := os.WriteFile(filepath.Join(dir, addrFile), []byte("127.0.0.1:1"), 0o600); err != nil {
		t.Fatal(err)
	}
	if (&app{getenv: getenv, stateDir: dir}).kubernetesMode() {
		t.Error("KUBECONFIG and a running ramp up's api.addr: want local mode")
	}

	// A refused local connection names --kubeconfig, and KUBECONFIG when it is set.
	for _, tc := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{}, "for Kubernetes mode, give --kubeconfig or --context, set KUBECONFIG"},
		{env, "KUBECONFIG is set, but --server, RAMP_SERVER or " + filepath.Join(dir, addrFile) + " picked local mode: give --kubeconfig"},
	} {
		var stdout, stderr bytes.Buffer
		a := &app{getenv: func(k string) string { return tc.env[k] }, stdout: &stdout, stderr: &stderr, stdin: strings.NewReader(""),
			now: time.Now, pollInterval: time.Millisecond}
		code := a.run(context.Background(), []string{"--state-dir", dir, "get"})
		if code != 1 || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("get against a closed local API: code %d, stderr %q; want it to contain %q", code, stderr.String(), tc.want)
		}
	}
}

// get -A needs Kubernetes mode and no name; its table leads with the namespace. WEIGHT shows
// the real share beside the step's, and STEP shows status.step (also for blueGreen).
func TestGetAllNamespacesAndRealWeight(t *testing.T) {
	h := newHarness(t, map[string][]v1alpha1.Rollout{"chat-api": {healthy("chat-api")}})
	if code, _, errOut := h.run(t, "get", "-A"); code != 1 || !strings.Contains(errOut, "-A/--all-namespaces") || !strings.Contains(errOut, "Kubernetes mode") {
		t.Errorf("get -A in local mode: code %d, stderr %q", code, errOut)
	}
	a := &app{getenv: noEnv, plugin: true}
	var out bytes.Buffer
	a.stdout, a.stderr = &out, &out
	root := a.newRoot()
	root.SetArgs([]string{"get", "-A", "chat-api"})
	root.SetOut(&out)
	if err := root.Execute(); err == nil || !strings.Contains(err.Error(), `not "chat-api" across all`) {
		t.Errorf("get -A NAME: %v", err)
	}

	c := canary("chat-api", v1alpha1.PhasePaused, 1, 5, "")
	c.Namespace = "carepath-demo"
	c.Status.Step = "2/8"
	c.Status.ObservedWeight = ptrInt32(25)
	bg := healthy("web")
	bg.Namespace = "shop"
	bg.Spec.Strategy = v1alpha1.Strategy{BlueGreen: &v1alpha1.BlueGreenStrategy{}}
	bg.Status.ActiveRevision, bg.Status.PreviewRevision, bg.Status.StableRevision = 5, 6, 5
	bg.Status.Step = "1/2"
	out.Reset()
	a = &app{getenv: noEnv, stdout: &out, now: func() time.Time { return time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC) }}
	a.printTable(&out, []v1alpha1.Rollout{c, bg}, false, true, a.now())
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	for i, want := range []string{
		"NAMESPACE NAME STRATEGY PHASE STEP WEIGHT STABLE CANARY READY AGE",
		"carepath-demo chat-api canary Paused 2/8 25% (set 5%) 1 2 5/6 60m",
		"shop web blueGreen Healthy 1/2 0% 5 6 5/6 60m",
	} {
		if i >= len(lines) || strings.Join(strings.Fields(lines[i]), " ") != want {
			t.Errorf("line %d = %q, want %q\n%s", i, lines[min(i, len(lines)-1)], want, out.String())
		}
	}
}

func ptrInt32(v int32) *int32 { return &v }
