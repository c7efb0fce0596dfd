package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/control"
	"ramp.dev/ramp/internal/local"
	"ramp.dev/ramp/internal/server"
	"ramp.dev/ramp/internal/spec"
)

const testToken = "cli-test-token"

// fakeBackend serves rollouts whose Get answers walk through a list of states, the last one
// repeating. Calls it does not implement panic through the nil embedded Control.
type fakeBackend struct {
	control.Control

	mu     sync.Mutex
	states map[string][]v1alpha1.Rollout
	gets   map[string]int
	revs   []control.Revision
	calls  []string
	// undo is what Undo answers; zero means a new revision 3 from revision 1.
	undo control.UndoResult
	// getErrs[i] non-nil makes the i-th Get of a rollout fail with it.
	getErrs []error
}

func (f *fakeBackend) Get(ctx context.Context, name string) (*v1alpha1.Rollout, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	states, ok := f.states[name]
	if !ok {
		return nil, fmt.Errorf("rollout %s: %w", name, control.ErrNotFound)
	}
	n := f.gets[name]
	f.gets[name]++
	if n < len(f.getErrs) && f.getErrs[n] != nil {
		return nil, f.getErrs[n]
	}
	i := min(n, len(states)-1)
	r := states[i]
	return &r, nil
}

func (f *fakeBackend) List(ctx context.Context) ([]v1alpha1.Rollout, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []v1alpha1.Rollout
	for _, name := range []string{"chat-api", "web"} {
		if s, ok := f.states[name]; ok {
			out = append(out, s[len(s)-1])
		}
	}
	return out, nil
}

func (f *fakeBackend) Apply(ctx context.Context, yaml []byte) ([]string, error) {
	b, err := fakeLoad(yaml)
	if err != nil {
		return nil, control.Invalid(err)
	}
	var out []string
	for _, r := range b.Rollouts {
		out = append(out, "rollout/"+r.Name+" configured")
	}
	return out, nil
}

func (f *fakeBackend) Pause(ctx context.Context, name string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "pause "+name)
	return "rollout/" + name + " paused", nil
}

func (f *fakeBackend) Promote(ctx context.Context, name string, full bool) (string, error) {
	if name != "chat-api" {
		return "", fmt.Errorf("rollout %s: %w", name, control.ErrNotFound)
	}
	return "", fmt.Errorf("promote: rollout %s is not paused: %w", name, control.ErrConflict)
}

func (f *fakeBackend) Undo(ctx context.Context, name string, to int64) (control.UndoResult, error) {
	if f.undo.Target == 0 {
		return control.UndoResult{Target: 1, Revision: 3, New: true}, nil
	}
	return f.undo, nil
}

func (f *fakeBackend) Restart(ctx context.Context, name string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "restart "+name)
	return "rollout/" + name + " restarting", nil
}

func (f *fakeBackend) History(ctx context.Context, name string) ([]control.Revision, error) {
	return f.revs, nil
}

func (f *fakeBackend) Events(ctx context.Context, name string, afterSeq uint64) ([]control.Event, error) {
	if afterSeq >= 1 {
		return nil, nil
	}
	return []control.Event{{Seq: 1, Rollout: name, Reason: "RolloutCompleted", Message: "revision 2 is stable"}}, nil
}

// fakeLoad accepts "rollout: NAME" lines and rejects any input containing "bad".
func fakeLoad(data []byte) (*spec.Bundle, error) {
	if bytes.Contains(data, []byte("bad")) {
		return nil, errors.Join(
			errors.New("spec.strategy.canary.steps[2].setWeight: 150 is not between 0 and 100"),
			errors.New("spec.template: exactly one of process or upstreams is required"),
		)
	}
	b := &spec.Bundle{}
	for line := range strings.SplitSeq(string(data), "\n") {
		if name, ok := strings.CutPrefix(line, "rollout: "); ok {
			b.Rollouts = append(b.Rollouts, v1alpha1.Rollout{ObjectMeta: metav1.ObjectMeta{Name: name}})
		}
	}
	return b, nil
}

type harness struct {
	fb       *fakeBackend
	url      string
	stateDir string
	env      map[string]string
	stdin    string
	runLocal func(ctx context.Context, opts local.Options, apply []byte) error
	// load is the app's loader; nil means fakeLoad.
	load func([]byte) (*spec.Bundle, error)
}

func newHarness(t *testing.T, states map[string][]v1alpha1.Rollout) *harness {
	t.Helper()
	fb := &fakeBackend{states: states, gets: map[string]int{}}
	srv := httptest.NewServer(server.New(fb, testToken, nil))
	t.Cleanup(srv.Close)
	return &harness{fb: fb, url: srv.URL, stateDir: t.TempDir(), env: map[string]string{"RAMP_TOKEN": testToken}}
}

// run runs the CLI with --server and --state-dir set to the harness's.
func (h *harness) run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	load := h.load
	if load == nil {
		load = fakeLoad
	}
	a := &app{
		stdin:        strings.NewReader(h.stdin),
		stdout:       &stdout,
		stderr:       &stderr,
		getenv:       func(k string) string { return h.env[k] },
		now:          func() time.Time { return time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC) },
		load:         load,
		runLocal:     h.runLocal,
		pollInterval: 5 * time.Millisecond,
	}
	full := append([]string{"--state-dir", h.stateDir}, args...)
	if h.url != "" {
		full = append([]string{"--server", h.url}, full...)
	}
	code := a.run(context.Background(), full)
	return code, stdout.String(), stderr.String()
}

func i32(v int32) *int32 { return &v }

func canary(name string, phase v1alpha1.RolloutPhase, step int32, weight int32, msg string) v1alpha1.Rollout {
	return v1alpha1.Rollout{
		ObjectMeta: metav1.ObjectMeta{Name: name, Generation: 2, CreationTimestamp: metav1.NewTime(time.Date(2026, 1, 1, 11, 0, 0, 0, time.UTC))},
		Spec: v1alpha1.RolloutSpec{Strategy: v1alpha1.Strategy{Canary: &v1alpha1.CanaryStrategy{
			Steps: make([]v1alpha1.CanaryStep, 8),
		}}},
		Status: v1alpha1.RolloutStatus{
			Phase: phase, Message: msg, ObservedGeneration: 2,
			CurrentRevision: 2, StableRevision: 1, CanaryRevision: 2,
			CurrentStepIndex: i32(step), CanaryWeight: weight,
			Revisions: []v1alpha1.RevisionStatus{
				{Revision: 1, Role: v1alpha1.RoleStable, Weight: 100 - weight, Desired: 4, Ready: 4},
				{Revision: 2, Role: v1alpha1.RoleCanary, Weight: weight, Desired: 2, Ready: 1},
			},
		},
	}
}

func healthy(name string) v1alpha1.Rollout {
	r := canary(name, v1alpha1.PhaseHealthy, 8, 0, "")
	r.Status.StableRevision, r.Status.CanaryRevision = 2, 0
	return r
}

func TestCommandTree(t *testing.T) {
	a := &app{getenv: func(string) string { return "" }}
	root := a.newRoot()
	verbs := []string{"up", "serve", "apply", "get", "status", "promote", "pause", "resume", "abort", "retry", "undo", "restart", "history", "events", "lint"}
	for _, v := range verbs {
		cmd, _, err := root.Find([]string{v})
		if err != nil || cmd.Name() != v {
			t.Errorf("verb %s: not found (%v)", v, err)
			continue
		}
		if cmd.Short == "" || cmd.Example == "" {
			t.Errorf("verb %s: needs a one-line description and an example", v)
		}
	}
	h := &harness{stateDir: t.TempDir()}
	if code, out, _ := h.run(t, "--help"); code != 0 || !strings.Contains(out, "status") {
		t.Errorf("--help: code %d, output %q", code, out)
	}
	if code, _, errOut := h.run(t, "frobnicate"); code != 1 || !strings.HasPrefix(errOut, "error: ") {
		t.Errorf("unknown verb: code %d, stderr %q", code, errOut)
	}
	// --help must never show the token, even when it comes from the environment.
	h.env = map[string]string{"RAMP_TOKEN": "secret-from-env"}
	if _, out, _ := h.run(t, "pause", "--help"); strings.Contains(out, "secret-from-env") {
		t.Errorf("help shows the token:\n%s", out)
	}
}

func TestLint(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(good, []byte("rollout: chat-api\n"), 0o600)
	os.WriteFile(bad, []byte("bad: true\n"), 0o600)
	tests := []struct {
		name       string
		args       []string
		stdin      string
		wantCode   int
		wantOut    []string
		wantErrOut []string
	}{
		{"valid", []string{"-f", good}, "", 0, []string{good + ": ok"}, nil},
		{"invalid", []string{"-f", bad}, "", 1, nil, []string{
			"error: " + bad + ": spec.strategy.canary.steps[2].setWeight: 150 is not between 0 and 100",
			"error: " + bad + ": spec.template: exactly one of process or upstreams is required"}},
		{"both", []string{"-f", good, "-f", bad}, "", 1, []string{good + ": ok"}, []string{"error: " + bad + ": spec.template"}},
		{"stdin", []string{"-f", "-"}, "rollout: x\n", 0, []string{"<stdin>: ok"}, nil},
		{"missing file", []string{"-f", filepath.Join(dir, "nope.yaml")}, "", 1, nil, []string{"no such file"}},
		{"no -f", nil, "", 1, nil, []string{"-f FILE is required"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// No server at all: lint is offline.
			h := &harness{stateDir: t.TempDir(), stdin: tt.stdin}
			code, out, errOut := h.run(t, append([]string{"lint"}, tt.args...)...)
			if code != tt.wantCode {
				t.Errorf("code %d, want %d (stderr %q)", code, tt.wantCode, errOut)
			}
			for _, w := range tt.wantOut {
				if !strings.Contains(out, w) {
					t.Errorf("stdout %q lacks %q", out, w)
				}
			}
			for _, w := range tt.wantErrOut {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr %q lacks %q", errOut, w)
				}
			}
		})
	}
}

func TestStatusExitCodes(t *testing.T) {
	unobserved := healthy("chat-api")
	unobserved.Generation = 3 // the spec changed; the status is the old one
	paused := canary("chat-api", v1alpha1.PhasePaused, 1, 25, "")
	paused.Status.PauseConditions = []v1alpha1.PauseCondition{{Reason: v1alpha1.PauseReasonStep}}
	tests := []struct {
		name       string
		states     []v1alpha1.Rollout
		args       []string
		wantCode   int
		wantOut    []string
		wantErrOut string
	}{
		{"healthy", []v1alpha1.Rollout{healthy("chat-api")}, nil, 0,
			[]string{`rollout "chat-api" successfully rolled out (revision 2)`}, ""},
		{"progresses then healthy", []v1alpha1.Rollout{
			canary("chat-api", v1alpha1.PhaseProgressing, 0, 10, ""),
			canary("chat-api", v1alpha1.PhaseProgressing, 0, 10, ""),
			canary("chat-api", v1alpha1.PhaseProgressing, 1, 25, ""),
			paused,
			healthy("chat-api"),
		}, nil, 0, []string{
			"Waiting for rollout chat-api: step 1/8, canary weight 10%, 1/2 canary ready\n" +
				"Waiting for rollout chat-api: step 2/8, canary weight 25%, 1/2 canary ready\n" +
				"Rollout chat-api paused (CanaryPauseStep): step 2/8, canary weight 25%, 1/2 canary ready; run `ramp promote chat-api` or `ramp resume chat-api` to continue\n" +
				`rollout "chat-api" successfully rolled out (revision 2)` + "\n",
		}, ""},
		{"new spec not yet observed", []v1alpha1.Rollout{unobserved, healthy("chat-api")}, nil, 0,
			[]string{"spec update to be observed", "successfully rolled out"}, ""},
		{"degraded", []v1alpha1.Rollout{
			canary("chat-api", v1alpha1.PhaseProgressing, 2, 25, ""),
			canary("chat-api", v1alpha1.PhaseDegraded, 2, 0, "analysis error-rate failed: 0.12 > 0.01"),
		}, nil, 1, nil, `error: rollout "chat-api" is degraded: analysis error-rate failed: 0.12 > 0.01`},
		{"never finishes", []v1alpha1.Rollout{canary("chat-api", v1alpha1.PhaseProgressing, 2, 25, "")}, []string{"--timeout", "150ms"}, 2,
			[]string{"Waiting for rollout chat-api"}, "error: timed out after 150ms waiting for rollout chat-api"},
		{"no watch, progressing", []v1alpha1.Rollout{canary("chat-api", v1alpha1.PhaseProgressing, 2, 25, "")}, []string{"--watch=false"}, 3,
			[]string{"Waiting for rollout chat-api: step 3/8"}, ""},
		{"no watch, paused", []v1alpha1.Rollout{paused}, []string{"--watch=false"}, 3, []string{"paused"}, ""},
		{"no watch, healthy", []v1alpha1.Rollout{healthy("chat-api")}, []string{"--watch=false"}, 0, []string{"successfully rolled out"}, ""},
		{"no watch, degraded", []v1alpha1.Rollout{canary("chat-api", v1alpha1.PhaseDegraded, 2, 0, "aborted by user")}, []string{"--watch=false"}, 1, nil, "aborted by user"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, map[string][]v1alpha1.Rollout{"chat-api": tt.states})
			code, out, errOut := h.run(t, append([]string{"status", "chat-api"}, tt.args...)...)
			if code != tt.wantCode {
				t.Errorf("code %d, want %d\nstdout: %s\nstderr: %s", code, tt.wantCode, out, errOut)
			}
			for _, w := range tt.wantOut {
				if !strings.Contains(out, w) {
					t.Errorf("stdout lacks %q:\n%s", w, out)
				}
			}
			if !strings.Contains(errOut, tt.wantErrOut) {
				t.Errorf("stderr lacks %q:\n%s", tt.wantErrOut, errOut)
			}
		})
	}
	t.Run("unknown rollout", func(t *testing.T) {
		h := newHarness(t, nil)
		code, _, errOut := h.run(t, "status", "nope")
		if code != 1 || !strings.Contains(errOut, "error: rollout nope: not found") {
			t.Errorf("code %d, stderr %q", code, errOut)
		}
	})
}

func TestGet(t *testing.T) {
	bg := healthy("web")
	bg.Spec.Strategy = v1alpha1.Strategy{BlueGreen: &v1alpha1.BlueGreenStrategy{}}
	bg.Status.ActiveRevision, bg.Status.PreviewRevision, bg.Status.StableRevision = 5, 6, 5
	h := newHarness(t, map[string][]v1alpha1.Rollout{
		"chat-api": {canary("chat-api", v1alpha1.PhaseProgressing, 2, 25, "waiting for analysis")},
		"web":      {bg},
	})

	code, out, errOut := h.run(t, "get", "chat-api", "-o", "json")
	var r v1alpha1.Rollout
	if code != 0 || json.Unmarshal([]byte(out), &r) != nil || r.Name != "chat-api" || r.Kind != v1alpha1.KindRollout || r.Status.CanaryWeight != 25 {
		t.Errorf("get chat-api -o json: code %d, %+v, stderr %q\n%s", code, r, errOut, out)
	}

	code, out, _ = h.run(t, "get", "-o", "json")
	var list v1alpha1.RolloutList
	if code != 0 || json.Unmarshal([]byte(out), &list) != nil || len(list.Items) != 2 || list.Kind != "RolloutList" {
		t.Errorf("get -o json: code %d, %+v", code, list)
	}

	code, out, _ = h.run(t, "get", "web", "-o", "yaml")
	r = v1alpha1.Rollout{}
	if code != 0 || yaml.Unmarshal([]byte(out), &r) != nil || r.Status.PreviewRevision != 6 {
		t.Errorf("get web -o yaml: code %d, %+v\n%s", code, r, out)
	}

	code, out, _ = h.run(t, "get")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 3 {
		t.Fatalf("get: code %d\n%s", code, out)
	}
	for i, want := range [][]string{
		{"NAME", "STRATEGY", "PHASE", "STEP", "WEIGHT", "STABLE", "CANARY", "READY", "AGE"},
		{"chat-api", "canary", "Progressing", "3/8", "25%", "1", "2", "5/6", "60m"},
		{"web", "blueGreen", "Healthy", "-", "0%", "5", "6", "5/6", "60m"}, // the preview takes 0%
	} {
		if got := strings.Fields(lines[i]); strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("line %d = %q, want %q", i, got, want)
		}
	}
	if _, out, _ := h.run(t, "get", "-o", "wide"); !strings.Contains(out, "MESSAGE") || !strings.Contains(out, "waiting for analysis") {
		t.Errorf("get -o wide lacks the message:\n%s", out)
	}
	if code, _, errOut := h.run(t, "get", "-o", "xml"); code != 1 || !strings.Contains(errOut, "xml") {
		t.Errorf("get -o xml: code %d, stderr %q", code, errOut)
	}
	if code, _, errOut := h.run(t, "get", "nope"); code != 1 || !strings.Contains(errOut, "error: rollout nope: not found") {
		t.Errorf("get nope: code %d, stderr %q", code, errOut)
	}
}

func TestGetShowsAnalysis(t *testing.T) {
	r := canary("chat-api", v1alpha1.PhaseProgressing, 2, 25, "waiting for analysis")
	long := "0.3333 (10/30: chat_triage_total{outcome=\"failed\"} / chat_triage_total over 2 instances)"
	r.Status.Analysis = []v1alpha1.AnalysisRunStatus{
		{Name: "step-2-2", Revision: 2, Phase: v1alpha1.AnalysisRunning, Metrics: []v1alpha1.MetricResult{
			{Name: "error-rate", Phase: v1alpha1.AnalysisRunning, Message: "2 of 3 measurements taken", Count: 2, Successful: 2,
				Measurements: []v1alpha1.Measurement{{Phase: v1alpha1.AnalysisSuccessful, Value: "0.0 (0/120 5xx)"}}},
			{Name: "failed-triage", Phase: v1alpha1.AnalysisRunning, Count: 3, Successful: 1, Failed: 1, Inconclusive: 1, Error: 2,
				Measurements: []v1alpha1.Measurement{{Phase: v1alpha1.AnalysisFailed, Value: long}}},
		}},
		{Name: "background-2", Revision: 2, Phase: v1alpha1.AnalysisPending, Message: "not started"},
	}
	h := newHarness(t, map[string][]v1alpha1.Rollout{"chat-api": {r}})
	code, out, _ := h.run(t, "get", "chat-api")
	if code != 0 {
		t.Fatalf("get chat-api: code %d\n%s", code, out)
	}
	_, section, ok := strings.Cut(out, "\n\n")
	if !ok {
		t.Fatalf("no ANALYSIS section:\n%s", out)
	}
	lines := strings.Split(strings.TrimSpace(section), "\n")
	want := [][]string{
		{"ANALYSIS", "REVISION", "PHASE", "METRIC", "METRIC", "PHASE", "LAST", "COUNT", "OK", "FAILED", "INCONCLUSIVE", "ERROR"},
		{"step-2-2", "2", "Running", "error-rate", "Running", "0.0", "(0/120", "5xx)", "2", "2", "0", "0", "0"},
		{"failed-triage", "Running", "0.3333", "(10/30:", "chat_triage_total{outcom…", "3", "1", "1", "1", "2"},
		{"background-2", "2", "Pending", "-", "-", "-", "0", "0", "0", "0", "0"},
	}
	if len(lines) != len(want) {
		t.Fatalf("ANALYSIS section has %d lines, want %d:\n%s", len(lines), len(want), section)
	}
	for i := range want {
		if got := strings.Fields(lines[i]); strings.Join(got, " ") != strings.Join(want[i], " ") {
			t.Errorf("line %d = %q, want %q", i, got, want[i])
		}
	}
	// -o wide shows the value in full, and the messages.
	_, out, _ = h.run(t, "get", "chat-api", "-o", "wide")
	for _, w := range []string{long, "2 of 3 measurements taken", "not started"} {
		if !strings.Contains(out, w) {
			t.Errorf("get -o wide lacks %q:\n%s", w, out)
		}
	}
	// Listing all rollouts shows no runs.
	if _, out, _ = h.run(t, "get"); strings.Contains(out, "ANALYSIS") {
		t.Errorf("get (all) shows analysis:\n%s", out)
	}
}

func TestApply(t *testing.T) {
	h := newHarness(t, nil)
	file := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(file, []byte("bad: yes\n"), 0o600)
	code, out, errOut := h.run(t, "apply", "-f", file)
	if code != 1 || out != "" {
		t.Errorf("apply invalid: code %d, stdout %q", code, out)
	}
	want := "error: " + file + ": spec.strategy.canary.steps[2].setWeight: 150 is not between 0 and 100\n" +
		"error: " + file + ": spec.template: exactly one of process or upstreams is required\n"
	if errOut != want {
		t.Errorf("apply invalid: stderr\n%s\nwant\n%s", errOut, want)
	}

	h.stdin = "rollout: chat-api\nrollout: web\n"
	code, out, errOut = h.run(t, "apply", "-f", "-")
	if code != 0 || out != "rollout/chat-api configured\nrollout/web configured\n" {
		t.Errorf("apply from stdin: code %d, stdout %q, stderr %q", code, out, errOut)
	}
}

func TestServerAndTokenFromStateDir(t *testing.T) {
	h := newHarness(t, map[string][]v1alpha1.Rollout{"chat-api": {healthy("chat-api")}})
	addr := strings.TrimPrefix(h.url, "http://")
	tests := []struct {
		name      string
		files     map[string]string
		env       map[string]string
		wantCode  int
		wantError string
	}{
		{"files written by ramp up", map[string]string{"api.addr": addr + "\n", "token": testToken + "\n"}, nil, 0, ""},
		{"env wins over files", map[string]string{"api.addr": "127.0.0.1:1", "token": "wrong"}, map[string]string{"RAMP_SERVER": h.url, "RAMP_TOKEN": testToken}, 0, ""},
		{"no token", map[string]string{"api.addr": addr}, nil, 1, "missing or wrong bearer token (every API call needs the token of <state-dir>/token"},
		{"wrong token", map[string]string{"api.addr": addr, "token": "nope"}, nil, 1, "missing or wrong bearer token"},
	}
	// Every verb that talks to the API, reads included, sends the token it finds.
	verbs := []struct {
		args []string
		want string
	}{
		{[]string{"pause", "chat-api"}, "rollout/chat-api paused\n"},
		{[]string{"get", "chat-api", "-o", "json"}, `"name": "chat-api"`},
		{[]string{"get"}, "chat-api"},
		{[]string{"status", "chat-api", "--watch=false"}, "successfully rolled out"},
		{[]string{"history", "chat-api"}, "REVISION"},
		{[]string{"events", "chat-api"}, "RolloutCompleted"},
	}
	h.fb.revs = []control.Revision{{Number: 2, Hash: "bbb", Cause: "apply"}}
	for _, tt := range tests {
		for _, v := range verbs {
			t.Run(tt.name+"/"+strings.Join(v.args, " "), func(t *testing.T) {
				hh := &harness{stateDir: t.TempDir(), env: tt.env}
				for name, content := range tt.files {
					os.WriteFile(filepath.Join(hh.stateDir, name), []byte(content), 0o600)
				}
				code, out, errOut := hh.run(t, v.args...)
				if code != tt.wantCode || !strings.Contains(errOut, tt.wantError) {
					t.Errorf("code %d (want %d), stdout %q, stderr %q", code, tt.wantCode, out, errOut)
				}
				if tt.wantCode == 0 && !strings.Contains(out, v.want) {
					t.Errorf("stdout %q, want it to contain %q", out, v.want)
				}
				if tt.wantCode != 0 && strings.Contains(out, "chat-api") {
					t.Errorf("refused call printed the rollout: %q", out)
				}
			})
		}
	}
}

func TestActionsAndUndo(t *testing.T) {
	h := newHarness(t, map[string][]v1alpha1.Rollout{"chat-api": {healthy("chat-api")}})
	h.fb.revs = []control.Revision{
		{Number: 1, Hash: "aaa", Cause: "apply", CreatedAt: time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)},
		{Number: 2, Hash: "bbb", Cause: "apply", CreatedAt: time.Date(2026, 1, 1, 11, 0, 0, 0, time.UTC)},
		{Number: 3, Hash: "aaa", Cause: "undo to revision 1", CreatedAt: time.Date(2026, 1, 1, 11, 30, 0, 0, time.UTC)},
	}
	if code, out, errOut := h.run(t, "undo", "chat-api"); code != 0 || out != "rollout/chat-api rolled back to revision 1 (new revision 3)\n" {
		t.Errorf("undo: code %d, stdout %q, stderr %q", code, out, errOut)
	}
	if code, out, _ := h.run(t, "undo", "chat-api", "--to-revision", "1"); code != 0 || out != "rollout/chat-api rolled back to revision 1 (new revision 3)\n" {
		t.Errorf("undo --to-revision: code %d, stdout %q", code, out)
	}
	// After an abort the revision before the current one is the stable one: nothing new.
	h.fb.undo = control.UndoResult{Target: 2, Revision: 2}
	if code, out, _ := h.run(t, "undo", "chat-api"); code != 0 || out != "rollout/chat-api back on stable revision 2: it serves all traffic already, nothing rolls out\n" {
		t.Errorf("undo to stable: code %d, stdout %q", code, out)
	}
	h.fb.undo = control.UndoResult{Target: 1, Revision: 4, New: true, Note: "ramp revision 1 is revision 1 in kubectl rollout history deployment/chat-api"}
	if code, out, _ := h.run(t, "undo", "chat-api", "--to-revision", "1"); code != 0 || out != "rollout/chat-api rolled back to revision 1 (new revision 4); ramp revision 1 is revision 1 in kubectl rollout history deployment/chat-api\n" {
		t.Errorf("undo with a note: code %d, stdout %q", code, out)
	}
	if code, out, _ := h.run(t, "restart", "chat-api"); code != 0 || out != "rollout/chat-api restarting\n" || h.fb.calls[len(h.fb.calls)-1] != "restart chat-api" {
		t.Errorf("restart: code %d, stdout %q, calls %v", code, out, h.fb.calls)
	}
	if code, _, errOut := h.run(t, "promote", "chat-api"); code != 1 || errOut != "error: promote: rollout chat-api is not paused: conflict\n" {
		t.Errorf("promote conflict: code %d, stderr %q", code, errOut)
	}
	if code, _, errOut := h.run(t, "promote", "nope", "--full"); code != 1 || !strings.Contains(errOut, "not found") {
		t.Errorf("promote unknown: code %d, stderr %q", code, errOut)
	}
	code, out, _ := h.run(t, "history", "chat-api")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 4 || !strings.HasSuffix(lines[2], "stable,current") || !strings.HasPrefix(lines[0], "REVISION") {
		t.Errorf("history: code %d\n%s", code, out)
	}
}

func TestUpPassesOptionsAndFile(t *testing.T) {
	var got local.Options
	var gotApply []byte
	h := &harness{stateDir: t.TempDir()}
	h.runLocal = func(ctx context.Context, opts local.Options, apply []byte) error {
		got, gotApply = opts, apply
		if ctx.Err() != nil {
			return errors.New("context already done")
		}
		return nil
	}
	file := filepath.Join(t.TempDir(), "chat.yaml")
	os.WriteFile(file, []byte("rollout: chat-api\n"), 0o600)
	code, _, errOut := h.run(t, "up", "-f", file, "--api-addr", "127.0.0.1:7171")
	if code != 0 || got.StateDir != h.stateDir || got.APIAddr != "127.0.0.1:7171" || got.Logger == nil || string(gotApply) != "rollout: chat-api\n" {
		t.Errorf("up: code %d, stderr %q, opts %+v, apply %q", code, errOut, got, gotApply)
	}
	code, _, _ = h.run(t, "serve")
	if code != 0 || gotApply != nil || got.APIAddr != "127.0.0.1:7070" {
		t.Errorf("serve: code %d, opts %+v, apply %q", code, got, gotApply)
	}
	h.runLocal = func(context.Context, local.Options, []byte) error {
		return errors.New("state directory in use by another ramp")
	}
	if code, _, errOut := h.run(t, "serve"); code != 1 || errOut != "error: local mode: state directory in use by another ramp\n" {
		t.Errorf("serve failing: code %d, stderr %q", code, errOut)
	}
	if code, _, errOut := h.run(t, "up"); code != 1 || !strings.Contains(errOut, "-f FILE is required") {
		t.Errorf("up without -f: code %d, stderr %q", code, errOut)
	}
}

func TestUpAllowedHosts(t *testing.T) {
	var got *local.Options
	h := &harness{stateDir: t.TempDir()}
	h.runLocal = func(ctx context.Context, opts local.Options, apply []byte) error {
		got = &opts
		return nil
	}
	file := filepath.Join(t.TempDir(), "chat.yaml")
	os.WriteFile(file, []byte("rollout: chat-api\n"), 0o600)
	if code, _, errOut := h.run(t, "up", "-f", file); code != 0 || got == nil || len(got.APIAllowedHosts) != 0 {
		t.Fatalf("up: code %d, stderr %q, opts %+v; want no allowed hosts by default", code, errOut, got)
	}
	code, _, errOut := h.run(t, "up", "-f", file, "--api-allowed-hosts", "ramp.internal, ops.example:7070", "--api-allowed-hosts", "10.0.0.5")
	if want := []string{"ramp.internal", "ops.example:7070", "10.0.0.5"}; code != 0 || !slices.Equal(got.APIAllowedHosts, want) {
		t.Errorf("up --api-allowed-hosts: code %d, stderr %q, hosts %q, want %q", code, errOut, got.APIAllowedHosts, want)
	}
	h.env = map[string]string{"RAMP_API_ALLOWED_HOSTS": "ramp.internal,ramp"}
	if code, _, errOut := h.run(t, "serve"); code != 0 || !slices.Equal(got.APIAllowedHosts, []string{"ramp.internal", "ramp"}) {
		t.Errorf("serve with RAMP_API_ALLOWED_HOSTS: code %d, stderr %q, hosts %q", code, errOut, got.APIAllowedHosts)
	}
	if code, out, _ := h.run(t, "serve", "--help"); code != 0 || !strings.Contains(out, "--api-allowed-hosts") || !strings.Contains(out, "RAMP_API_ALLOWED_HOSTS") {
		t.Errorf("serve --help does not document --api-allowed-hosts:\n%s", out)
	}
	got = nil
	h.env = nil
	code, _, errOut = h.run(t, "up", "-f", file, "--api-allowed-hosts", "http://ramp.internal")
	if want := `error: --api-allowed-hosts (or RAMP_API_ALLOWED_HOSTS): allowed host "http://ramp.internal": give a host name or host:port, without a scheme` + "\n"; code != 1 || errOut != want || got != nil {
		t.Errorf("bad host: code %d, stderr %q (want %q), local mode started: %v", code, errOut, want, got != nil)
	}
}

func TestControllerRefusesAnUnknownLogLevel(t *testing.T) {
	h := newHarness(t, nil)
	code, _, stderr := h.run(t, "controller", "--log-level", "loud")
	if code == 0 || !strings.Contains(stderr, `--log-level: "loud" is not one of debug, info, warn, error`) {
		t.Fatalf("exit %d, stderr %q: want an error naming the flag and the value", code, stderr)
	}
}
