package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/spec"
	"ramp.dev/ramp/internal/store"
)

// fakeBackend serves one rollout, chat-api, and records the calls that change state.
type fakeBackend struct {
	mu      sync.Mutex
	calls   []string
	applied *spec.Bundle
	// err, when set, is returned by every state-changing call.
	err error
}

func (f *fakeBackend) record(call string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, call)
	return f.err
}

func (f *fakeBackend) lookup(name string) error {
	if name != "chat-api" {
		return fmt.Errorf("rollout %s: %w", name, store.ErrNotFound)
	}
	return nil
}

func chatAPI() v1alpha1.Rollout {
	return v1alpha1.Rollout{
		ObjectMeta: metav1.ObjectMeta{Name: "chat-api"},
		Status:     v1alpha1.RolloutStatus{Phase: v1alpha1.PhaseHealthy, StableRevision: 2, CurrentRevision: 2},
	}
}

func (f *fakeBackend) Apply(ctx context.Context, b *spec.Bundle) ([]string, error) {
	f.mu.Lock()
	f.applied = b
	f.mu.Unlock()
	if err := f.record("apply"); err != nil {
		return nil, err
	}
	var out []string
	for _, r := range b.Rollouts {
		out = append(out, "rollout/"+r.Name+" configured")
	}
	return out, nil
}
func (f *fakeBackend) List(ctx context.Context) ([]v1alpha1.Rollout, error) {
	return []v1alpha1.Rollout{chatAPI()}, nil
}
func (f *fakeBackend) Get(ctx context.Context, name string) (*v1alpha1.Rollout, error) {
	if err := f.lookup(name); err != nil {
		return nil, err
	}
	r := chatAPI()
	return &r, nil
}
func (f *fakeBackend) Promote(ctx context.Context, name string, full bool) error {
	if err := f.lookup(name); err != nil {
		return err
	}
	return f.record(fmt.Sprintf("promote %s full=%v", name, full))
}
func (f *fakeBackend) Pause(ctx context.Context, name string) error {
	if err := f.lookup(name); err != nil {
		return err
	}
	return f.record("pause " + name)
}
func (f *fakeBackend) Resume(ctx context.Context, name string) error {
	if err := f.lookup(name); err != nil {
		return err
	}
	return f.record("resume " + name)
}
func (f *fakeBackend) Abort(ctx context.Context, name string) error {
	if err := f.lookup(name); err != nil {
		return err
	}
	return f.record("abort " + name)
}
func (f *fakeBackend) Retry(ctx context.Context, name string) error {
	if err := f.lookup(name); err != nil {
		return err
	}
	return f.record("retry " + name)
}
func (f *fakeBackend) Undo(ctx context.Context, name string, to int64) (store.UndoResult, error) {
	if err := f.lookup(name); err != nil {
		return store.UndoResult{}, err
	}
	if err := f.record(fmt.Sprintf("undo %s to=%d", name, to)); err != nil {
		return store.UndoResult{}, err
	}
	return store.UndoResult{Target: 1, Revision: 3, New: true}, nil
}
func (f *fakeBackend) Restart(ctx context.Context, name string) (string, error) {
	if err := f.lookup(name); err != nil {
		return "", err
	}
	if err := f.record("restart " + name); err != nil {
		return "", err
	}
	return "rollout/" + name + " restarting", nil
}
func (f *fakeBackend) History(ctx context.Context, name string) ([]store.Revision, error) {
	if err := f.lookup(name); err != nil {
		return nil, err
	}
	return []store.Revision{{Rollout: name, Number: 1, Cause: "apply"}, {Rollout: name, Number: 2, Cause: "apply"}}, nil
}
func (f *fakeBackend) Events(ctx context.Context, name string) ([]store.Event, error) {
	if err := f.lookup(name); err != nil {
		return nil, err
	}
	return []store.Event{{Seq: 1, Rollout: name, Reason: "A"}, {Seq: 2, Rollout: name, Reason: "B"}, {Seq: 3, Rollout: name, Reason: "C"}}, nil
}

var _ Backend = (*fakeBackend)(nil)

const testToken = "s3cr3t-t0ken-value"

// fakeLoad accepts "rollout: NAME" lines and rejects anything with "bad" in it, with two
// problems.
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

type env struct {
	srv  *httptest.Server
	fb   *fakeBackend
	logs *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{fb: &fakeBackend{}, logs: &syncBuffer{}}
	logger := slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e.srv = httptest.NewServer(New(e.fb, testToken, logger, WithLoader(fakeLoad)))
	t.Cleanup(e.srv.Close)
	return e
}

func (e *env) do(t *testing.T, method, path, auth, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s %s: Content-Type %q", method, path, ct)
	}
	var m map[string]any
	_ = json.Unmarshal(data, &m) // arrays leave m nil
	return resp.StatusCode, m
}

func TestPostsNeedToken(t *testing.T) {
	posts := []string{
		"/api/v1/apply",
		"/api/v1/rollouts/chat-api/promote",
		"/api/v1/rollouts/chat-api/promote?full=true",
		"/api/v1/rollouts/chat-api/pause",
		"/api/v1/rollouts/chat-api/resume",
		"/api/v1/rollouts/chat-api/abort",
		"/api/v1/rollouts/chat-api/retry",
		"/api/v1/rollouts/chat-api/undo",
		"/api/v1/rollouts/chat-api/restart",
	}
	auths := []struct {
		name   string
		header string
		want   int
	}{
		{"none", "", http.StatusUnauthorized},
		{"wrong token", "Bearer nope", http.StatusUnauthorized},
		{"token prefix", "Bearer " + testToken[:5], http.StatusUnauthorized},
		{"not bearer", "Basic " + testToken, http.StatusUnauthorized},
		{"right token", "Bearer " + testToken, http.StatusOK},
	}
	e := newEnv(t)
	for _, p := range posts {
		for _, a := range auths {
			t.Run(p+"/"+a.name, func(t *testing.T) {
				before := len(e.fb.calls)
				status, body := e.do(t, http.MethodPost, p, a.header, "rollout: chat-api\n")
				if status != a.want {
					t.Fatalf("status %d, want %d (%v)", status, a.want, body)
				}
				if a.want == http.StatusUnauthorized {
					if body["error"] == "" || body["error"] == nil {
						t.Errorf("401 without a JSON error: %v", body)
					}
					if len(e.fb.calls) != before {
						t.Errorf("refused request reached the backend: %v", e.fb.calls[before:])
					}
				}
			})
		}
	}
	if strings.Contains(e.logs.String(), testToken) {
		t.Errorf("token appears in the logs:\n%s", e.logs.String())
	}
	if e.logs.String() == "" {
		t.Error("no logs at all; the token check above proves nothing")
	}
}

func TestEmptyTokenRefusesEveryPost(t *testing.T) {
	srv := httptest.NewServer(New(&fakeBackend{}, "", nil, WithLoader(fakeLoad)))
	defer srv.Close()
	for _, auth := range []string{"", "Bearer ", "Bearer  "} {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/api/v1/rollouts/chat-api/pause", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("auth %q on a server without token: %d, want 401", auth, resp.StatusCode)
		}
	}
}

func TestGetsAreOpen(t *testing.T) {
	e := newEnv(t)
	for _, p := range []string{"/healthz", "/api/v1/rollouts", "/api/v1/rollouts/chat-api", "/api/v1/rollouts/chat-api/history", "/api/v1/rollouts/chat-api/events"} {
		if status, body := e.do(t, http.MethodGet, p, "", ""); status != http.StatusOK {
			t.Errorf("GET %s = %d %v, want 200", p, status, body)
		}
	}
}

func TestErrorMapping(t *testing.T) {
	auth := "Bearer " + testToken
	tests := []struct {
		name       string
		backendErr error
		method     string
		path       string
		body       string
		wantStatus int
		wantError  string
		wantErrors []any
	}{
		{"unknown rollout on get", nil, "GET", "/api/v1/rollouts/nope", "", 404, "rollout nope: not found", nil},
		{"unknown rollout on history", nil, "GET", "/api/v1/rollouts/nope/history", "", 404, "rollout nope: not found", nil},
		{"unknown rollout on promote", nil, "POST", "/api/v1/rollouts/nope/promote", "", 404, "rollout nope: not found", nil},
		{"conflict", fmt.Errorf("promote: rollout chat-api is not paused: %w", ErrConflict), "POST", "/api/v1/rollouts/chat-api/promote", "", 409, "promote: rollout chat-api is not paused: conflict", nil},
		{"backend invalid", fmt.Errorf("rollout/chat-api: analysis template error-rate: %w", ErrInvalid), "POST", "/api/v1/apply", "rollout: chat-api", 400, "rollout/chat-api: analysis template error-rate: invalid", []any{"rollout/chat-api: analysis template error-rate: invalid"}},
		{"other error", errors.New("disk on fire"), "POST", "/api/v1/rollouts/chat-api/abort", "", 500, "disk on fire", nil},
		{"invalid spec", nil, "POST", "/api/v1/apply", "bad: yes", 400,
			"spec.strategy.canary.steps[2].setWeight: 150 is not between 0 and 100\nspec.template: exactly one of process or upstreams is required",
			[]any{"spec.strategy.canary.steps[2].setWeight: 150 is not between 0 and 100", "spec.template: exactly one of process or upstreams is required"}},
		{"bad full", nil, "POST", "/api/v1/rollouts/chat-api/promote?full=maybe", "", 400, `full: "maybe" is not true or false`, nil},
		{"bad toRevision", nil, "POST", "/api/v1/rollouts/chat-api/undo?toRevision=x", "", 400, `toRevision: "x" is not a revision number`, nil},
		{"bad after", nil, "GET", "/api/v1/rollouts/chat-api/events?after=-1", "", 400, `after: "-1" is not a sequence number`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			e.fb.err = tt.backendErr
			status, body := e.do(t, tt.method, tt.path, auth, tt.body)
			if status != tt.wantStatus {
				t.Errorf("status %d, want %d", status, tt.wantStatus)
			}
			if body["error"] != tt.wantError {
				t.Errorf("error %q, want %q", body["error"], tt.wantError)
			}
			got, _ := body["errors"].([]any)
			if !slices.Equal(got, tt.wantErrors) {
				t.Errorf("errors %q, want %q", got, tt.wantErrors)
			}
		})
	}
}

func TestBodyLimit(t *testing.T) {
	e := newEnv(t)
	big := strings.Repeat("#", MaxBodyBytes+1)
	status, body := e.do(t, http.MethodPost, "/api/v1/apply", "Bearer "+testToken, big)
	if status != http.StatusRequestEntityTooLarge {
		t.Errorf("status %d (%v), want 413", status, body)
	}
	if e.fb.applied != nil {
		t.Error("oversized body reached the backend")
	}
}

func TestClientRoundTrips(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	c := &Client{BaseURL: e.srv.URL + "/", Token: testToken}

	if err := c.Health(ctx); err != nil {
		t.Fatalf("Health: %v", err)
	}
	list, err := c.List(ctx)
	if err != nil || len(list) != 1 || list[0].Name != "chat-api" {
		t.Errorf("List = %v, %v", list, err)
	}
	r, err := c.Get(ctx, "chat-api")
	if err != nil || r.Status.Phase != v1alpha1.PhaseHealthy || r.Status.StableRevision != 2 {
		t.Errorf("Get = %+v, %v", r, err)
	}
	if _, err := c.Get(ctx, "nope"); !errors.Is(err, store.ErrNotFound) || err.Error() != "rollout nope: not found" {
		t.Errorf("Get(nope) err = %v, want ErrNotFound with the server's message", err)
	}
	revs, err := c.History(ctx, "chat-api")
	if err != nil || len(revs) != 2 || revs[1].Number != 2 {
		t.Errorf("History = %v, %v", revs, err)
	}
	evs, err := c.Events(ctx, "chat-api", 1)
	if err != nil || len(evs) != 2 || evs[0].Seq != 2 {
		t.Errorf("Events(after 1) = %v, %v", evs, err)
	}
	lines, err := c.Apply(ctx, []byte("rollout: chat-api\nrollout: other\n"))
	if err != nil || !slices.Equal(lines, []string{"rollout/chat-api configured", "rollout/other configured"}) {
		t.Errorf("Apply = %q, %v", lines, err)
	}
	_, err = c.Apply(ctx, []byte("bad"))
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 400 || len(apiErr.Problems) != 2 || !errors.Is(err, ErrInvalid) {
		t.Errorf("Apply(bad) err = %#v, want a 400 APIError with 2 problems", err)
	}

	steps := []struct {
		call func() (string, error)
		want string
		msg  string
	}{
		{func() (string, error) { return c.Promote(ctx, "chat-api", false) }, "promote chat-api full=false", "rollout/chat-api promoted"},
		{func() (string, error) { return c.Promote(ctx, "chat-api", true) }, "promote chat-api full=true", "rollout/chat-api promoted (full)"},
		{func() (string, error) { return c.Pause(ctx, "chat-api") }, "pause chat-api", "rollout/chat-api paused"},
		{func() (string, error) { return c.Resume(ctx, "chat-api") }, "resume chat-api", "rollout/chat-api resumed"},
		{func() (string, error) { return c.Abort(ctx, "chat-api") }, "abort chat-api", "rollout/chat-api aborted"},
		{func() (string, error) { return c.Retry(ctx, "chat-api") }, "retry chat-api", "rollout/chat-api retried"},
	}
	for _, s := range steps {
		msg, err := s.call()
		if err != nil || msg != s.msg {
			t.Errorf("%s: %q, %v; want %q", s.want, msg, err, s.msg)
		}
		if last := e.fb.calls[len(e.fb.calls)-1]; last != s.want {
			t.Errorf("backend got %q, want %q", last, s.want)
		}
	}
	for _, to := range []int64{0, 1} {
		res, err := c.Undo(ctx, "chat-api", to)
		if err != nil || res != (store.UndoResult{Target: 1, Revision: 3, New: true}) {
			t.Errorf("Undo(%d) = %+v, %v", to, res, err)
		}
		if last, want := e.fb.calls[len(e.fb.calls)-1], fmt.Sprintf("undo chat-api to=%d", to); last != want {
			t.Errorf("backend got %q, want %q", last, want)
		}
	}

	if msg, err := c.Restart(ctx, "chat-api"); err != nil || msg != "rollout/chat-api restarting" || e.fb.calls[len(e.fb.calls)-1] != "restart chat-api" {
		t.Errorf("Restart = %q, %v; calls %v", msg, err, e.fb.calls)
	}

	e.fb.err = fmt.Errorf("promote: rollout chat-api is not paused: %w", ErrConflict)
	if _, err := c.Promote(ctx, "chat-api", false); !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "is not paused") {
		t.Errorf("Promote on conflict: err = %v", err)
	}

	noToken := &Client{BaseURL: e.srv.URL}
	var ae *APIError
	if _, err := noToken.Pause(ctx, "chat-api"); !errors.As(err, &ae) || ae.StatusCode != 401 {
		t.Errorf("Pause without token: err = %v, want 401", err)
	}
	if strings.Contains(e.logs.String(), testToken) {
		t.Error("token appears in the logs")
	}
}

func TestNewToken(t *testing.T) {
	a, err := NewToken()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := NewToken()
	if len(a) != 64 || a == b {
		t.Errorf("NewToken = %q, %q; want 64 hex chars, different each time", a, b)
	}
}

func TestPanicIsA500(t *testing.T) {
	panicky := func([]byte) (*spec.Bundle, error) { panic("not implemented") }
	srv := httptest.NewServer(New(&fakeBackend{}, testToken, nil, WithLoader(panicky)))
	defer srv.Close()
	_, err := (&Client{BaseURL: srv.URL, Token: testToken}).Apply(context.Background(), []byte("x"))
	var ae *APIError
	if !errors.As(err, &ae) || ae.StatusCode != 500 || !strings.Contains(ae.Message, "not implemented") {
		t.Errorf("err = %v, want a 500 naming the panic", err)
	}
}
