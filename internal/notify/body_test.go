package notify

import (
	"encoding/json"
	"strings"
	"testing"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/test/testkit"
)

func sample(event string) Notification {
	return Notification{
		ID: "abc", Event: event, Rollout: "chat-api", Namespace: "team", Phase: "Degraded", Revision: 2, StableRevision: 1,
		Step: "1/4", CanaryWeight: 5, Weights: []Weight{{1, "stable", 95}, {2, "canary", 5}}, Reason: "RolloutAborted",
		Message: "revision 2 aborted: analysis judge-2 failed: error-rate: canary worse than stable <5 & 0>: 12 errors in 40 requests",
		Time:    t0,
	}
}

// TestBodiesAreValid: every event, in every format, is a body its receiver takes, carrying
// the message (escaped for Slack's mrkdwn).
func TestBodiesAreValid(t *testing.T) {
	for _, event := range v1alpha1.NotifyEvents {
		n := sample(event)
		b, err := Body(v1alpha1.NotificationWebhook, n)
		if err != nil {
			t.Fatal(err)
		}
		got, err := testkit.CheckWebhookNotification(b)
		if err != nil || got.Event != event || got.Message != n.Message || len(got.Weights) != 2 || got.ID != "abc" {
			t.Errorf("%s webhook: %v: %s", event, err, b)
		}
		b, err = Body(v1alpha1.NotificationSlack, n)
		if err != nil {
			t.Fatal(err)
		}
		if text, err := testkit.CheckSlackMessage(b); err != nil || !strings.Contains(text, "chat-api") {
			t.Errorf("%s slack: %v: %s", event, err, b)
		}
		var sm struct {
			Blocks []struct{ Text struct{ Text string } }
		}
		_ = json.Unmarshal(b, &sm)
		if len(sm.Blocks) < 2 || !strings.Contains(sm.Blocks[1].Text.Text, "canary worse than stable &lt;5 &amp; 0&gt;") {
			t.Errorf("%s slack: the message is not escaped for mrkdwn: %s", event, b)
		}
		b, err = Body(v1alpha1.NotificationTeams, n)
		if err != nil {
			t.Fatal(err)
		}
		if text, err := testkit.CheckTeamsMessage(b); err != nil || !strings.Contains(text, "canary worse than stable <5 & 0>") || !strings.Contains(text, "Weights: 1 (stable) 95%, 2 (canary) 5%") {
			t.Errorf("%s teams: %v: %s", event, err, text)
		}
	}
	if _, err := Body("email", sample(v1alpha1.NotifyRolloutAborted)); err == nil {
		t.Error("an unknown type made a body")
	}
}

// TestSlackLimits: a long message is cut to Slack's limits, so Slack does not refuse it.
func TestSlackLimits(t *testing.T) {
	n := sample(v1alpha1.NotifyRolloutAborted)
	n.Message = strings.Repeat("é", 5000)
	b, _ := Body(v1alpha1.NotificationSlack, n)
	if _, err := testkit.CheckSlackMessage(b); err != nil {
		t.Fatalf("%v", err)
	}
}

// TestCheckersRefuseBrokenBodies: the checkers the tests rely on fail on bodies a receiver
// would refuse.
func TestCheckersRefuseBrokenBodies(t *testing.T) {
	slack, _ := Body(v1alpha1.NotificationSlack, sample(v1alpha1.NotifyRolloutAborted))
	teams, _ := Body(v1alpha1.NotificationTeams, sample(v1alpha1.NotifyRolloutAborted))
	hook, _ := Body(v1alpha1.NotificationWebhook, sample(v1alpha1.NotifyRolloutAborted))
	edit := func(body []byte, f func(m map[string]any)) []byte {
		var m map[string]any
		if err := json.Unmarshal(body, &m); err != nil {
			t.Fatal(err)
		}
		f(m)
		b, _ := json.Marshal(m)
		return b
	}
	block := func(m map[string]any, i int) map[string]any { return m["blocks"].([]any)[i].(map[string]any) }
	card := func(m map[string]any) map[string]any {
		return m["attachments"].([]any)[0].(map[string]any)["content"].(map[string]any)
	}
	for name, b := range map[string][]byte{
		"slack without text":         edit(slack, func(m map[string]any) { delete(m, "text") }),
		"slack section empty text":   edit(slack, func(m map[string]any) { block(m, 0)["text"].(map[string]any)["text"] = "" }),
		"slack text of unknown type": edit(slack, func(m map[string]any) { block(m, 0)["text"].(map[string]any)["type"] = "markdown" }),
		"slack unknown block":        edit(slack, func(m map[string]any) { block(m, 0)["type"] = "card" }),
		"slack section text too long": edit(slack, func(m map[string]any) {
			block(m, 1)["text"].(map[string]any)["text"] = strings.Repeat("x", 3001)
		}),
		"slack eleven fields": edit(slack, func(m map[string]any) {
			fs := block(m, 2)["fields"].([]any)
			for len(fs) < 11 {
				fs = append(fs, fs[0])
			}
			block(m, 2)["fields"] = fs
		}),
	} {
		if _, err := testkit.CheckSlackMessage(b); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	for name, b := range map[string][]byte{
		"teams not a message": edit(teams, func(m map[string]any) { m["type"] = "card" }),
		"teams content type": edit(teams, func(m map[string]any) {
			m["attachments"].([]any)[0].(map[string]any)["contentType"] = "application/json"
		}),
		"teams without schema": edit(teams, func(m map[string]any) { delete(card(m), "$schema") }),
		"teams card type":      edit(teams, func(m map[string]any) { card(m)["type"] = "MessageCard" }),
		"teams no version":     edit(teams, func(m map[string]any) { delete(card(m), "version") }),
		"teams empty body":     edit(teams, func(m map[string]any) { card(m)["body"] = []any{} }),
		"teams fact no value": edit(teams, func(m map[string]any) {
			card(m)["body"].([]any)[2].(map[string]any)["facts"] = []any{map[string]any{"title": "x"}}
		}),
	} {
		if _, err := testkit.CheckTeamsMessage(b); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	for name, b := range map[string][]byte{
		"webhook without id":      edit(hook, func(m map[string]any) { delete(m, "id") }),
		"webhook without message": edit(hook, func(m map[string]any) { delete(m, "message") }),
		"webhook renamed field":   edit(hook, func(m map[string]any) { m["rolloutName"] = m["rollout"]; delete(m, "rollout") }),
	} {
		if _, err := testkit.CheckWebhookNotification(b); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
