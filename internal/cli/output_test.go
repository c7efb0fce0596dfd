package cli

import (
	"encoding/json"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/control"
	"ramp.dev/ramp/internal/version"
)

func TestVersion(t *testing.T) {
	h := &harness{stateDir: t.TempDir()}
	code, text, errOut := h.run(t, "version")
	platform := runtime.GOOS + "/" + runtime.GOARCH
	if code != 0 || !strings.HasPrefix(text, "ramp ") || !strings.Contains(text, "go:       "+runtime.Version()+"\n") || !strings.Contains(text, "platform: "+platform+"\n") {
		t.Errorf("version: code %d, stderr %q\n%s", code, errOut, text)
	}
	if code, out, _ := h.run(t, "--version"); code != 0 || out != text {
		t.Errorf("--version: code %d, %q; want what version prints, %q", code, out, text)
	}
	var info version.Info
	if code, out, _ := h.run(t, "version", "-o", "json"); code != 0 || json.Unmarshal([]byte(out), &info) != nil ||
		info.GoVersion != runtime.Version() || info.Platform != platform || !strings.HasPrefix(text, "ramp "+info.Version+"\n") {
		t.Errorf("version -o json: code %d, %+v\n%s", code, info, out)
	}
	info = version.Info{}
	if code, out, _ := h.run(t, "version", "-o", "yaml"); code != 0 || yaml.Unmarshal([]byte(out), &info) != nil || info.Platform != platform {
		t.Errorf("version -o yaml: code %d, %+v\n%s", code, info, out)
	}
	if code, _, errOut := h.run(t, "version", "-o", "toml"); code != 1 || !strings.Contains(errOut, `version: -o/--output "toml": want json or yaml`) {
		t.Errorf("version -o toml: code %d, stderr %q", code, errOut)
	}
}

// Each shell's script is ramp's: it completes through `ramp __complete`, which lists the verbs.
func TestCompletion(t *testing.T) {
	h := &harness{stateDir: t.TempDir()}
	for shell, marks := range map[string][]string{
		"bash": {"__start_ramp", "complete -o default -F __start_ramp ramp", "__complete"},
		"zsh":  {"#compdef ramp", "compdef _ramp ramp", "__complete"},
		"fish": {"complete -c ramp", "__complete"},
	} {
		code, out, errOut := h.run(t, "completion", shell)
		if code != 0 || len(out) < 1000 {
			t.Errorf("completion %s: code %d, %d bytes, stderr %q", shell, code, len(out), errOut)
			continue
		}
		for _, m := range marks {
			if !strings.Contains(out, m) {
				t.Errorf("completion %s: the script lacks %q", shell, m)
			}
		}
	}
	// What the scripts call: the verbs, with their descriptions.
	code, out, _ := h.run(t, "__complete", "")
	var got []string
	for l := range strings.SplitSeq(out, "\n") {
		got = append(got, strings.Split(l, "\t")[0])
	}
	for _, verb := range []string{"up", "apply", "get", "status", "promote", "undo", "history", "events", "controller", "version", "completion"} {
		if code != 0 || !slices.Contains(got, verb) {
			t.Errorf("__complete \"\": code %d, no %s in\n%s", code, verb, out)
		}
	}
	code, out, _ = h.run(t, "__complete", "completion", "")
	if code != 0 || !strings.Contains(out, "bash") || !strings.Contains(out, "fish") || !strings.Contains(out, "zsh") {
		t.Errorf("__complete completion: code %d\n%s", code, out)
	}
	if code, _, errOut := h.run(t, "completion", "tcsh"); code != 1 || !strings.Contains(errOut, `shell "tcsh"`) {
		t.Errorf("completion tcsh: code %d, stderr %q", code, errOut)
	}
}

func TestHistoryEventsOutput(t *testing.T) {
	h := newHarness(t, map[string][]v1alpha1.Rollout{"chat-api": {canary("chat-api", v1alpha1.PhaseProgressing, 2, 25, "")}})
	created := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	h.fb.revs = []control.Revision{
		{Rollout: "chat-api", Number: 1, Hash: "h1", CreatedAt: created, Cause: "apply"},
		{Rollout: "chat-api", Number: 2, Hash: "h2", CreatedAt: created.Add(time.Hour), Cause: "apply"},
	}
	type entry struct {
		Number    int64
		Hash      string
		CreatedAt time.Time
		Cause     string
		Roles     []string
	}
	for _, format := range []string{"json", "yaml"} {
		code, out, errOut := h.run(t, "history", "chat-api", "-o", format)
		var got []entry
		if code != 0 || yaml.Unmarshal([]byte(out), &got) != nil || len(got) != 2 {
			t.Fatalf("history -o %s: code %d, stderr %q\n%s", format, code, errOut, out)
		}
		want := []entry{
			{1, "h1", created, "apply", []string{"stable"}},
			{2, "h2", created.Add(time.Hour), "apply", []string{"canary", "current"}},
		}
		for i := range want {
			if g, w := got[i], want[i]; g.Number != w.Number || g.Hash != w.Hash || !g.CreatedAt.Equal(w.CreatedAt) || g.Cause != w.Cause || !slices.Equal(g.Roles, w.Roles) {
				t.Errorf("history -o %s [%d] = %+v, want %+v", format, i, g, w)
			}
		}
		if format == "json" && !json.Valid([]byte(out)) {
			t.Errorf("history -o json is not JSON:\n%s", out)
		}

		code, out, _ = h.run(t, "events", "chat-api", "-o", format)
		var es []control.Event
		if code != 0 || yaml.Unmarshal([]byte(out), &es) != nil || len(es) != 1 || es[0].Reason != "RolloutCompleted" || es[0].Seq != 1 || es[0].Message != "revision 2 is stable" {
			t.Errorf("events -o %s: code %d, %+v\n%s", format, code, es, out)
		}
	}
	for _, verb := range []string{"history", "events", "status"} {
		if code, out, errOut := h.run(t, verb, "chat-api", "-o", "wide"); code != 1 || out != "" || !strings.Contains(errOut, verb+`: -o/--output "wide": want json or yaml`) {
			t.Errorf("%s -o wide: code %d, stdout %q, stderr %q", verb, code, out, errOut)
		}
	}
}

// status -o json prints a JSON object a line for each change, the last one saying how it
// ended; the exit codes stay those of the text output.
func TestStatusOutput(t *testing.T) {
	degraded := canary("web", v1alpha1.PhaseDegraded, 2, 0, "analysis error-rate failed")
	paused := canary("chat-api", v1alpha1.PhasePaused, 1, 25, "")
	paused.Status.PauseConditions = []v1alpha1.PauseCondition{{Reason: v1alpha1.PauseReasonStep}}
	h := newHarness(t, map[string][]v1alpha1.Rollout{
		"chat-api": {
			canary("chat-api", v1alpha1.PhaseProgressing, 0, 5, ""),
			canary("chat-api", v1alpha1.PhaseProgressing, 0, 5, ""),
			paused,
			healthy("chat-api"),
		},
		"web": {degraded},
	})
	code, out, errOut := h.run(t, "status", "chat-api", "-o", "json")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var got []statusReport
	for _, l := range lines {
		var r statusReport
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("status -o json: line %q: %v", l, err)
		}
		got = append(got, r)
	}
	if code != 0 || len(got) != 3 {
		t.Fatalf("status -o json: code %d, stderr %q, want 3 lines\n%s", code, errOut, out)
	}
	for i, want := range []struct {
		state, phase, step string
		weight             int32
	}{{"progressing", "Progressing", "1/8", 5}, {"paused", "Paused", "2/8", 25}, {"done", "Healthy", "8/8", 0}} {
		if g := got[i]; g.Rollout != "chat-api" || g.State != want.state || g.Phase != want.phase || g.Step != want.step || g.Weight != want.weight || g.Message == "" {
			t.Errorf("line %d = %+v, want %+v", i, g, want)
		}
	}
	if got[2].StableRevision != 2 || !strings.Contains(got[2].Message, "successfully rolled out") {
		t.Errorf("last line %+v", got[2])
	}

	code, out, errOut = h.run(t, "status", "web", "-o", "yaml")
	var r statusReport
	if code != 1 || !strings.HasPrefix(out, "---\n") || yaml.Unmarshal([]byte(strings.TrimPrefix(out, "---\n")), &r) != nil || r.State != "degraded" || !strings.Contains(errOut, "analysis error-rate failed") {
		t.Errorf("status web -o yaml: code %d, %+v, stderr %q\n%s", code, r, errOut, out)
	}
	h.fb.mu.Lock()
	h.fb.gets["chat-api"] = 0
	h.fb.mu.Unlock()
	if code, out, _ := h.run(t, "status", "chat-api", "--watch=false", "-o", "json"); code != exitNotDone || !strings.Contains(out, `"state":"progressing"`) || strings.Count(out, "\n") != 1 {
		t.Errorf("status --watch=false -o json: code %d\n%s", code, out)
	}
}
