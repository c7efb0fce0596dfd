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
	"ramp.dev/ramp/internal/control"
	"ramp.dev/ramp/internal/spec"
	"ramp.dev/ramp/test/testkit"
)

// fakeBackend serves one rollout, chat-api, and records the calls that change state.
type fakeBackend struct {
	mu      sync.Mutex
	calls   []string
	applied []byte
	// err, when set, is returned by every state-changing call.
	err error
	// panics makes Apply panic.
	panics bool
}

func (f *fakeBackend) record(call string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, call)
	return f.err
}

func (f *fakeBackend) lookup(name string) error {
	if name != "chat-api" {
		return fmt.Errorf("rollout %s: %w", name, control.ErrNotFound)
	}
	return nil
}

// dbPassword is in chat-api's process environment: no answer without the token may show it.
const dbPassword = "hunter2-db-password"

func chatAPI() v1alpha1.Rollout {
	return v1alpha1.Rollout{
		ObjectMeta: metav1.ObjectMeta{Name: "chat-api"},
		Spec: v1alpha1.RolloutSpec{Template: v1alpha1.Template{Process: &v1alpha1.ProcessTemplate{
			Command: "chat-api", Env: []v1alpha1.EnvVar{{Name: "DB_PASSWORD", Value: dbPassword}},
		}}},
		Status: v1alpha1.RolloutStatus{Phase: v1alpha1.PhaseHealthy, StableRevision: 2, CurrentRevision: 2},
	}
}

func (f *fakeBackend) Apply(ctx context.Context, yaml []byte) ([]string, error) {
	if f.panics {
		panic("not implemented")
	}
	f.mu.Lock()
	f.applied = yaml
	f.mu.Unlock()
	b, err := fakeLoad(yaml)
	if err != nil {
		return nil, control.Invalid(err)
	}
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
func (f *fakeBackend) Promote(ctx context.Context, name string, full bool) (string, error) {
	msg := "rollout/" + name + " promoted"
	if full {
		msg += " (full)"
	}
	return f.action(name, fmt.Sprintf("promote %s full=%v", name, full), msg)
}

// action records call on rollout name and answers msg.
func (f *fakeBackend) action(name, call, msg string) (string, error) {
	if err := f.lookup(name); err != nil {
		return "", err
	}
	if err := f.record(call); err != nil {
		return "", err
	}
	return msg, nil
}
func (f *fakeBackend) Pause(ctx context.Context, name string) (string, error) {
	return f.action(name, "pause "+name, "rollout/"+name+" paused")
}
func (f *fakeBackend) Resume(ctx context.Context, name string) (string, error) {
	return f.action(name, "resume "+name, "rollout/"+name+" resumed")
}
func (f *fakeBackend) Abort(ctx context.Context, name string) (string, error) {
	return f.action(name, "abort "+name, "rollout/"+name+" aborted")
}
func (f *fakeBackend) Retry(ctx context.Context, name string) (string, error) {
	return f.action(name, "retry "+name, "rollout/"+name+" retried")
}
func (f *fakeBackend) Undo(ctx context.Context, name string, to int64) (control.UndoResult, error) {
	if err := f.lookup(name); err != nil {
		return control.UndoResult{}, err
	}
	if err := f.record(fmt.Sprintf("undo %s to=%d", name, to)); err != nil {
		return control.UndoResult{}, err
	}
	return control.UndoResult{Target: 1, Revision: 3, New: true}, nil
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
func (f *fakeBackend) History(ctx context.Context, name string) ([]control.Revision, error) {
	if err := f.lookup(name); err != nil {
		return nil, err
	}
	return []control.Revision{{Rollout: name, Number: 1, Cause: "apply"}, {Rollout: name, Number: 2, Cause: "apply"}}, nil
}
func (f *fakeBackend) Events(ctx context.Context, name string, afterSeq uint64) ([]control.Event, error) {
	if err := f.lookup(name); err != nil {
		return nil, err
	}
	all := []control.Event{{Seq: 1, Rollout: name, Reason: "A"}, {Seq: 2, Rollout: name, Reason: "B"}, {Seq: 3, Rollout: name, Reason: "C"}}
	return slices.DeleteFunc(all, func(e control.Event) bool { return e.Seq <= afterSeq }), nil
}

var _ control.Control = (*fakeBackend)(nil)

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
	logs *testkit.SyncBuffer
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{fb: &fakeBackend{}, logs: &testkit.SyncBuffer{}}
	logger := slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e.srv = httptest.NewServer(New(e.fb, testToken, logger))
	t.Cleanup(e.srv.Close)
	return e
}

func (e *env) do(t *testing.T, method, path, auth, body string) (int, map[string]any) {
	t.Helper()
	var header map[string]string
	if auth != "" {
		header = map[string]string{"Authorization": auth}
	}
	code, data := request(t, e.srv.URL, method, path, body, "", header)
	var m map[string]any
	_ = json.Unmarshal(data, &m) // arrays leave m nil
	return code, m
}

// request sends one request with the given body, Host and headers and returns the status and
// body; the answer must be JSON.
func request(t *testing.T, srvURL, method, path, body, host string, header map[string]string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, srvURL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	for k, v := range header {
		req.Header.Set(k, v)
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
	return resp.StatusCode, data
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
	srv := httptest.NewServer(New(&fakeBackend{}, "", nil))
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

// reads are every GET under /api/v1: each shows rollouts, their revisions or their events.
var reads = []string{
	"/api/v1/rollouts",
	"/api/v1/rollouts/chat-api",
	"/api/v1/rollouts/chat-api/history",
	"/api/v1/rollouts/chat-api/events",
	"/api/v1/rollouts/chat-api/events?after=1",
}

// doRaw sends one request with the given Host and headers and returns the status and body.
func doRaw(t *testing.T, srvURL, method, path, host string, header map[string]string) (int, string) {
	t.Helper()
	code, data := request(t, srvURL, method, path, "", host, header)
	return code, string(data)
}

// TestReadsNeedToken: a web page that reaches the API (DNS rebinding) must not read the
// rollouts, whose process environment holds secrets.
func TestReadsNeedToken(t *testing.T) {
	e := newEnv(t)
	auths := []struct {
		name   string
		header string
		want   int
	}{
		{"none", "", http.StatusUnauthorized},
		{"wrong token", "Bearer nope", http.StatusUnauthorized},
		{"not bearer", "Basic " + testToken, http.StatusUnauthorized},
		{"right token", "Bearer " + testToken, http.StatusOK},
	}
	for _, p := range reads {
		for _, a := range auths {
			t.Run(p+"/"+a.name, func(t *testing.T) {
				h := map[string]string{}
				if a.header != "" {
					h["Authorization"] = a.header
				}
				status, body := doRaw(t, e.srv.URL, http.MethodGet, p, "", h)
				if status != a.want {
					t.Fatalf("status %d, want %d: %s", status, a.want, body)
				}
				if a.want == http.StatusUnauthorized {
					if !strings.Contains(body, `"error": "missing or wrong bearer token"`) {
						t.Errorf("401 without its JSON error: %s", body)
					}
					if strings.Contains(body, dbPassword) || strings.Contains(body, "chat-api") {
						t.Errorf("refused read shows the rollout: %s", body)
					}
				}
			})
		}
	}
	// The token holder reads the rollout as applied, environment included.
	if _, body := doRaw(t, e.srv.URL, http.MethodGet, "/api/v1/rollouts/chat-api", "", map[string]string{"Authorization": "Bearer " + testToken}); !strings.Contains(body, dbPassword) {
		t.Errorf("read with the token does not show the rollout's env: %s", body)
	}
	// /healthz tells nothing and stays open, for probes and for waiting on `ramp up`.
	if status, body := doRaw(t, e.srv.URL, http.MethodGet, "/healthz", "", nil); status != http.StatusOK {
		t.Errorf("GET /healthz without token = %d %s, want 200", status, body)
	}
}

func TestHostAndOriginChecks(t *testing.T) {
	auth := map[string]string{"Authorization": "Bearer " + testToken}
	withOrigin := func(o string) map[string]string {
		return map[string]string{"Authorization": "Bearer " + testToken, "Origin": o}
	}
	fb := &fakeBackend{}
	logs := &testkit.SyncBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, nil))
	plain := httptest.NewServer(New(fb, testToken, logger))
	defer plain.Close()
	listed := httptest.NewServer(New(fb, testToken, logger,
		WithAllowedHosts([]string{"ramp.internal", "ops.example:9999"})))
	defer listed.Close()
	port := func(srvURL string) string { return srvURL[strings.LastIndex(srvURL, ":")+1:] }
	pp, lp := port(plain.URL), port(listed.URL)

	tests := []struct {
		name   string
		srv    *httptest.Server
		method string
		path   string
		host   string
		header map[string]string
		want   int
		// wantError is in the error of a refused request.
		wantError string
	}{
		{"listen address", plain, "GET", "/api/v1/rollouts", "", auth, 200, ""},
		{"localhost on the port", plain, "GET", "/api/v1/rollouts", "localhost:" + pp, auth, 200, ""},
		{"localhost upper case", plain, "GET", "/api/v1/rollouts", "LocalHost:" + pp, auth, 200, ""},
		{"IPv6 loopback on the port", plain, "GET", "/api/v1/rollouts", "[::1]:" + pp, auth, 200, ""},
		{"rebound name with the token", plain, "GET", "/api/v1/rollouts", "evil.example:" + pp, auth, 403, `host \"evil.example:` + pp + `\" is not allowed`},
		{"rebound name without the token", plain, "GET", "/api/v1/rollouts/chat-api", "evil.example:" + pp, nil, 403, `host \"evil.example:` + pp + `\" is not allowed`},
		{"rebound name posts", plain, "POST", "/api/v1/rollouts/chat-api/pause", "evil.example:" + pp, auth, 403, "is not allowed"},
		{"rebound name on healthz", plain, "GET", "/healthz", "evil.example:" + pp, nil, 403, "is not allowed"},
		{"localhost on another port", plain, "GET", "/api/v1/rollouts", "localhost:1", auth, 403, `host \"localhost:1\"`},
		{"loopback without port", plain, "GET", "/api/v1/rollouts", "127.0.0.1", auth, 403, "is not allowed"},
		{"name not listed", plain, "GET", "/api/v1/rollouts", "ramp.internal:" + pp, auth, 403, "--api-allowed-hosts"},
		{"listed name", listed, "GET", "/api/v1/rollouts", "ramp.internal:" + lp, auth, 200, ""},
		{"listed name, any case, trailing dot", listed, "POST", "/api/v1/rollouts/chat-api/pause", "RAMP.Internal.:" + lp, auth, 200, ""},
		{"listed name still needs the token", listed, "GET", "/api/v1/rollouts", "ramp.internal:" + lp, nil, 401, "missing or wrong bearer token"},
		{"listed host:port", listed, "GET", "/api/v1/rollouts", "ops.example:9999", auth, 200, ""},
		{"listed host on another port", listed, "GET", "/api/v1/rollouts", "ops.example:" + lp, auth, 403, "is not allowed"},
		{"listed server keeps its own address", listed, "GET", "/api/v1/rollouts", "", auth, 200, ""},
		{"other name on the listed server", listed, "GET", "/api/v1/rollouts", "evil.example:" + lp, auth, 403, "is not allowed"},
		{"same origin", plain, "POST", "/api/v1/rollouts/chat-api/pause", "", withOrigin("http://127.0.0.1:" + pp), 200, ""},
		{"localhost origin", plain, "GET", "/api/v1/rollouts", "", withOrigin("http://localhost:" + pp), 200, ""},
		{"cross-site origin posts", plain, "POST", "/api/v1/rollouts/chat-api/pause", "", withOrigin("http://evil.example"), 403, `origin \"http://evil.example\" is not allowed`},
		{"cross-site origin reads", plain, "GET", "/api/v1/rollouts", "", withOrigin("https://evil.example:" + pp), 403, "is not allowed"},
		{"origin on another port", plain, "GET", "/api/v1/rollouts", "", withOrigin("http://127.0.0.1:1"), 403, "is not allowed"},
		{"null origin", plain, "POST", "/api/v1/rollouts/chat-api/pause", "", withOrigin("null"), 403, `origin \"null\"`},
		{"listed origin", listed, "POST", "/api/v1/rollouts/chat-api/pause", "ramp.internal:" + lp, withOrigin("https://ramp.internal"), 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(fb.calls)
			status, body := doRaw(t, tt.srv.URL, tt.method, tt.path, tt.host, tt.header)
			if status != tt.want {
				t.Fatalf("status %d, want %d: %s", status, tt.want, body)
			}
			if tt.want == 200 {
				return
			}
			if !strings.Contains(body, tt.wantError) {
				t.Errorf("error does not contain %s: %s", tt.wantError, body)
			}
			if strings.Contains(body, dbPassword) || strings.Contains(body, `"name": "chat-api"`) {
				t.Errorf("refused request shows the rollout: %s", body)
			}
			if len(fb.calls) != before {
				t.Errorf("refused request reached the backend: %v", fb.calls[before:])
			}
		})
	}
	if strings.Contains(logs.String(), testToken) {
		t.Errorf("token appears in the logs:\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), "evil.example") {
		t.Errorf("refused hosts are not logged:\n%s", logs.String())
	}
}

func TestValidateAllowedHosts(t *testing.T) {
	for _, ok := range [][]string{nil, {"ramp.internal"}, {"ramp.internal:7070", "10.0.0.5", "[fd00::1]:7070", "::1"}} {
		if err := ValidateAllowedHosts(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, tt := range []struct{ in, want string }{
		{"", `allowed host "": is empty`},
		{"http://ramp.internal", `allowed host "http://ramp.internal": give a host name or host:port, without a scheme`},
		{"ramp.internal/api", `allowed host "ramp.internal/api": give a host name or host:port, without path, wildcard or spaces`},
		{"*.example", `allowed host "*.example": give a host name or host:port, without path, wildcard or spaces`},
		{"ramp.internal:http", `allowed host "ramp.internal:http": port "http" is not a number from 1 to 65535`},
		{"ramp.internal:70700", `allowed host "ramp.internal:70700": port "70700" is not a number from 1 to 65535`},
		{":7070", `allowed host ":7070": has no host name`},
	} {
		err := ValidateAllowedHosts([]string{"ok.example", tt.in})
		if err == nil || err.Error() != tt.want {
			t.Errorf("%q: err %v, want %q", tt.in, err, tt.want)
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
		{"conflict", fmt.Errorf("promote: rollout chat-api is not paused: %w", control.ErrConflict), "POST", "/api/v1/rollouts/chat-api/promote", "", 409, "promote: rollout chat-api is not paused: conflict", nil},
		{"backend invalid", fmt.Errorf("rollout/chat-api: analysis template error-rate: %w", control.ErrInvalid), "POST", "/api/v1/apply", "rollout: chat-api", 400, "rollout/chat-api: analysis template error-rate: invalid", []any{"rollout/chat-api: analysis template error-rate: invalid"}},
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
	if _, err := c.Get(ctx, "nope"); !errors.Is(err, control.ErrNotFound) || err.Error() != "rollout nope: not found" {
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
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 400 || len(apiErr.Problems) != 2 || !errors.Is(err, control.ErrInvalid) {
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
		if err != nil || res != (control.UndoResult{Target: 1, Revision: 3, New: true}) {
			t.Errorf("Undo(%d) = %+v, %v", to, res, err)
		}
		if last, want := e.fb.calls[len(e.fb.calls)-1], fmt.Sprintf("undo chat-api to=%d", to); last != want {
			t.Errorf("backend got %q, want %q", last, want)
		}
	}

	if msg, err := c.Restart(ctx, "chat-api"); err != nil || msg != "rollout/chat-api restarting" || e.fb.calls[len(e.fb.calls)-1] != "restart chat-api" {
		t.Errorf("Restart = %q, %v; calls %v", msg, err, e.fb.calls)
	}

	e.fb.err = fmt.Errorf("promote: rollout chat-api is not paused: %w", control.ErrConflict)
	if _, err := c.Promote(ctx, "chat-api", false); !errors.Is(err, control.ErrConflict) || !strings.Contains(err.Error(), "is not paused") {
		t.Errorf("Promote on conflict: err = %v", err)
	}

	noToken := &Client{BaseURL: e.srv.URL}
	var ae *APIError
	if _, err := noToken.Pause(ctx, "chat-api"); !errors.As(err, &ae) || ae.StatusCode != 401 {
		t.Errorf("Pause without token: err = %v, want 401", err)
	}
	if _, err := noToken.Get(ctx, "chat-api"); !errors.As(err, &ae) || ae.StatusCode != 401 {
		t.Errorf("Get without token: err = %v, want 401", err)
	}
	if err := noToken.Health(ctx); err != nil {
		t.Errorf("Health without token: %v", err)
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
	srv := httptest.NewServer(New(&fakeBackend{panics: true}, testToken, nil))
	defer srv.Close()
	_, err := (&Client{BaseURL: srv.URL, Token: testToken}).Apply(context.Background(), []byte("x"))
	var ae *APIError
	if !errors.As(err, &ae) || ae.StatusCode != 500 || !strings.Contains(ae.Message, "not implemented") {
		t.Errorf("err = %v, want a 500 naming the panic", err)
	}
}
