package notify

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"ramp.dev/ramp/api/v1alpha1"
)

// Body returns n formatted for a destination of type typ (empty is webhook).
func Body(typ v1alpha1.NotificationType, n Notification) ([]byte, error) {
	switch typ {
	case "", v1alpha1.NotificationWebhook:
		return json.Marshal(n)
	case v1alpha1.NotificationSlack:
		return json.Marshal(slack(n))
	case v1alpha1.NotificationTeams:
		return json.Marshal(teams(n))
	}
	return nil, fmt.Errorf("notification type %q is not one of webhook, slack, teams", typ)
}

// title is the one line that says what happened.
func title(n Notification) string {
	who := n.Rollout
	if n.Namespace != "" {
		who = n.Namespace + "/" + n.Rollout
	}
	what := map[string]string{
		v1alpha1.NotifyRolloutStarted:       "started rolling out revision %d",
		v1alpha1.NotifyStepCompleted:        "completed a step of revision %d",
		v1alpha1.NotifyRolloutPaused:        "paused at revision %d",
		v1alpha1.NotifyAnalysisInconclusive: "had an inconclusive analysis of revision %d",
		v1alpha1.NotifyRolloutAborted:       "aborted revision %d",
		v1alpha1.NotifyRolloutPromoted:      "promoted revision %d",
		v1alpha1.NotifyRolloutRolledBack:    "rolled back from revision %d",
	}[n.Event]
	if what == "" {
		what = n.Event + " (revision %d)"
	}
	return "rollout " + who + " " + fmt.Sprintf(what, n.Revision)
}

// facts are the rollout's state in a few label-value pairs.
func facts(n Notification) [][2]string {
	f := [][2]string{{"Event", n.Event}, {"Phase", n.Phase}}
	if n.Step != "" {
		f = append(f, [2]string{"Step", n.Step})
	}
	var ws []string
	for _, w := range n.Weights {
		ws = append(ws, fmt.Sprintf("%d (%s) %d%%", w.Revision, w.Role, w.Weight))
	}
	if len(ws) > 0 {
		f = append(f, [2]string{"Weights", strings.Join(ws, ", ")})
	}
	f = append(f, [2]string{"Stable revision", strconv.FormatInt(n.StableRevision, 10)})
	if n.Reason != "" {
		f = append(f, [2]string{"Reason", n.Reason})
	}
	return f
}

// Slack limits: a section's text holds at most 3000 characters, a field's 2000, a section
// at most 10 fields, the message's text 40000.
const (
	slackSectionText = 3000
	slackFieldText   = 2000
	slackFields      = 10
)

// slackEscape escapes what Slack's mrkdwn takes as markup.
var slackEscape = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")

// slack is a Slack incoming-webhook message: text (shown in notifications and where blocks
// are not) and Block Kit blocks: a header section, the message, the facts as fields and the
// time as context.
func slack(n Notification) map[string]any {
	head := "*" + slackEscape.Replace(title(n)) + "*"
	var fields []map[string]any
	for _, f := range facts(n) {
		if len(fields) == slackFields {
			break
		}
		fields = append(fields, map[string]any{"type": "mrkdwn", "text": cut("*"+f[0]+"*\n"+slackEscape.Replace(f[1]), slackFieldText)})
	}
	blocks := []map[string]any{
		{"type": "section", "text": map[string]any{"type": "mrkdwn", "text": cut(head, slackSectionText)}},
	}
	if n.Message != "" {
		blocks = append(blocks, map[string]any{"type": "section", "text": map[string]any{"type": "mrkdwn", "text": cut(slackEscape.Replace(n.Message), slackSectionText)}})
	}
	blocks = append(blocks,
		map[string]any{"type": "section", "fields": fields},
		map[string]any{"type": "context", "elements": []map[string]any{{"type": "mrkdwn", "text": "ramp · " + n.Time.Format("2006-01-02 15:04:05Z07:00") + " · id " + n.ID}}},
	)
	return map[string]any{"text": cut(title(n)+": "+n.Message, 3000), "blocks": blocks}
}

// teams is a Microsoft Teams incoming-webhook message holding an Adaptive Card (schema 1.4,
// which Teams renders): the title, the message and the facts.
func teams(n Notification) map[string]any {
	color := "Default"
	switch n.Event {
	case v1alpha1.NotifyRolloutAborted, v1alpha1.NotifyRolloutRolledBack:
		color = "Attention"
	case v1alpha1.NotifyRolloutPaused, v1alpha1.NotifyAnalysisInconclusive:
		color = "Warning"
	case v1alpha1.NotifyRolloutPromoted:
		color = "Good"
	}
	var fs []map[string]any
	for _, f := range facts(n) {
		fs = append(fs, map[string]any{"title": f[0], "value": f[1]})
	}
	body := []map[string]any{
		{"type": "TextBlock", "text": title(n), "weight": "Bolder", "size": "Medium", "color": color, "wrap": true},
	}
	if n.Message != "" {
		body = append(body, map[string]any{"type": "TextBlock", "text": n.Message, "wrap": true})
	}
	body = append(body,
		map[string]any{"type": "FactSet", "facts": fs},
		map[string]any{"type": "TextBlock", "text": "ramp · " + n.Time.Format("2006-01-02 15:04:05Z07:00") + " · id " + n.ID, "isSubtle": true, "size": "Small", "wrap": true},
	)
	return map[string]any{
		"type": "message",
		"attachments": []map[string]any{{
			"contentType": "application/vnd.microsoft.card.adaptive",
			"contentUrl":  nil,
			"content": map[string]any{
				"$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
				"type":    "AdaptiveCard",
				"version": "1.4",
				"body":    body,
			},
		}},
	}
}

// cut shortens s to at most n characters (runes), ending it with "…" when it was longer.
func cut(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
