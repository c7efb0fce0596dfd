package gate

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"ramp.dev/ramp/api/v1alpha1"
)

func webhook(url string) v1alpha1.Webhook {
	return v1alpha1.Webhook{Name: "approve", Type: v1alpha1.WebhookConfirmPromotion, URL: url, Metadata: map[string]string{"team": "triage"}}
}

func TestAskSendsTheBodyAndJudgesTheStatus(t *testing.T) {
	var got Body
	var ctype string
	code := atomic.Int32{}
	code.Store(200)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctype = r.Header.Get("Content-Type")
		if r.Method != http.MethodPost {
			t.Errorf("method %s", r.Method)
		}
		if err := json.NewDecoder(r.Body).Decode(&got); err != nil {
			t.Error(err)
		}
		w.WriteHeader(int(code.Load()))
		io.WriteString(w, "not yet:\n"+strings.Repeat("x", 500))
	}))
	defer srv.Close()
	b := Body{Name: "approve", Type: "confirm-promotion", Namespace: "prod", Rollout: "chat-api", Phase: "Paused", Revision: 3, Weight: 50, Step: 2, Metadata: map[string]string{"team": "triage"}}
	a := Ask(context.Background(), srv.Client(), Target{}, webhook(srv.URL), b)
	if !a.Passed || !strings.HasPrefix(a.Message, "HTTP 200 OK: not yet: xxx") || !strings.HasSuffix(a.Message, "...") || a.At.IsZero() {
		t.Fatalf("200: %+v", a)
	}
	if len(a.Message) > maxBodyInMessage+40 {
		t.Fatalf("message not cut: %d bytes", len(a.Message))
	}
	if ctype != "application/json" || got.Name != "approve" || got.Rollout != "chat-api" || got.Namespace != "prod" || got.Revision != 3 || got.Weight != 50 || got.Step != 2 || got.Phase != "Paused" || got.Metadata["team"] != "triage" {
		t.Fatalf("body %+v, content type %q", got, ctype)
	}
	code.Store(500)
	if a := Ask(context.Background(), srv.Client(), Target{}, webhook(srv.URL), b); a.Passed || !strings.HasPrefix(a.Message, "HTTP 500 Internal Server Error: not yet") {
		t.Fatalf("500: %+v", a)
	}
	code.Store(302)
	if a := Ask(context.Background(), &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}, Target{}, webhook(srv.URL), b); a.Passed {
		t.Fatalf("302 passed: %+v", a)
	}
}

// A webhook that answers later than its timeout has failed; the message says so.
func TestAskTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	w := webhook(srv.URL)
	to := intstr.FromString("200ms")
	w.Timeout = &to
	start := time.Now()
	a := Ask(context.Background(), srv.Client(), Target{}, w, Body{})
	if a.Passed || a.Message != "timed out after 200ms" {
		t.Fatalf("%+v", a)
	}
	if el := time.Since(start); el < 200*time.Millisecond || el > 5*time.Second {
		t.Fatalf("took %s", el)
	}
}

// No answer names the URL, which may hold a token; a URL from the environment or a file is
// read at each call.
func TestAskKeepsTheURLOutOfMessages(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	w := webhook("http://user:secret-token@" + addr + "/hook?token=secret-token")
	a := Ask(context.Background(), http.DefaultClient, Target{}, w, Body{})
	if a.Passed || !strings.HasPrefix(a.Message, "POST failed: ") || strings.Contains(a.Message, "secret-token") {
		t.Fatalf("%+v", a)
	}
	w = v1alpha1.Webhook{Name: "a", Type: v1alpha1.WebhookPreRollout, URLEnv: "RAMP_TEST_GATE_URL"}
	if a := Ask(context.Background(), http.DefaultClient, Target{}, w, Body{}); a.Message != "urlEnv: the environment variable RAMP_TEST_GATE_URL is not set" {
		t.Fatalf("%+v", a)
	}
	t.Setenv("RAMP_TEST_GATE_URL", "ftp://secret-token@x/")
	if a := Ask(context.Background(), http.DefaultClient, Target{}, w, Body{}); a.Message != "the URL in $RAMP_TEST_GATE_URL does not hold an http:// or https:// URL" {
		t.Fatalf("%+v", a)
	}
	w = v1alpha1.Webhook{Name: "a", Type: v1alpha1.WebhookPreRollout, URLSecretRef: &v1alpha1.SecretKeyRef{Name: "s", Key: "k"}}
	if a := Ask(context.Background(), http.DefaultClient, Target{}, w, Body{}); a.Message != "urlSecretRef: a Kubernetes Secret cannot be read in local mode" {
		t.Fatalf("%+v", a)
	}
}

// The Caller calls off the caller's goroutine, wakes the rollout when the answer is in, keeps
// the answer until a status shows it, asks a held gate again only after its interval, and
// forgets the gates a status no longer holds.
func TestCallerMergeIntervalForget(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hits.Add(1) < 2 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	woken := make(chan string, 4)
	c := NewCaller(srv.Client(), func(ns, name string) { woken <- ns + "/" + name })
	defer c.Close()
	tg := Target{Namespace: "prod", Rollout: "chat-api"}
	now := time.Date(2026, 12, 3, 8, 0, 0, 0, time.UTC)
	gates := []v1alpha1.GateStatus{{Name: "approve", Type: v1alpha1.WebhookConfirmPromotion, Revision: 2, Since: metav1.NewTime(now), Phase: v1alpha1.GatePending}}
	w := webhook(srv.URL)
	iv := intstr.FromInt32(5)
	w.Interval = &iv
	k := KeyOf(tg, &gates[0])
	wait := func() {
		t.Helper()
		select {
		case who := <-woken:
			if who != "prod/chat-api" {
				t.Fatalf("woke %s", who)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("not woken")
		}
	}
	if next := c.Call(context.Background(), now, tg, k, w, Body{}); !next.IsZero() {
		t.Fatalf("next %s while in flight", next)
	}
	wait()
	stale := append([]v1alpha1.GateStatus(nil), gates...)
	if ch := c.Merge(tg, gates); len(ch) != 1 || gates[0].Phase != v1alpha1.GateFailed || gates[0].Attempts != 1 || gates[0].Message != "HTTP 503 Service Unavailable" || gates[0].AnsweredAt == nil {
		t.Fatalf("merged %v: %+v", ch, gates[0])
	}
	// A stale status (a failed write, a lagging cache) gets the answer again; a current one not.
	if ch := c.Merge(tg, stale); len(ch) != 1 || stale[0].Attempts != 1 {
		t.Fatalf("stale: %v %+v", ch, stale[0])
	}
	if ch := c.Merge(tg, gates); len(ch) != 0 {
		t.Fatalf("merged again: %v", ch)
	}
	// Asked again only once the interval since the answer has passed.
	answered := gates[0].AnsweredAt.Time
	if next := c.Call(context.Background(), answered.Add(time.Second), tg, k, w, Body{}); !next.Equal(answered.Add(5 * time.Second)) {
		t.Fatalf("next %s, want %s", next, answered.Add(5*time.Second))
	}
	if hits.Load() != 1 {
		t.Fatalf("called %d times before the interval passed", hits.Load())
	}
	c.Call(context.Background(), answered.Add(5*time.Second), tg, k, w, Body{})
	wait()
	if c.Merge(tg, gates); gates[0].Phase != v1alpha1.GatePassed || gates[0].Attempts != 2 || gates[0].Message != "HTTP 204 No Content" {
		t.Fatalf("%+v", gates[0])
	}
	c.Forget("prod", "chat-api", nil)
	if _, held := c.calls.State(k); held {
		t.Fatal("not forgotten")
	}
}
