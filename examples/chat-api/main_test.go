package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// env builds a lookupEnv func over a map.
func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

func TestParseConfig(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		want    func(*config) // edits the default config into the expected one
		wantErr []string      // substrings of the error; nil means success
	}{
		{name: "defaults", want: func(*config) {}},
		{
			name: "flags",
			args: []string{"--port", "9001", "--model", "triage-v2", "--version", "v2", "--tokens", "3",
				"--token-delay", "5ms", "--first-token-delay", "1s", "--latency", "2s", "--error-rate", "0.25",
				"--triage-fail-rate", "1", "--seed", "7", "--fail-readiness", "--startup-delay", "3s",
				"--crash-after", "1m", "--shutdown-timeout", "4s"},
			want: func(c *config) {
				*c = config{port: 9001, model: "triage-v2", version: "v2", tokens: 3, tokenDelay: 5 * time.Millisecond,
					firstTokenDelay: time.Second, latency: 2 * time.Second, errorRate: 0.25, triageFailRate: 1, seed: 7,
					failReadiness: true, startupDelay: 3 * time.Second, crashAfter: time.Minute, shutdownTimeout: 4 * time.Second}
			},
		},
		{
			name: "environment",
			env: map[string]string{"PORT": "9002", "CHAT_MODEL": "triage-v3", "CHAT_VERSION": "v3", "CHAT_TOKENS": "2",
				"CHAT_TOKEN_DELAY": "1ms", "CHAT_FIRST_TOKEN_DELAY": "2s", "CHAT_LATENCY": "3s", "CHAT_ERROR_RATE": "0.5",
				"CHAT_TRIAGE_FAIL_RATE": "0.1", "CHAT_SEED": "-3", "CHAT_FAIL_READINESS": "true",
				"CHAT_STARTUP_DELAY": "4s", "CHAT_CRASH_AFTER": "5s", "CHAT_SHUTDOWN_TIMEOUT": "6s"},
			want: func(c *config) {
				*c = config{port: 9002, model: "triage-v3", version: "v3", tokens: 2, tokenDelay: time.Millisecond,
					firstTokenDelay: 2 * time.Second, latency: 3 * time.Second, errorRate: 0.5, triageFailRate: 0.1, seed: -3,
					failReadiness: true, startupDelay: 4 * time.Second, crashAfter: 5 * time.Second, shutdownTimeout: 6 * time.Second}
			},
		},
		{
			name: "flag wins over a variable, even a bad one",
			args: []string{"--error-rate=0.2", "--model", "from-flag"},
			env:  map[string]string{"CHAT_ERROR_RATE": "abc", "CHAT_MODEL": "from-env", "CHAT_TOKENS": "4"},
			want: func(c *config) { c.errorRate, c.model, c.tokens = 0.2, "from-flag", 4 },
		},
		{
			name: "empty variable is unset",
			env:  map[string]string{"CHAT_MODEL": "", "PORT": ""},
			want: func(*config) {},
		},
		{name: "variable not a number", env: map[string]string{"CHAT_ERROR_RATE": "abc"},
			wantErr: []string{"CHAT_ERROR_RATE", `"abc"`, "not a number"}},
		{name: "variable rate above 1", env: map[string]string{"CHAT_ERROR_RATE": "1.5"},
			wantErr: []string{"CHAT_ERROR_RATE", `"1.5"`, "between 0 and 1"}},
		{name: "variable rate NaN", env: map[string]string{"CHAT_TRIAGE_FAIL_RATE": "NaN"},
			wantErr: []string{"CHAT_TRIAGE_FAIL_RATE", `"NaN"`}},
		{name: "variable duration without unit", env: map[string]string{"CHAT_TOKEN_DELAY": "20"},
			wantErr: []string{"CHAT_TOKEN_DELAY", `"20"`, "not a duration"}},
		{name: "variable negative duration", env: map[string]string{"CHAT_CRASH_AFTER": "-1s"},
			wantErr: []string{"CHAT_CRASH_AFTER", `"-1s"`, "negative"}},
		{name: "variable zero tokens", env: map[string]string{"CHAT_TOKENS": "0"},
			wantErr: []string{"CHAT_TOKENS", `"0"`, "between 1"}},
		{name: "variable port out of range", env: map[string]string{"PORT": "70000"},
			wantErr: []string{"PORT", `"70000"`, "between 0 and 65535"}},
		{name: "variable bad boolean", env: map[string]string{"CHAT_FAIL_READINESS": "maybe"},
			wantErr: []string{"CHAT_FAIL_READINESS", `"maybe"`, "not a boolean"}},
		{name: "variable blank model", env: map[string]string{"CHAT_MODEL": "  "},
			wantErr: []string{"CHAT_MODEL", "must not be empty"}},
		{name: "variable bad seed", env: map[string]string{"CHAT_SEED": "x"},
			wantErr: []string{"CHAT_SEED", `"x"`}},
		{
			name: "sizes with and without a unit",
			args: []string{"--leak", "256KiB", "--hang-rate", "0.25"},
			env:  map[string]string{"CHAT_LEAK": "nope"},
			want: func(c *config) { c.leak, c.hangRate = 256<<10, 0.25 },
		},
		{name: "variable leak in MiB", env: map[string]string{"CHAT_LEAK": "1MiB", "CHAT_HANG_RATE": "1"},
			want: func(c *config) { c.leak, c.hangRate = 1<<20, 1 }},
		{name: "variable leak in decimal units and bytes", env: map[string]string{"CHAT_LEAK": "2 mb"},
			want: func(c *config) { c.leak = 2e6 }},
		{name: "flag leak in bytes", args: []string{"--leak=4096B"}, want: func(c *config) { c.leak = 4096 }},
		{name: "variable leak not a size", env: map[string]string{"CHAT_LEAK": "lots"},
			wantErr: []string{"CHAT_LEAK", "--leak", `"lots"`, "not a size"}},
		{name: "variable leak with an unknown unit", env: map[string]string{"CHAT_LEAK": "1TiB"},
			wantErr: []string{"CHAT_LEAK", `"1TiB"`, "not a size"}},
		{name: "variable leak negative", env: map[string]string{"CHAT_LEAK": "-1KiB"},
			wantErr: []string{"CHAT_LEAK", `"-1KiB"`, "negative"}},
		{name: "variable leak above 1GiB", env: map[string]string{"CHAT_LEAK": "2GiB"},
			wantErr: []string{"CHAT_LEAK", `"2GiB"`, "at most"}},
		{name: "variable hang rate above 1", env: map[string]string{"CHAT_HANG_RATE": "2"},
			wantErr: []string{"CHAT_HANG_RATE", `"2"`, "between 0 and 1"}},
		{name: "flag rate below 0", args: []string{"--triage-fail-rate=-0.1"},
			wantErr: []string{"triage-fail-rate", `"-0.1"`, "between 0 and 1"}},
		{name: "unknown flag", args: []string{"--nope"}, wantErr: []string{"nope"}},
		{name: "positional argument", args: []string{"serve"}, wantErr: []string{`unexpected argument "serve"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseConfig(tt.args, env(tt.env))
			if tt.wantErr != nil {
				if err == nil {
					t.Fatalf("parseConfig() = %+v, want an error", got)
				}
				for _, s := range tt.wantErr {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q does not contain %q", err, s)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("parseConfig() error = %v", err)
			}
			want := defaultConfig()
			tt.want(&want)
			if got != want {
				t.Errorf("parseConfig()\n got %+v\nwant %+v", got, want)
			}
		})
	}
}

func TestParseConfigHelp(t *testing.T) {
	for _, arg := range []string{"-h", "--help"} {
		if _, err := parseConfig([]string{arg}, env(nil)); !errors.Is(err, flag.ErrHelp) {
			t.Errorf("parseConfig(%s) error = %v, want flag.ErrHelp", arg, err)
		}
	}
}

func TestRunUsageAndBadValues(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		env        map[string]string
		wantCode   int
		wantStdout []string
		wantStderr []string
	}{
		{name: "help lists every flag and variable", args: []string{"--help"}, wantCode: 0,
			wantStdout: []string{"Usage: chat-api", "--error-rate 0..1", "CHAT_ERROR_RATE", "--fail-readiness ", "PORT",
				"CHAT_CRASH_AFTER", "CHAT_STARTUP_DELAY", "(default triage-v1)", "(default 20ms)"}},
		{name: "bad variable", env: map[string]string{"CHAT_ERROR_RATE": "abc"}, wantCode: 2,
			wantStderr: []string{`chat-api: invalid value "abc" for CHAT_ERROR_RATE (--error-rate): not a number`, "--help"}},
		{name: "bad flag", args: []string{"--tokens", "many"}, wantCode: 2,
			wantStderr: []string{`invalid value "many" for flag -tokens: not a whole number`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(t.Context(), tt.args, env(tt.env), &stdout, &stderr)
			if code != tt.wantCode {
				t.Errorf("run() = %d, want %d; stderr: %s", code, tt.wantCode, stderr.String())
			}
			for _, s := range tt.wantStdout {
				if !strings.Contains(stdout.String(), s) {
					t.Errorf("stdout does not contain %q:\n%s", s, stdout.String())
				}
			}
			for _, s := range tt.wantStderr {
				if !strings.Contains(stderr.String(), s) {
					t.Errorf("stderr does not contain %q:\n%s", s, stderr.String())
				}
			}
		})
	}
}

// fakeClock is a clock whose sleeps return at once and move time forward.
type fakeClock struct {
	mu    sync.Mutex
	t     time.Time
	slept []time.Duration
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func (c *fakeClock) sleep(ctx context.Context, d time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.slept = append(c.slept, d)
	c.t = c.t.Add(d)
	return ctx.Err()
}

// testConfig is the default config without delays.
func testConfig() config {
	c := defaultConfig()
	c.tokenDelay = 0
	c.seed = 1
	return c
}

// newTestServer serves cfg on an httptest server with a fake clock.
func newTestServer(t *testing.T, cfg config) (*httptest.Server, *fakeClock) {
	t.Helper()
	clock := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	s := newServer(cfg, clock.now(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	s.now, s.sleep = clock.now, clock.sleep
	ts := httptest.NewServer(s.routes())
	t.Cleanup(ts.Close)
	return ts, clock
}

func postChat(t *testing.T, base, body string) *http.Response {
	t.Helper()
	resp, err := http.Post(base+"/v1/chat", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatalf("POST /v1/chat: %v", err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func get(t *testing.T, url string) *http.Response {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// readEvent reads one server-sent event and returns its data.
func readEvent(r *bufio.Reader) (string, error) {
	var data []string
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return "", err
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			if data == nil {
				continue
			}
			return strings.Join(data, "\n"), nil
		}
		if d, ok := strings.CutPrefix(line, "data: "); ok {
			data = append(data, d)
		}
	}
}

// streamed is one chat answer read from the wire.
type streamed struct {
	tokens []string
	done   doneEvent
}

// readStream reads a whole chat stream and checks its framing: token events, then one done
// event, then [DONE], then the end of the body.
func readStream(t *testing.T, body io.Reader) streamed {
	t.Helper()
	r := bufio.NewReader(body)
	var s streamed
	for {
		data, err := readEvent(r)
		if err != nil {
			t.Fatalf("stream ended before the done event: %v (tokens so far %q)", err, s.tokens)
		}
		var tok struct{ Token *string }
		if err := json.Unmarshal([]byte(data), &tok); err != nil {
			t.Fatalf("event %q is not JSON: %v", data, err)
		}
		if tok.Token != nil {
			s.tokens = append(s.tokens, *tok.Token)
			continue
		}
		if err := json.Unmarshal([]byte(data), &s.done); err != nil || !s.done.Done {
			t.Fatalf("event %q is neither a token nor the done event", data)
		}
		break
	}
	if data, err := readEvent(r); err != nil || data != "[DONE]" {
		t.Fatalf("event after done = %q, %v; want [DONE]", data, err)
	}
	if rest, _ := io.ReadAll(r); strings.TrimSpace(string(rest)) != "" {
		t.Fatalf("data after [DONE]: %q", rest)
	}
	return s
}

func TestChatStreams(t *testing.T) {
	cfg := testConfig()
	cfg.tokens = 5
	cfg.model = "triage-v2"
	ts, _ := newTestServer(t, cfg)

	tests := []struct {
		name string
		do   func() *http.Response
	}{
		{"POST", func() *http.Response { return postChat(t, ts.URL, `{"message": "I have a headache", "session": "x"}`) }},
		{"GET", func() *http.Response { return get(t, ts.URL+"/v1/chat?message=I+have+a+headache") }},
	}
	var answers [][]string
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := tt.do()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status = %d, want 200", resp.StatusCode)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
				t.Errorf("Content-Type = %q, want text/event-stream", ct)
			}
			if m := resp.Header.Get("X-Chat-Model"); m != "triage-v2" {
				t.Errorf("X-Chat-Model = %q, want triage-v2", m)
			}
			s := readStream(t, resp.Body)
			if len(s.tokens) != 5 {
				t.Errorf("got %d tokens %q, want 5", len(s.tokens), s.tokens)
			}
			want := doneEvent{Done: true, Triage: "success", Model: "triage-v2"}
			if s.done != want {
				t.Errorf("done event = %+v, want %+v", s.done, want)
			}
			answers = append(answers, s.tokens)
		})
	}
	if len(answers) == 2 && !reflect.DeepEqual(answers[0], answers[1]) {
		t.Errorf("POST and GET answered the same message differently: %q vs %q", answers[0], answers[1])
	}
}

func TestChatBadRequests(t *testing.T) {
	ts, _ := newTestServer(t, testConfig())
	tests := []struct {
		name    string
		do      func() *http.Response
		wantErr string
	}{
		{"not JSON", func() *http.Response { return postChat(t, ts.URL, `{bad`) }, "invalid JSON body"},
		{"wrong type", func() *http.Response { return postChat(t, ts.URL, `{"message": 3}`) }, "invalid JSON body"},
		{"empty body", func() *http.Response { return postChat(t, ts.URL, ``) }, "invalid JSON body"},
		{"two values", func() *http.Response { return postChat(t, ts.URL, `{"message":"a"}{"message":"b"}`) }, "more than one value"},
		{"no message", func() *http.Response { return postChat(t, ts.URL, `{"text": "hi"}`) }, `"message" is missing or empty`},
		{"blank message", func() *http.Response { return postChat(t, ts.URL, `{"message": "  "}`) }, `"message" is missing or empty`},
		{"GET without message", func() *http.Response { return get(t, ts.URL+"/v1/chat") }, `query parameter "message"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := tt.do()
			if resp.StatusCode != http.StatusBadRequest {
				t.Fatalf("status = %d, want 400", resp.StatusCode)
			}
			var body struct{ Error string }
			if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
				t.Fatalf("body is not JSON: %v", err)
			}
			if !strings.Contains(body.Error, tt.wantErr) {
				t.Errorf("error = %q, want it to contain %q", body.Error, tt.wantErr)
			}
		})
	}
}

// TestTokensAreFlushedOneByOne holds the server before its second token and checks that the
// first token has already reached the client.
func TestTokensAreFlushedOneByOne(t *testing.T) {
	cfg := testConfig()
	cfg.tokens = 2
	cfg.tokenDelay = time.Millisecond // so that the server sleeps before each token
	clock := &fakeClock{t: time.Now()}
	s := newServer(cfg, clock.now(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	s.now = clock.now
	release := make(chan struct{})
	var sleeps int
	s.sleep = func(ctx context.Context, d time.Duration) error {
		if d == 0 {
			return nil // the latency
		}
		sleeps++         // only the request's goroutine sleeps
		if sleeps == 2 { // before the second token
			select {
			case <-release:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	}
	ts := httptest.NewServer(s.routes())
	t.Cleanup(ts.Close)

	type firstEvent struct {
		r    *bufio.Reader
		data string
		err  error
	}
	first := make(chan firstEvent, 1)
	go func() {
		resp, err := http.Post(ts.URL+"/v1/chat", "application/json", strings.NewReader(`{"message": "cough"}`))
		if err != nil {
			first <- firstEvent{err: err}
			return
		}
		r := bufio.NewReader(resp.Body)
		data, err := readEvent(r)
		first <- firstEvent{r: r, data: data, err: err}
	}()
	var ev firstEvent
	select {
	case ev = <-first:
	case <-time.After(5 * time.Second):
		close(release)
		t.Fatal("first token did not arrive while the server held the second one: tokens are not flushed")
	}
	if ev.err != nil || !strings.Contains(ev.data, `"token"`) {
		close(release)
		t.Fatalf("first event = %q, %v; want a token", ev.data, ev.err)
	}
	close(release)
	rest := readStream(t, ev.r)
	if len(rest.tokens) != 1 {
		t.Errorf("got %d more tokens, want 1", len(rest.tokens))
	}
}

func TestDelays(t *testing.T) {
	cfg := testConfig()
	cfg.tokens = 3
	cfg.latency = time.Second
	cfg.firstTokenDelay = 2 * time.Second
	cfg.tokenDelay = 10 * time.Millisecond
	ts, clock := newTestServer(t, cfg)

	readStream(t, postChat(t, ts.URL, `{"message": "hi"}`).Body)

	want := []time.Duration{time.Second, 2*time.Second + 10*time.Millisecond, 10 * time.Millisecond, 10 * time.Millisecond}
	clock.mu.Lock()
	got := clock.slept
	clock.mu.Unlock()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("slept %v, want %v", got, want)
	}
	m := scrape(t, ts.URL)
	for _, line := range []string{
		"chat_first_token_seconds_sum 3.01", // latency + first-token delay + one token delay
		"chat_first_token_seconds_count 1",
		"chat_request_duration_seconds_sum 3.03",
	} {
		if !strings.Contains(m, line+"\n") {
			t.Errorf("metrics lack %q", line)
		}
	}
}

func TestErrorRate(t *testing.T) {
	codes := func(rate float64, seed int64, n int) []int {
		cfg := testConfig()
		cfg.errorRate, cfg.seed = rate, seed
		ts, _ := newTestServer(t, cfg)
		var got []int
		for range n {
			resp := postChat(t, ts.URL, `{"message": "hi"}`)
			if resp.StatusCode == http.StatusInternalServerError {
				var body struct{ Error string }
				if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || body.Error == "" {
					t.Errorf("500 body is not a JSON error: %v", err)
				}
			}
			io.Copy(io.Discard, resp.Body)
			got = append(got, resp.StatusCode)
		}
		return got
	}
	count := func(codes []int, code int) int {
		n := 0
		for _, c := range codes {
			if c == code {
				n++
			}
		}
		return n
	}
	if got := codes(1, 1, 5); count(got, 500) != 5 {
		t.Errorf("error rate 1: codes %v, want all 500", got)
	}
	if got := codes(0, 1, 5); count(got, 200) != 5 {
		t.Errorf("error rate 0: codes %v, want all 200", got)
	}
	a, b := codes(0.5, 42, 20), codes(0.5, 42, 20)
	if !reflect.DeepEqual(a, b) {
		t.Errorf("same seed gave different codes:\n%v\n%v", a, b)
	}
	if count(a, 500) == 0 || count(a, 200) == 0 {
		t.Errorf("error rate 0.5 over 20 requests gave %v, want both 200 and 500", a)
	}
}

func TestTriageFailRate(t *testing.T) {
	cfg := testConfig()
	cfg.triageFailRate = 1
	ts, _ := newTestServer(t, cfg)
	resp := postChat(t, ts.URL, `{"message": "I have chest pain"}`)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status = %d, want 200", resp.StatusCode)
	}
	if s := readStream(t, resp.Body); s.done.Triage != "failed" {
		t.Errorf("triage = %q, want failed", s.done.Triage)
	}
	m := scrape(t, ts.URL)
	for _, line := range []string{`chat_triage_total{outcome="failed"} 1`, `chat_triage_total{outcome="success"} 0`} {
		if !strings.Contains(m, line+"\n") {
			t.Errorf("metrics lack %q", line)
		}
	}
}

func TestHealthz(t *testing.T) {
	tests := []struct {
		name     string
		cfg      func(*config)
		after    time.Duration // time since start when asked
		wantCode int
		wantBody string
		wantChat int
	}{
		{"ready", func(*config) {}, 0, 200, "ok", 200},
		{"failing readiness", func(c *config) { c.failReadiness = true }, time.Hour, 503, "--fail-readiness", 200},
		{"model loading", func(c *config) { c.startupDelay = 5 * time.Second }, 4 * time.Second, 503, "model loading", 503},
		{"model loaded", func(c *config) { c.startupDelay = 5 * time.Second }, 5 * time.Second, 200, "ok", 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig()
			tt.cfg(&cfg)
			ts, clock := newTestServer(t, cfg)
			clock.advance(tt.after)
			resp := get(t, ts.URL+"/healthz")
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.wantCode || !strings.Contains(string(body), tt.wantBody) {
				t.Errorf("healthz = %d %q, want %d containing %q", resp.StatusCode, body, tt.wantCode, tt.wantBody)
			}
			chat := postChat(t, ts.URL, `{"message": "hi"}`)
			if chat.StatusCode != tt.wantChat {
				t.Errorf("chat status = %d, want %d", chat.StatusCode, tt.wantChat)
			}
		})
	}
}

func TestInfoAndModelHeader(t *testing.T) {
	cfg := testConfig()
	cfg.model, cfg.version = "triage-v9", "v9.1"
	ts, _ := newTestServer(t, cfg)

	var info map[string]string
	if err := json.NewDecoder(get(t, ts.URL+"/").Body).Decode(&info); err != nil {
		t.Fatalf("GET / is not JSON: %v", err)
	}
	if want := map[string]string{"model": "triage-v9", "version": "v9.1"}; !reflect.DeepEqual(info, want) {
		t.Errorf("GET / = %v, want %v", info, want)
	}

	for _, req := range []struct{ method, path string }{
		{"GET", "/"}, {"GET", "/healthz"}, {"GET", "/metrics"}, {"GET", "/v1/chat?message=hi"},
		{"POST", "/v1/chat"}, {"GET", "/nowhere"}, {"DELETE", "/v1/chat"},
	} {
		r, err := http.NewRequest(req.method, ts.URL+req.path, strings.NewReader(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatalf("%s %s: %v", req.method, req.path, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if got := resp.Header.Get("X-Chat-Model"); got != "triage-v9" {
			t.Errorf("%s %s (%d): X-Chat-Model = %q, want triage-v9", req.method, req.path, resp.StatusCode, got)
		}
	}
}

func TestMetrics(t *testing.T) {
	cfg := testConfig()
	cfg.errorRate = 0.5
	cfg.seed = 42
	ts, _ := newTestServer(t, cfg)
	counts := map[int]int{}
	for range 10 {
		resp := postChat(t, ts.URL, `{"message": "hi"}`)
		io.Copy(io.Discard, resp.Body)
		counts[resp.StatusCode]++
	}
	postChat(t, ts.URL, `nope`)
	get(t, ts.URL+"/healthz") // not a chat request: not counted

	m := scrape(t, ts.URL)
	for _, line := range []string{
		`chat_requests_total{code="200"} ` + strconv.Itoa(counts[200]),
		`chat_requests_total{code="500"} ` + strconv.Itoa(counts[500]),
		`chat_requests_total{code="400"} 1`,
		`chat_triage_total{outcome="success"} ` + strconv.Itoa(counts[200]),
		`chat_first_token_seconds_count ` + strconv.Itoa(counts[200]),
		`chat_request_duration_seconds_count 11`,
		`# TYPE chat_first_token_seconds histogram`,
		`# TYPE chat_request_duration_seconds histogram`,
		`go_goroutines `,
	} {
		if !strings.Contains(m, line) {
			t.Errorf("metrics lack %q", line)
		}
	}
}

func scrape(t *testing.T, base string) string {
	t.Helper()
	resp := get(t, base+"/metrics")
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read metrics: %v", err)
	}
	return string(b)
}

func TestAnswerTokens(t *testing.T) {
	tests := []struct {
		name   string
		msg    string
		n      int
		failed bool
		want   string
	}{
		{"emergency keyword", "Sudden CHEST PAIN and sweating", 3, false, "Emergency: call emergency"},
		{"urgent keyword", "high fever since yesterday", 2, false, "Urgent care"},
		{"failed triage", "chest pain", 4, true, "Sorry, I could not"},
		{"cycles past the end", "fever", 26, false,
			"Urgent care today: visit an urgent care clinic within a few hours. " +
				"This is not a diagnosis; seek care if your symptoms get worse. Urgent care"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			toks := answerTokens(tt.msg, tt.n, tt.failed)
			if len(toks) != tt.n {
				t.Fatalf("got %d tokens, want %d", len(toks), tt.n)
			}
			if got := strings.Join(toks, ""); got != tt.want {
				t.Errorf("answer = %q, want %q", got, tt.want)
			}
			if !reflect.DeepEqual(toks, answerTokens(tt.msg, tt.n, tt.failed)) {
				t.Error("answer is not deterministic")
			}
		})
	}
}
