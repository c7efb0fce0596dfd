// Package gate calls gate webhooks (spec.webhooks) for the driver, off its decision loop: a
// webhook may take up to its timeout, and the loop, the API and user commands must not wait
// for it. The engine decides which gates to call (engine.Output.Gates) and what their answers
// do; this package only calls and keeps the answers until the rollout's status shows them.
package gate

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/offloop"
	"ramp.dev/ramp/internal/secretsource"
	"ramp.dev/ramp/internal/spec"
)

// Body is the JSON a webhook receives (POST, Content-Type application/json).
type Body struct {
	// Name is the webhook's name and Type its type (pre-rollout, ...).
	Name string `json:"name"`
	Type string `json:"type"`
	// Namespace is the rollout's Kubernetes namespace; empty in local mode.
	Namespace string `json:"namespace"`
	// Rollout is the rollout's name.
	Rollout string `json:"rollout"`
	// Phase is the rollout's phase (Progressing, Paused, Healthy, Degraded).
	Phase string `json:"phase"`
	// Revision is the revision the gate is about: the one rolling out, promoted or aborted.
	Revision int64 `json:"revision"`
	// Weight is the canary weight (percent) the gate is about: the weight a
	// confirm-traffic-increase step would set, 100 for the blue-green switch, else the new
	// revision's weight.
	Weight int32 `json:"weight"`
	// Step is the canary step (1-based) a confirm-traffic-increase gate comes before; 0 for
	// the other gates.
	Step int32 `json:"step"`
	// Metadata is the webhook's metadata.
	Metadata map[string]string `json:"metadata,omitempty"`
}

// Answer is what one call gave.
type Answer struct {
	// Passed is true for a 2xx answer.
	Passed bool
	// Message is the HTTP status and the start of the body, or why the call failed.
	Message string
	// At is when the call ended.
	At time.Time
}

// SecretReader reads one key of a Kubernetes Secret (Kubernetes mode's urlSecretRef).
type SecretReader interface {
	SecretValue(ctx context.Context, namespace, name, key string) ([]byte, error)
}

// Target is the rollout a call is for.
type Target struct {
	Namespace, Rollout string
	// Secrets reads urlSecretRef; nil in local mode, where it is refused.
	Secrets SecretReader
}

// Key names one gate of one rollout: a webhook's call point (see engine.SameGate).
type Key struct {
	Namespace, Rollout, Name string
	Revision                 int64
	// Step is the canary step index, -1 for none.
	Step int32
	// Since is the second the rollout came to the gate.
	Since int64
}

// KeyOf is the key of gate g of target t.
func KeyOf(t Target, g *v1alpha1.GateStatus) Key {
	k := Key{Namespace: t.Namespace, Rollout: t.Rollout, Name: g.Name, Revision: g.Revision, Step: -1, Since: g.Since.Unix()}
	if g.Step != nil {
		k.Step = *g.Step
	}
	return k
}

// state is what the Caller knows of one gate between calls.
type state struct {
	// attempts counts the calls ended; last is the last one's answer.
	attempts int32
	last     Answer
}

// Caller calls gate webhooks, each gate's call on its own goroutine, at most one in flight per
// gate, and keeps each gate's answers until Forget. It is safe for concurrent use; calls
// about one rollout come from one caller at a time.
type Caller struct {
	client *http.Client
	wake   func(namespace, rollout string)
	calls  offloop.Reader[Key, state, Answer]
}

// NewCaller returns a Caller that calls wake, from the call's goroutine, when a call ended and
// the rollout should be stepped. A nil client means a new http.Client; a nil wake, none.
func NewCaller(client *http.Client, wake func(namespace, rollout string)) *Caller {
	if client == nil {
		client = &http.Client{}
	}
	if wake == nil {
		wake = func(string, string) {}
	}
	return &Caller{client: client, wake: wake}
}

// Merge writes into gates (a rollout's status.gates) the answers that came since the status
// last showed them, and returns the gates it changed (their indexes in gates). An answer is
// kept and written again until a status handed to Merge shows it, so a status write that
// failed, or a cache that lags behind it, loses none.
func (c *Caller) Merge(t Target, gates []v1alpha1.GateStatus) []int {
	var changed []int
	for i := range gates {
		g := &gates[i]
		k := KeyOf(t, g)
		s, held := c.calls.State(k)
		if a, ok := c.calls.Take(k); ok {
			s.attempts++
			s.last = a
			c.calls.Put(k, s)
			held = true
		}
		if !held || g.Attempts >= s.attempts {
			continue
		}
		g.Attempts = s.attempts
		g.Phase = v1alpha1.GateFailed
		if s.last.Passed {
			g.Phase = v1alpha1.GatePassed
		}
		g.Message = s.last.Message
		at := metav1.NewTime(s.last.At)
		g.AnsweredAt = &at
		changed = append(changed, i)
	}
	return changed
}

// Call starts a call of webhook w for gate k with body b, unless one is in flight or the
// last call ended less than the webhook's interval before now. It returns when to call
// again without being woken: zero while a call is in flight (its end wakes the rollout).
func (c *Caller) Call(ctx context.Context, now time.Time, t Target, k Key, w v1alpha1.Webhook, b Body) time.Time {
	if c.calls.Busy(k) {
		return time.Time{}
	}
	s, held := c.calls.State(k)
	if held && s.attempts > 0 {
		if due := s.last.At.Add(spec.WebhookInterval(&w)); now.Before(due) {
			return due
		}
	}
	if !held {
		c.calls.Put(k, state{})
	}
	c.calls.Start(ctx, k, func(ctx context.Context) Answer {
		return Ask(ctx, c.client, t, w, b)
	}, func(k Key) { c.wake(k.Namespace, k.Rollout) })
	return time.Time{}
}

// Forget cancels the calls in flight of the rollout's gates that gates (its status) no
// longer holds, and forgets them. Nil gates forgets the whole rollout.
func (c *Caller) Forget(namespace, rollout string, gates []v1alpha1.GateStatus) {
	keep := map[Key]bool{}
	t := Target{Namespace: namespace, Rollout: rollout}
	for i := range gates {
		keep[KeyOf(t, &gates[i])] = true
	}
	for _, k := range c.calls.Keys() {
		if k.Namespace == namespace && k.Rollout == rollout && !keep[k] {
			c.calls.Drop(k, errForgotten)
		}
	}
}

// InFlight reports whether a call of gate k is in flight.
func (c *Caller) InFlight(k Key) bool { return c.calls.Busy(k) }

// Close cancels the calls in flight and waits for them to end.
func (c *Caller) Close() { c.calls.Close(errClosed) }

var (
	errForgotten = errors.New("gate no longer wanted")
	errClosed    = errors.New("gate caller closed")
)

// maxBodyInMessage is how much of an answer's body the status keeps.
const maxBodyInMessage = 200

// Ask makes one call of webhook w with body b and returns its answer: Passed for a 2xx
// status within the webhook's timeout. The answer never holds the URL (it may hold a token).
func Ask(ctx context.Context, client *http.Client, t Target, w v1alpha1.Webhook, b Body) Answer {
	timeout := spec.WebhookTimeout(&w)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	fail := func(format string, args ...any) Answer {
		return Answer{Message: fmt.Sprintf(format, args...), At: time.Now()}
	}
	u, err := resolveURL(ctx, t, w)
	if err != nil {
		return fail("%s", err.Error())
	}
	payload, err := json.Marshal(b)
	if err != nil {
		return fail("encode body: %s", err.Error())
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(payload))
	if err != nil {
		return fail("not a URL: %s", redactURLError(err))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "ramp-gate")
	resp, err := client.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) || ctx.Err() == context.DeadlineExceeded {
			return fail("timed out after %s", timeout)
		}
		return fail("POST failed: %s", redactURLError(err))
	}
	defer resp.Body.Close()
	head, err := io.ReadAll(io.LimitReader(resp.Body, maxBodyInMessage+1))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	if err != nil && ctx.Err() == context.DeadlineExceeded {
		return fail("timed out after %s reading the answer (HTTP %d)", timeout, resp.StatusCode)
	}
	msg := "HTTP " + resp.Status
	if text := oneLine(head); text != "" {
		msg += ": " + text
	}
	return Answer{Passed: resp.StatusCode >= 200 && resp.StatusCode < 300, Message: msg, At: time.Now()}
}

// resolveURL reads w's URL from where the spec says.
func resolveURL(ctx context.Context, t Target, w v1alpha1.Webhook) (string, error) {
	var secrets secretsource.Reader
	if t.Secrets != nil {
		secrets = t.Secrets
	}
	raw, ok, err := secretsource.Sources{Secrets: secrets, Namespace: t.Namespace}.Read(ctx, "url", w.URL, w.URLFile, w.URLEnv, w.URLSecretRef)
	if err != nil {
		return "", err
	}
	if !ok {
		return "", errors.New("no url, urlFile, urlEnv or urlSecretRef")
	}
	pu, err := url.Parse(raw)
	if err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
		return "", fmt.Errorf("%s does not hold an http:// or https:// URL", spec.WebhookWhere(&w))
	}
	return raw, nil
}

// redactURLError is err's text without the URL a *url.Error carries.
func redactURLError(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err.Error()
	}
	return err.Error()
}

// oneLine is the start of b as one printable line.
func oneLine(b []byte) string {
	s := strings.ToValidUTF8(string(b), "?")
	s = strings.Map(func(r rune) rune {
		if unicode.IsSpace(r) {
			return ' '
		}
		if !unicode.IsPrint(r) {
			return -1
		}
		return r
	}, s)
	s = strings.Join(strings.Fields(s), " ")
	if len(b) > maxBodyInMessage && len(s) > 0 {
		s += "..."
	}
	return s
}
