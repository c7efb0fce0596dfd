package testkit

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// Hook is one request a Receiver took.
type Hook struct {
	Path   string
	Header http.Header
	Body   []byte
	// Status is what the receiver answered.
	Status int
}

// Receiver is a webhook receiver on 127.0.0.1 that keeps every request, in the order of
// their answers. Answer, when set before the first request, picks each answer's status (n
// counts the requests to the same path, from 1; it may block); nil answers 200.
type Receiver struct {
	URL    string
	Answer func(path string, n int) int

	mu      sync.Mutex
	hooks   []Hook
	counts  map[string]int
	changed chan struct{}
}

// NewReceiver starts a Receiver, stopped when the test ends.
func NewReceiver(t testing.TB) *Receiver {
	t.Helper()
	r := &Receiver{counts: map[string]int{}, changed: make(chan struct{}, 1)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.counts[req.URL.Path]++
		n := r.counts[req.URL.Path]
		r.mu.Unlock()
		status := http.StatusOK
		if r.Answer != nil {
			status = r.Answer(req.URL.Path, n) // may block: outside the lock
		}
		r.mu.Lock()
		r.hooks = append(r.hooks, Hook{Path: req.URL.Path, Header: req.Header.Clone(), Body: body, Status: status})
		r.mu.Unlock()
		select {
		case r.changed <- struct{}{}:
		default:
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(srv.Close)
	r.URL = srv.URL
	return r
}

// Hooks returns the requests to path taken so far ("" for all), oldest first.
func (r *Receiver) Hooks(path string) []Hook {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Hook
	for _, h := range r.hooks {
		if path == "" || h.Path == path {
			out = append(out, h)
		}
	}
	return out
}

// WaitFor waits until done holds for the requests to path, failing the test after timeout
// with what done last said.
func (r *Receiver) WaitFor(t testing.TB, path string, timeout time.Duration, done func([]Hook) (bool, string)) []Hook {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		hooks := r.Hooks(path)
		ok, state := done(hooks)
		if ok {
			return hooks
		}
		select {
		case <-r.changed:
		case <-deadline.C:
			t.Fatalf("webhook %s: timed out after %s: %s", path, timeout, state)
		}
	}
}

// CheckSlackMessage checks that body is a Slack incoming-webhook message with Block Kit
// blocks as Slack takes them: a text, and blocks of known types whose text objects have a
// type (mrkdwn or plain_text) and a text within Slack's limits. It returns the message's
// text.
func CheckSlackMessage(body []byte) (string, error) {
	var m struct {
		Text   *string          `json:"text"`
		Blocks []map[string]any `json:"blocks"`
	}
	if err := strictJSON(body, &m); err != nil {
		return "", err
	}
	if m.Text == nil || *m.Text == "" {
		return "", errors.New("text: missing or empty (Slack shows it in notifications)")
	}
	if len(m.Blocks) == 0 || len(m.Blocks) > 50 {
		return "", fmt.Errorf("blocks: %d, want 1 to 50", len(m.Blocks))
	}
	for i, b := range m.Blocks {
		p := fmt.Sprintf("blocks[%d]", i)
		switch b["type"] {
		case "section":
			text, hasText := b["text"]
			fields, hasFields := b["fields"]
			if !hasText && !hasFields {
				return "", fmt.Errorf("%s: a section needs text or fields", p)
			}
			if hasText {
				if err := slackText(p+".text", text, 3000); err != nil {
					return "", err
				}
			}
			if hasFields {
				fs, ok := fields.([]any)
				if !ok || len(fs) == 0 || len(fs) > 10 {
					return "", fmt.Errorf("%s.fields: want 1 to 10 text objects, got %v", p, fields)
				}
				for j, f := range fs {
					if err := slackText(fmt.Sprintf("%s.fields[%d]", p, j), f, 2000); err != nil {
						return "", err
					}
				}
			}
		case "context":
			els, ok := b["elements"].([]any)
			if !ok || len(els) == 0 || len(els) > 10 {
				return "", fmt.Errorf("%s.elements: want 1 to 10 elements", p)
			}
			for j, e := range els {
				if err := slackText(fmt.Sprintf("%s.elements[%d]", p, j), e, 3000); err != nil {
					return "", err
				}
			}
		case "header":
			if err := slackText(p+".text", b["text"], 150); err != nil {
				return "", err
			}
		case "divider":
		default:
			return "", fmt.Errorf("%s.type: %v is not a block type this checker knows", p, b["type"])
		}
	}
	return *m.Text, nil
}

func slackText(p string, v any, limit int) error {
	o, ok := v.(map[string]any)
	if !ok {
		return fmt.Errorf("%s: not a text object", p)
	}
	if o["type"] != "mrkdwn" && o["type"] != "plain_text" {
		return fmt.Errorf("%s.type: %v, want mrkdwn or plain_text", p, o["type"])
	}
	s, ok := o["text"].(string)
	if !ok || s == "" || len([]rune(s)) > limit {
		return fmt.Errorf("%s.text: want 1 to %d characters, got %q", p, limit, s)
	}
	for k := range o {
		if k != "type" && k != "text" && k != "emoji" && k != "verbatim" {
			return fmt.Errorf("%s.%s: not a field of a text object", p, k)
		}
	}
	return nil
}

// CheckTeamsMessage checks that body is a Microsoft Teams incoming-webhook message carrying
// an Adaptive Card: type message, one attachment of content type
// application/vnd.microsoft.card.adaptive whose content has $schema, type AdaptiveCard, a
// version and a body of elements with their required fields. It returns the card's texts,
// joined by newlines.
func CheckTeamsMessage(body []byte) (string, error) {
	var m struct {
		Type        string `json:"type"`
		Attachments []struct {
			ContentType string         `json:"contentType"`
			ContentURL  *string        `json:"contentUrl"`
			Content     map[string]any `json:"content"`
		} `json:"attachments"`
	}
	if err := strictJSON(body, &m); err != nil {
		return "", err
	}
	if m.Type != "message" {
		return "", fmt.Errorf("type: %q, want message", m.Type)
	}
	if len(m.Attachments) != 1 {
		return "", fmt.Errorf("attachments: %d, want 1", len(m.Attachments))
	}
	a := m.Attachments[0]
	if a.ContentType != "application/vnd.microsoft.card.adaptive" {
		return "", fmt.Errorf("attachments[0].contentType: %q", a.ContentType)
	}
	c := a.Content
	if s, _ := c["$schema"].(string); !strings.HasPrefix(s, "http://adaptivecards.io/schemas/adaptive-card.json") {
		return "", fmt.Errorf("content.$schema: %v", c["$schema"])
	}
	if c["type"] != "AdaptiveCard" {
		return "", fmt.Errorf("content.type: %v, want AdaptiveCard", c["type"])
	}
	if v, _ := c["version"].(string); v == "" || v > "1.5" {
		return "", fmt.Errorf("content.version: %v, want 1.0 to 1.5 (what Teams renders)", c["version"])
	}
	els, ok := c["body"].([]any)
	if !ok || len(els) == 0 {
		return "", errors.New("content.body: missing or empty")
	}
	var texts []string
	for i, e := range els {
		p := fmt.Sprintf("content.body[%d]", i)
		el, ok := e.(map[string]any)
		if !ok {
			return "", fmt.Errorf("%s: not an object", p)
		}
		switch el["type"] {
		case "TextBlock":
			s, ok := el["text"].(string)
			if !ok || s == "" {
				return "", fmt.Errorf("%s.text: missing or empty", p)
			}
			texts = append(texts, s)
		case "FactSet":
			facts, ok := el["facts"].([]any)
			if !ok || len(facts) == 0 {
				return "", fmt.Errorf("%s.facts: missing or empty", p)
			}
			for j, f := range facts {
				fo, _ := f.(map[string]any)
				title, ok1 := fo["title"].(string)
				value, ok2 := fo["value"].(string)
				if !ok1 || !ok2 || title == "" {
					return "", fmt.Errorf("%s.facts[%d]: want a title and a value, strings", p, j)
				}
				texts = append(texts, title+": "+value)
			}
		default:
			return "", fmt.Errorf("%s.type: %v is not an element this checker knows", p, el["type"])
		}
	}
	return strings.Join(texts, "\n"), nil
}

// WebhookNotification is ramp's generic JSON notification, as a receiver reads it.
type WebhookNotification struct {
	ID             string `json:"id"`
	Event          string `json:"event"`
	Rollout        string `json:"rollout"`
	Namespace      string `json:"namespace"`
	Phase          string `json:"phase"`
	Revision       int64  `json:"revision"`
	StableRevision int64  `json:"stableRevision"`
	Step           string `json:"step"`
	CanaryWeight   int32  `json:"canaryWeight"`
	Weights        []struct {
		Revision int64  `json:"revision"`
		Role     string `json:"role"`
		Weight   int32  `json:"weight"`
	} `json:"weights"`
	Reason  string    `json:"reason"`
	Message string    `json:"message"`
	Time    time.Time `json:"time"`
}

// CheckWebhookNotification checks that body is ramp's JSON notification with every field a
// receiver relies on (unknown fields are refused, so a renamed one shows) and returns it.
func CheckWebhookNotification(body []byte) (WebhookNotification, error) {
	var n WebhookNotification
	if err := strictJSON(body, &n); err != nil {
		return n, err
	}
	var raw map[string]json.RawMessage
	_ = json.Unmarshal(body, &raw)
	for _, k := range []string{"id", "event", "rollout", "phase", "revision", "weights", "message", "time"} {
		if _, ok := raw[k]; !ok {
			return n, fmt.Errorf("%s: missing", k)
		}
	}
	switch {
	case n.ID == "":
		return n, errors.New("id: empty")
	case n.Event == "" || n.Rollout == "" || n.Phase == "":
		return n, fmt.Errorf("event %q, rollout %q, phase %q: none may be empty", n.Event, n.Rollout, n.Phase)
	case n.Time.IsZero():
		return n, errors.New("time: zero")
	}
	return n, nil
}

// strictJSON decodes one JSON value into v, refusing unknown fields and trailing data.
func strictJSON(body []byte, v any) error {
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("not the expected JSON: %w", err)
	}
	if dec.More() {
		return errors.New("trailing data after the JSON value")
	}
	return nil
}

// Notified decodes ramp's JSON notifications that path answered with a 2xx, oldest first,
// with their requests; a body that is not one fails the test.
func (r *Receiver) Notified(t testing.TB, path string) ([]WebhookNotification, []Hook) {
	t.Helper()
	var ns []WebhookNotification
	var hooks []Hook
	for _, h := range r.Hooks(path) {
		if h.Status < 200 || h.Status > 299 {
			continue
		}
		n, err := CheckWebhookNotification(h.Body)
		if err != nil {
			t.Fatalf("%s: %v: %s", path, err, h.Body)
		}
		ns, hooks = append(ns, n), append(hooks, h)
	}
	return ns, hooks
}

// EventsOf lists the events of the notifications about revision rev, oldest first.
func EventsOf(ns []WebhookNotification, rev int64) []string {
	var out []string
	for _, n := range ns {
		if n.Revision == rev {
			out = append(out, n.Event)
		}
	}
	return out
}

// WaitNotified waits until the last notification path got about revision rev is event,
// and returns all it got.
func (r *Receiver) WaitNotified(t testing.TB, path string, rev int64, event string, timeout time.Duration) []WebhookNotification {
	t.Helper()
	var got []WebhookNotification
	r.WaitFor(t, path, timeout, func([]Hook) (bool, string) {
		got, _ = r.Notified(t, path)
		evs := EventsOf(got, rev)
		return len(evs) > 0 && evs[len(evs)-1] == event, fmt.Sprintf("revision %d events %v", rev, evs)
	})
	return got
}

// CheckChatFormats waits until the Slack destination at slackPath and the Teams one at
// teamsPath got as many notifications as want (what the JSON destination got), then checks
// that they got the same events in the same order, each valid for its format.
func (r *Receiver) CheckChatFormats(t testing.TB, slackPath, teamsPath string, want []WebhookNotification) {
	t.Helper()
	for _, path := range []string{slackPath, teamsPath} {
		hooks := r.WaitFor(t, path, 20*time.Second, func(h []Hook) (bool, string) {
			return len(h) >= len(want), fmt.Sprintf("%d of %d", len(h), len(want))
		})
		if len(hooks) != len(want) {
			t.Fatalf("%s: %d notifications, want %d as the JSON destination got", path, len(hooks), len(want))
		}
		for i, h := range hooks {
			var err error
			if path == slackPath {
				_, err = CheckSlackMessage(h.Body)
				if err == nil && !strings.Contains(string(h.Body), `*Event*\n`+want[i].Event) {
					err = fmt.Errorf("no Event field %s", want[i].Event)
				}
			} else {
				var text string
				text, err = CheckTeamsMessage(h.Body)
				if err == nil && !strings.Contains(text, "Event: "+want[i].Event) {
					err = fmt.Errorf("no Event fact %s", want[i].Event)
				}
			}
			if err != nil {
				t.Fatalf("%s notification %d: %v: %s", path, i, err, h.Body)
			}
		}
	}
}
