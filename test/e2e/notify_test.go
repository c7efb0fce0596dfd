package e2e

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/test/testkit"
)

// notifications is spec.notifications with one destination of each type, each reading its
// URL another way: the JSON webhook's from the spec with a bearer token from the
// environment, Slack's from a file, Teams' from the environment.
func notifications(t *testing.T, recv *testkit.Receiver) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "slack-url")
	if err := os.WriteFile(file, []byte(recv.URL+slackPath+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("RAMP_E2E_TEAMS_URL", recv.URL+teamsPath)
	t.Setenv("RAMP_E2E_HOOK_TOKEN", "Bearer e2e-token")
	return fmt.Sprintf(`  notifications:
  - name: hook
    type: webhook
    url: %s/json
    headers:
    - {name: Authorization, valueEnv: RAMP_E2E_HOOK_TOKEN}
  - name: slack
    type: slack
    urlFile: %s
  - name: teams
    type: teams
    urlEnv: RAMP_E2E_TEAMS_URL
`, recv.URL, file)
}

// failTwice makes the JSON destination answer 503 to its first two requests, and /broken
// 404 to all.
func failTwice(path string, n int) int {
	switch {
	case path == "/json" && n <= 2:
		return http.StatusServiceUnavailable
	case strings.HasPrefix(path, "/broken"):
		return http.StatusNotFound
	}
	return http.StatusOK
}

const (
	slackPath = "/slack/T000/B000/XXXX"
	teamsPath = "/teams/webhookb2/XXXX"
)

// delivered is what the JSON destination got, each with the bearer token from the
// environment.
func delivered(t *testing.T, recv *testkit.Receiver) []testkit.WebhookNotification {
	t.Helper()
	ns, hooks := recv.Notified(t, "/json")
	for _, h := range hooks {
		if h.Header.Get("Authorization") != "Bearer e2e-token" {
			t.Fatalf("json notification without the bearer token from the environment: %q", h.Header.Get("Authorization"))
		}
	}
	return ns
}

func TestNotificationsOfAHealthyRollout(t *testing.T) {
	// Given ramp serving v1 of a canary with notifications to a JSON webhook (answering 503
	// to its first two requests), Slack, Teams, and a webhook that answers 404 to its
	// promotions
	recv := testkit.NewReceiver(t)
	recv.Answer = failTwice
	s := spec{Listen: testkit.FreeAddr(t), Strategy: `    canary:
      judge: {enabled: false}
      steps:
      - setWeight: 20
      - pause: {duration: 1s}
      - setWeight: 50
` + notifications(t, recv) + "  - {name: broken, url: '" + recv.URL + "/broken/XXXX', events: [rollout-promoted]}\n"}
	r := startRamp(t, model(s, "v1"))
	// When v2 is applied and rolls out
	r.apply(model(s, "v2"))
	// Then the webhook gets revision 2's story in order: started, each step, the pause,
	// promoted; each once, though the first request was answered 503 twice
	recv.WaitNotified(t, "/json", 2, v1alpha1.NotifyRolloutPromoted, 60*time.Second)
	got := delivered(t, recv)
	want := []string{"rollout-started", "step-completed", "rollout-paused", "step-completed", "step-completed", "rollout-promoted"}
	if evs := testkit.EventsOf(got, 2); strings.Join(evs, ",") != strings.Join(want, ",") {
		t.Fatalf("revision 2 notifications %v, want %v", evs, want)
	}
	hooks := recv.Hooks("/json")
	if hooks[0].Status != 503 || hooks[1].Status != 503 || hooks[2].Status != 200 || string(hooks[0].Body) != string(hooks[2].Body) {
		t.Fatalf("the first notification was not retried after two 503s: %d %d %d", hooks[0].Status, hooks[1].Status, hooks[2].Status)
	}
	ids := map[string]bool{}
	for _, n := range got {
		if ids[n.ID] {
			t.Fatalf("notification %s delivered twice", n.ID)
		}
		ids[n.ID] = true
	}
	last := got[len(got)-1]
	if last.Phase != "Healthy" || last.StableRevision != 2 || !strings.Contains(last.Message, "revision 2 promoted to stable") {
		t.Fatalf("promoted notification: %+v", last)
	}
	for _, n := range got {
		if n.Event == "step-completed" && n.Message == "" || n.Event == "rollout-paused" && n.Reason != "CanaryPauseStep" {
			t.Fatalf("notification: %+v", n)
		}
	}
	// And Slack and Teams got the same, in their formats
	recv.CheckChatFormats(t, slackPath, teamsPath, got)
	// And the 404s are in the rollout's events, naming the destination; neither they nor
	// ramp's log show a webhook URL
	events := r.must("events", "chat-api")
	if !strings.Contains(events, "NotificationFailed") || !strings.Contains(events, "notification rollout-promoted not sent to broken (attempts: 1): answered 404 Not Found") {
		t.Fatalf("events do not tell the failed notification:\n%s", events)
	}
	if logs := r.logs.String(); strings.Contains(logs, "XXXX") || strings.Contains(events, "XXXX") {
		t.Fatalf("a webhook URL is in ramp's log or events:\n%s\n%s", logs, events)
	}
}

func TestNotificationsOfAnAbortedRollout(t *testing.T) {
	// Given a canary of a healthy v1 under load, watched by the judge, with notifications
	recv := testkit.NewReceiver(t)
	s := spec{Listen: testkit.FreeAddr(t), Strategy: judgeOnlySteps + notifications(t, recv)}
	r := startRamp(t, model(s, "v1"))
	l := startLoad(t, s.Listen, 200, nil)
	defer l.stop()
	// When v2 answers 20% of its requests with 500
	r.apply(model(s, "v2", "CHAT_ERROR_RATE", "0.2"))
	// Then the webhook is told it started, and then that it was aborted, with the judge's
	// explanation
	recv.WaitNotified(t, "/json", 2, v1alpha1.NotifyRolloutAborted, 60*time.Second)
	got := delivered(t, recv)
	evs := testkit.EventsOf(got, 2)
	if evs[0] != "rollout-started" {
		t.Fatalf("revision 2 notifications %v: the first is not rollout-started", evs)
	}
	for _, e := range evs[1 : len(evs)-1] {
		if e != "step-completed" && e != "rollout-paused" {
			t.Fatalf("revision 2 notifications %v: %s before the abort", evs, e)
		}
	}
	aborted := got[len(got)-1]
	for _, want := range []string{"analysis judge-2 failed", "error-rate: canary worse than stable", "log Bayes factor"} {
		if !strings.Contains(aborted.Message, want) {
			t.Fatalf("abort notification lacks %q: %s", want, aborted.Message)
		}
	}
	if aborted.Phase != "Degraded" || aborted.Reason != "RolloutAborted" || aborted.StableRevision != 1 {
		t.Fatalf("abort notification: %+v", aborted)
	}
	t.Logf("revision 2 notifications: %v; abort: %s", evs, aborted.Message)
	// And Slack and Teams got the same, the explanation included
	recv.CheckChatFormats(t, slackPath, teamsPath, got)
	for _, path := range []string{slackPath, teamsPath} {
		hooks := recv.Hooks(path)
		if b := string(hooks[len(hooks)-1].Body); !strings.Contains(b, "canary worse than stable") {
			t.Fatalf("%s: the abort lacks the judge's explanation: %s", path, b)
		}
	}
}

func TestNotificationOfARollBackInTheWatchWindow(t *testing.T) {
	// Given v2 promoted over v1, whose instances are kept warm in the watch window
	recv := testkit.NewReceiver(t)
	s := spec{Listen: testkit.FreeAddr(t), Replicas: 3, Strategy: "    canary:\n      judge: {enabled: false}\n      steps:\n      - setWeight: 50\n" + notifications(t, recv)}
	r := startRamp(t, model(s, "v1"))
	r.apply(model(s, "v2"))
	r.inWatch()
	// When the user aborts inside the window
	r.must("abort", "chat-api")
	// Then the webhook is told revision 2 was rolled back, after it was promoted
	recv.WaitNotified(t, "/json", 2, v1alpha1.NotifyRolloutRolledBack, 30*time.Second)
	got := delivered(t, recv)
	want := "rollout-started,step-completed,rollout-promoted,rollout-rolled-back"
	if evs := strings.Join(testkit.EventsOf(got, 2), ","); evs != want {
		t.Fatalf("revision 2 notifications %s, want %s", evs, want)
	}
	back := got[len(got)-1]
	if !strings.Contains(back.Message, "rolled back in the watch window") || back.StableRevision != 1 || back.Phase != "Degraded" {
		t.Fatalf("rolled-back notification: %+v", back)
	}
	recv.CheckChatFormats(t, slackPath, teamsPath, got)
}
