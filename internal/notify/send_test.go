package notify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/engine"
	"ramp.dev/ramp/test/testkit"
)

// syncLog is a slog text handler's output, safe for concurrent use.
type syncLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *syncLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *syncLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// newNotifier is a Notifier with short waits, closed when the test ends.
func newNotifier(t *testing.T, cfg Config) (*Notifier, *syncLog) {
	t.Helper()
	logs := &syncLog{}
	cfg.Log = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if cfg.Backoff == 0 {
		cfg.Backoff = time.Millisecond
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 2 * time.Second
	}
	n := New(cfg)
	t.Cleanup(func() { _ = n.Close(context.Background()) })
	return n, logs
}

func rolloutTo(dests ...v1alpha1.Notification) *v1alpha1.Rollout {
	r := canary(v1alpha1.RolloutStatus{Phase: v1alpha1.PhaseProgressing, StableRevision: 1, CanaryRevision: 2})
	r.Spec.Notifications = dests
	return r
}

func note(event, msg string) Notification {
	n := sample(event)
	n.Message, n.ID = msg, msg
	return n
}

func events(t *testing.T, hooks []testkit.Hook, status int) []string {
	t.Helper()
	var out []string
	for _, h := range hooks {
		if status != 0 && h.Status != status {
			continue
		}
		n, err := testkit.CheckWebhookNotification(h.Body)
		if err != nil {
			t.Fatalf("%s: %v", h.Body, err)
		}
		out = append(out, n.Message)
	}
	return out
}

// TestRetriesThenDeliversOnceInOrder: a receiver that answers 503 twice gets the
// notification a third time, answers 200, and gets it no more; the notification queued
// after it comes after it.
func TestRetriesThenDeliversOnceInOrder(t *testing.T) {
	recv := testkit.NewReceiver(t)
	recv.Answer = func(_ string, n int) int {
		if n <= 2 {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	}
	n, _ := newNotifier(t, Config{})
	r := rolloutTo(v1alpha1.Notification{Name: "hook", URL: recv.URL + "/hook"})
	n.Send(r, []Notification{note(v1alpha1.NotifyRolloutStarted, "first"), note(v1alpha1.NotifyStepCompleted, "second")})
	hooks := recv.WaitFor(t, "/hook", 10*time.Second, func(h []testkit.Hook) (bool, string) {
		return len(h) >= 4, fmt.Sprintf("%d requests", len(h))
	})
	if err := n.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	hooks = recv.Hooks("/hook")
	got := events(t, hooks, 0)
	if strings.Join(got, ",") != "first,first,first,second" {
		t.Fatalf("requests %v, want first three times (503, 503, 200), then second", got)
	}
	if ok := events(t, hooks, 200); strings.Join(ok, ",") != "first,second" {
		t.Fatalf("delivered %v, want first, second once each", ok)
	}
	if hooks[0].Header.Get("Content-Type") != "application/json" {
		t.Errorf("content type %q", hooks[0].Header.Get("Content-Type"))
	}
}

// TestWhatIsRetried: 5xx, 429 and timeouts are retried up to Attempts; other 4xx are not.
func TestWhatIsRetried(t *testing.T) {
	for _, tt := range []struct {
		status int
		want   int
	}{{500, 3}, {502, 3}, {429, 3}, {400, 1}, {404, 1}, {401, 1}, {301, 1}} {
		t.Run(fmt.Sprint(tt.status), func(t *testing.T) {
			recv := testkit.NewReceiver(t)
			recv.Answer = func(string, int) int { return tt.status }
			var failed []string
			n, logs := newNotifier(t, Config{Attempts: 3, Failed: func(r *v1alpha1.Rollout, rev int64, msg string) {
				failed = append(failed, fmt.Sprintf("%s/%s@%d: %s", r.Namespace, r.Name, rev, msg))
			}})
			n.Send(rolloutTo(v1alpha1.Notification{Name: "hook", URL: recv.URL + "/x"}), []Notification{note(v1alpha1.NotifyRolloutAborted, "m")})
			if err := n.Close(context.Background()); err != nil {
				t.Fatal(err)
			}
			wantFailed := fmt.Sprintf("team/chat-api@2: notification rollout-aborted not sent to hook (attempts: %d): answered %d", tt.want, tt.status)
			if len(failed) != 1 || !strings.HasPrefix(failed[0], wantFailed) || strings.Contains(failed[0], recv.URL) {
				t.Fatalf("Failed told %q, want one starting %q", failed, wantFailed)
			}
			if got := len(recv.Hooks("/x")); got != tt.want {
				t.Fatalf("%d requests, want %d", got, tt.want)
			}
			if !strings.Contains(logs.String(), "notification given up") || !strings.Contains(logs.String(), fmt.Sprint(tt.status)) {
				t.Fatalf("log does not say it gave up with the status:\n%s", logs)
			}
		})
	}
	t.Run("timeout", func(t *testing.T) {
		release := make(chan struct{})
		defer close(release)
		recv := testkit.NewReceiver(t)
		recv.Answer = func(_ string, n int) int {
			if n == 1 {
				<-release
			}
			return 200
		}
		n, _ := newNotifier(t, Config{Timeout: 200 * time.Millisecond})
		n.Send(rolloutTo(v1alpha1.Notification{Name: "hook", URL: recv.URL + "/slow"}), []Notification{note(v1alpha1.NotifyRolloutAborted, "m")})
		recv.WaitFor(t, "/slow", 10*time.Second, func(h []testkit.Hook) (bool, string) {
			return len(h) == 1 && h[0].Status == 200, fmt.Sprintf("%d answered", len(h))
		})
	})
}

// TestSlowDestinationHoldsNothing: while one destination hangs, Send returns at once and
// the other destination gets its notifications.
func TestSlowDestinationHoldsNothing(t *testing.T) {
	release := make(chan struct{})
	recv := testkit.NewReceiver(t)
	recv.Answer = func(path string, _ int) int {
		if path == "/slow" {
			<-release
		}
		return 200
	}
	n, _ := newNotifier(t, Config{Timeout: time.Minute})
	r := rolloutTo(v1alpha1.Notification{Name: "slow", URL: recv.URL + "/slow"}, v1alpha1.Notification{Name: "fast", Type: v1alpha1.NotificationSlack, URL: recv.URL + "/fast"})
	start := time.Now()
	for i := range 5 {
		n.Notify(&v1alpha1.RolloutStatus{}, r, []engine.Event{ev("StepCompleted", fmt.Sprintf("step %d/5 completed", i+1), 2)}, t0.Add(time.Duration(i)*time.Second))
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("Notify took %s with a hanging destination", d)
	}
	hooks := recv.WaitFor(t, "/fast", 10*time.Second, func(h []testkit.Hook) (bool, string) { return len(h) == 5, fmt.Sprintf("%d of 5", len(h)) })
	for i, h := range hooks {
		text, err := testkit.CheckSlackMessage(h.Body)
		if err != nil || !strings.Contains(text, fmt.Sprintf("step %d/5 completed", i+1)) {
			t.Fatalf("fast hook %d: %v: %s", i, err, text)
		}
	}
	close(release)
	recv.WaitFor(t, "/slow", 10*time.Second, func(h []testkit.Hook) (bool, string) { return len(h) == 5, fmt.Sprintf("%d of 5", len(h)) })
}

// TestEventsFilter: a destination gets only the events it names.
func TestEventsFilter(t *testing.T) {
	recv := testkit.NewReceiver(t)
	n, _ := newNotifier(t, Config{})
	r := rolloutTo(v1alpha1.Notification{Name: "aborts", URL: recv.URL + "/a", Events: []string{v1alpha1.NotifyRolloutAborted}})
	n.Send(r, []Notification{note(v1alpha1.NotifyRolloutStarted, "s"), note(v1alpha1.NotifyRolloutAborted, "a"), note(v1alpha1.NotifyRolloutPromoted, "p")})
	_ = n.Close(context.Background())
	if got := events(t, recv.Hooks("/a"), 0); strings.Join(got, ",") != "a" {
		t.Fatalf("got %v, want only the abort", got)
	}
}

type fakeSecrets map[string]string

func (f fakeSecrets) SecretValue(_ context.Context, ns, name, key string) ([]byte, error) {
	v, ok := f[ns+"/"+name+"/"+key]
	if !ok {
		return nil, fmt.Errorf("secret %s/%s not found", ns, name)
	}
	return []byte(v), nil
}

// TestSecretSourcesAndNoSecretInLogs: the URL and header values come from a file, the
// environment or a Secret; neither the URL's path nor a header value is ever logged.
func TestSecretSourcesAndNoSecretInLogs(t *testing.T) {
	recv := testkit.NewReceiver(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "url")
	if err := os.WriteFile(file, []byte(recv.URL+"/T000/SECRETFILE\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"HOOK_URL": recv.URL + "/T000/SECRETENV", "HOOK_TOKEN": "tok-SECRETTOKEN"}
	secrets := fakeSecrets{"team/hooks/url": recv.URL + "/T000/SECRETREF", "team/hooks/token": "Bearer SECRETBEARER"}
	// A server that hangs up on every connection (a refused port may be taken meanwhile by
	// another process on a shared machine).
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	refused := ln.Addr().String()
	n, logs := newNotifier(t, Config{Attempts: 2, Secrets: secrets, Getenv: func(k string) string { return env[k] }})
	r := rolloutTo(
		v1alpha1.Notification{Name: "file", URLFile: file},
		v1alpha1.Notification{Name: "env", URLEnv: "HOOK_URL", Headers: []v1alpha1.NotificationHeader{{Name: "Authorization", ValueEnv: "HOOK_TOKEN"}}},
		v1alpha1.Notification{Name: "secret", URLSecretRef: &v1alpha1.SecretKeyRef{Name: "hooks", Key: "url"},
			Headers: []v1alpha1.NotificationHeader{{Name: "Authorization", ValueSecretRef: &v1alpha1.SecretKeyRef{Name: "hooks", Key: "token"}}}},
		v1alpha1.Notification{Name: "refused", URL: "http://" + refused + "/T000/SECRETREFUSED"}, // hangs up
		v1alpha1.Notification{Name: "missing", URLSecretRef: &v1alpha1.SecretKeyRef{Name: "nope", Key: "url"}},
		v1alpha1.Notification{Name: "unset", URLEnv: "NOT_SET"},
		v1alpha1.Notification{Name: "gone", URLFile: filepath.Join(dir, "nothing")},
	)
	n.Send(r, []Notification{note(v1alpha1.NotifyRolloutPromoted, "p")})
	if err := n.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	for path, auth := range map[string]string{"/T000/SECRETFILE": "", "/T000/SECRETENV": "tok-SECRETTOKEN", "/T000/SECRETREF": "Bearer SECRETBEARER"} {
		h := recv.Hooks(path)
		if len(h) != 1 || h[0].Header.Get("Authorization") != auth {
			t.Errorf("%s: %d requests, Authorization %q; want 1 with %q", path, len(h), header(h), auth)
		}
	}
	out := logs.String()
	for _, want := range []string{`notification=refused event=rollout-promoted id=p attempt=2 err="post: `, `notification=missing`, `secret team/nope not found`,
		`notification=unset`, `the environment variable NOT_SET is not set`, `notification=gone`, `no such file`} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "SECRET") {
		t.Errorf("a secret is in the log:\n%s", out)
	}
}

func header(h []testkit.Hook) string {
	if len(h) == 0 {
		return ""
	}
	return h[0].Header.Get("Authorization")
}

// TestQueueIsBounded: a destination that hangs keeps at most QueueSize notifications; the
// oldest are dropped, and the log says so.
func TestQueueIsBounded(t *testing.T) {
	release := make(chan struct{})
	recv := testkit.NewReceiver(t)
	first := make(chan struct{})
	recv.Answer = func(_ string, n int) int {
		if n == 1 {
			close(first)
			<-release
		}
		return 200
	}
	var mu sync.Mutex
	var failed []string
	n, logs := newNotifier(t, Config{QueueSize: 2, Timeout: time.Minute, Failed: func(_ *v1alpha1.Rollout, _ int64, msg string) {
		mu.Lock()
		defer mu.Unlock()
		failed = append(failed, msg)
	}})
	r := rolloutTo(v1alpha1.Notification{Name: "hook", URL: recv.URL + "/q"})
	n.Send(r, []Notification{note(v1alpha1.NotifyStepCompleted, "0")})
	testkit.Recv(t, first, "the first request")
	for i := 1; i <= 5; i++ {
		n.Send(r, []Notification{note(v1alpha1.NotifyStepCompleted, fmt.Sprint(i))})
	}
	close(release)
	if err := n.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := events(t, recv.Hooks("/q"), 0); strings.Join(got, ",") != "0,4,5" {
		t.Fatalf("got %v, want 0 (in flight), then the newest two", got)
	}
	if c := strings.Count(logs.String(), "queue is full"); c != 3 {
		t.Fatalf("%d drops logged, want 3:\n%s", c, logs)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(failed) != 3 || failed[0] != "notification step-completed dropped: hook's queue of 2 is full" {
		t.Fatalf("Failed told %q, want 3 drops", failed)
	}
}

// TestCloseAbandonsAfterItsDeadline: Close waits for the queue until its context ends, then
// stops the retries.
func TestCloseAbandonsAfterItsDeadline(t *testing.T) {
	recv := testkit.NewReceiver(t)
	recv.Answer = func(string, int) int { return 503 }
	n, _ := newNotifier(t, Config{Backoff: time.Hour, MaxBackoff: time.Hour})
	n.Send(rolloutTo(v1alpha1.Notification{Name: "hook", URL: recv.URL + "/c"}), []Notification{note(v1alpha1.NotifyRolloutAborted, "a")})
	recv.WaitFor(t, "/c", 10*time.Second, func(h []testkit.Hook) (bool, string) { return len(h) == 1, "no request" })
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := n.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close: %v, want the deadline", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Close took %s", d)
	}
}
