package cli

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"ramp.dev/ramp/api/v1alpha1"
)

// runWatch runs the CLI against h with a fake clock that starts at 12:00:00 and a fake ticker
// that moves it on by the interval at each tick; the ticks-th wait ends the watch as Ctrl-C
// does. It returns the exit code, stdout and stderr.
func runWatch(t *testing.T, h *harness, tty bool, ticks int, args ...string) (int, string, string) {
	t.Helper()
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	var stdout, stderr bytes.Buffer
	waits := 0
	a := &app{
		stdin:        strings.NewReader(""),
		stdout:       &stdout,
		stderr:       &stderr,
		getenv:       func(k string) string { return h.env[k] },
		now:          func() time.Time { return now },
		load:         fakeLoad,
		pollInterval: time.Millisecond,
		isTerminal:   func(io.Writer) bool { return tty },
		ticker: func(d time.Duration) (func(context.Context) error, func()) {
			return func(context.Context) error {
				waits++
				if waits >= ticks {
					return context.Canceled
				}
				now = now.Add(d)
				return nil
			}, func() {}
		},
	}
	code := a.run(context.Background(), append([]string{"--server", h.url, "--state-dir", h.stateDir}, args...))
	return code, stdout.String(), stderr.String()
}

// watchStates are three successive answers: step 3 at 25%, the same again, then step 4 at 50%.
func watchStates() map[string][]v1alpha1.Rollout {
	a := canary("chat-api", v1alpha1.PhaseProgressing, 2, 25, "")
	b := canary("chat-api", v1alpha1.PhaseProgressing, 3, 50, "")
	b.Status.Revisions[1].Ready = 2
	return map[string][]v1alpha1.Rollout{"chat-api": {a, a, b}}
}

func TestGetWatchTerminal(t *testing.T) {
	h := newHarness(t, watchStates())
	code, out, errOut := runWatch(t, h, true, 2, "get", "chat-api", "--watch")
	if code != 0 {
		t.Fatalf("get --watch: code %d, stderr %q", code, errOut)
	}
	const (
		cl = "\x1b[2K"
		cd = "\x1b[J"
	)
	want := "" +
		// First frame.
		cl + "Every 1s: ramp get --watch (Ctrl-C to stop)   2026-01-01T12:00:00Z\n" +
		cl + "NAME       STRATEGY   PHASE         STEP   WEIGHT   STABLE   CANARY   READY   AGE\n" +
		cl + "chat-api   canary     Progressing   3/8    25%      1        2        5/6     60m\n" +
		cl + "\n" +
		cl + "REVISION   ROLE     WEIGHT   READY   AVAILABLE\n" +
		cl + "1          stable   75%      4/4     0\n" +
		cl + "2          canary   25%      1/2     0\n" +
		cd +
		// Second frame, one second on: back up 7 lines and redraw over them.
		"\r\x1b[7A" +
		cl + "Every 1s: ramp get --watch (Ctrl-C to stop)   2026-01-01T12:00:01Z\n" +
		cl + "NAME       STRATEGY   PHASE         STEP   WEIGHT   STABLE   CANARY   READY   AGE\n" +
		cl + "chat-api   canary     Progressing   3/8    25%      1        2        5/6     60m\n" +
		cl + "\n" +
		cl + "REVISION   ROLE     WEIGHT   READY   AVAILABLE\n" +
		cl + "1          stable   75%      4/4     0\n" +
		cl + "2          canary   25%      1/2     0\n" +
		cd
	if out != want {
		t.Errorf("terminal output:\n%q\nwant:\n%q", out, want)
	}
}

func TestGetWatchTerminalShorterFrame(t *testing.T) {
	// A frame with fewer lines than the last one clears what is left below it.
	long := canary("chat-api", v1alpha1.PhasePaused, 2, 25, "paused by the user")
	short := healthy("chat-api")
	short.Status.Revisions = short.Status.Revisions[:1]
	h := newHarness(t, map[string][]v1alpha1.Rollout{"chat-api": {long, short}})
	code, out, _ := runWatch(t, h, true, 2, "get", "chat-api", "-w")
	frames := strings.Split(out, "\r\x1b[9A")
	if code != 0 || len(frames) != 2 {
		t.Fatalf("code %d, want 2 frames, the second 9 lines up:\n%q", code, out)
	}
	if !strings.Contains(frames[0], "Message: paused by the user") || strings.Contains(frames[1], "Message") {
		t.Errorf("frames:\n%q", frames)
	}
	if !strings.HasSuffix(frames[1], "\x1b[J") || strings.Count(frames[1], "\n") != 6 {
		t.Errorf("second frame: want 6 lines then clear-down:\n%q", frames[1])
	}
}

func TestGetWatchClipsToTheTerminal(t *testing.T) {
	h := newHarness(t, watchStates())
	var stdout bytes.Buffer
	waits := 0
	a := &app{
		stdout: &stdout, stderr: io.Discard, getenv: func(k string) string { return h.env[k] },
		now:        func() time.Time { return time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC) },
		isTerminal: func(io.Writer) bool { return true },
		termWidth:  func(io.Writer) int { return 20 },
		ticker: func(time.Duration) (func(context.Context) error, func()) {
			return func(context.Context) error { waits++; return context.Canceled }, func() {}
		},
	}
	if code := a.run(context.Background(), []string{"--server", h.url, "--state-dir", h.stateDir, "get", "chat-api", "-w"}); code != 0 {
		t.Fatalf("code %d", code)
	}
	if !strings.HasPrefix(stdout.String(), "\x1b[2KEvery 1s: ramp get -\n\x1b[2KNAME       STRATEGY \n") {
		t.Errorf("lines not clipped to 20 columns:\n%q", stdout.String())
	}
}

func TestGetWatchLines(t *testing.T) {
	h := newHarness(t, watchStates())
	code, out, errOut := runWatch(t, h, false, 4, "get", "chat-api", "--watch", "--interval", "2s")
	if code != 0 {
		t.Fatalf("get --watch: code %d, stderr %q", code, errOut)
	}
	// Four polls: the second repeats the first (nothing written), the third and fourth differ
	// from it once (only the third written).
	want := `--- 2026-01-01T12:00:00Z
NAME       STRATEGY   PHASE         STEP   WEIGHT   STABLE   CANARY   READY   AGE
chat-api   canary     Progressing   3/8    25%      1        2        5/6     60m

REVISION   ROLE     WEIGHT   READY   AVAILABLE
1          stable   75%      4/4     0
2          canary   25%      1/2     0
--- 2026-01-01T12:00:04Z
NAME       STRATEGY   PHASE         STEP   WEIGHT   STABLE   CANARY   READY   AGE
chat-api   canary     Progressing   4/8    50%      1        2        6/6     60m

REVISION   ROLE     WEIGHT   READY   AVAILABLE
1          stable   50%      4/4     0
2          canary   50%      2/2     0
`
	if out != want {
		t.Errorf("line output:\n%s\nwant:\n%s", out, want)
	}
	if strings.Contains(out, "\x1b") {
		t.Errorf("escape sequences off a terminal: %q", out)
	}
}

func TestGetWatchList(t *testing.T) {
	h := newHarness(t, map[string][]v1alpha1.Rollout{"chat-api": {healthy("chat-api")}, "web": {healthy("web")}})
	code, out, _ := runWatch(t, h, false, 3, "get", "-w")
	if code != 0 || strings.Count(out, "--- ") != 1 || !strings.Contains(out, "\nchat-api ") || !strings.Contains(out, "\nweb ") {
		t.Errorf("get -w: code %d, want one block listing both:\n%s", code, out)
	}
	if strings.Contains(out, "REVISION") {
		t.Errorf("the list shows revisions:\n%s", out)
	}
}

func TestGetWatchRefusals(t *testing.T) {
	h := newHarness(t, watchStates())
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"get", "chat-api", "-w", "-o", "json"}, "--watch draws tables; it does not take -o json"},
		{[]string{"get", "-w", "-o", "yaml"}, "it does not take -o yaml"},
		{[]string{"get", "-w", "--interval", "0s"}, "--interval must be positive, not 0s"},
		{[]string{"get", "nope", "-w"}, "rollout nope: not found"},
	} {
		code, out, errOut := runWatch(t, h, false, 2, tc.args...)
		if code != 1 || !strings.Contains(errOut, tc.want) || out != "" {
			t.Errorf("%v: code %d, stdout %q, stderr %q; want %q", tc.args, code, out, errOut, tc.want)
		}
	}
}

func TestGetWatchRidesOutFailedPolls(t *testing.T) {
	h := newHarness(t, watchStates())
	h.fb.getErrs = []error{nil, errors.New("etcd request timed out")}
	code, out, errOut := runWatch(t, h, false, 4, "get", "chat-api", "--watch", "--interval", "2s")
	if code != 0 {
		t.Fatalf("get --watch: code %d, stderr %q", code, errOut)
	}
	blocks := strings.Split(out, "--- ")[1:]
	if len(blocks) != 3 {
		t.Fatalf("want 3 blocks (first state, the failed poll, the new state), got %d:\n%s", len(blocks), out)
	}
	if !strings.HasPrefix(blocks[1], "2026-01-01T12:00:02Z") || !strings.Contains(blocks[1], "etcd request timed out") || !strings.Contains(blocks[1], "(poll 1 of 5 failed in a row; retrying)") || !strings.Contains(blocks[1], "3/8    25%") {
		t.Errorf("the failed poll's block shows the last rollout and the error:\n%s", blocks[1])
	}
	if !strings.Contains(blocks[2], "4/8    50%") || strings.Contains(blocks[2], "error:") {
		t.Errorf("the next poll's block shows the new state and no error:\n%s", blocks[2])
	}
}

func TestGetWatchGivesUpAfterFailedPollsInARow(t *testing.T) {
	h := newHarness(t, watchStates())
	fail := errors.New("connection refused")
	h.fb.getErrs = []error{nil, fail, fail, fail, fail, fail, fail}
	code, out, errOut := runWatch(t, h, false, 20, "get", "chat-api", "--watch")
	if code != 1 || !strings.Contains(errOut, "connection refused") {
		t.Fatalf("get --watch: code %d, stderr %q; want 1 and the error", code, errOut)
	}
	if n := strings.Count(out, "failed in a row; retrying"); n != 4 {
		t.Errorf("want 4 retried polls shown before giving up at the 5th, got %d:\n%s", n, out)
	}
}
