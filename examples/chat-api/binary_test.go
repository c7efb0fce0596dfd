package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"ramp.dev/ramp/test/testkit"
)

// TestBinary builds the real chat-api and runs it as a process, the way ramp does.
func TestBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := filepath.Join(t.TempDir(), "chat-api")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	t.Run("serves health, info and a chat streamed token by token", func(t *testing.T) {
		t.Parallel()
		// Given a chat-api with a slow stream
		p := startProc(t, bin, []string{"CHAT_MODEL=triage-v2", "CHAT_VERSION=v2.0"}, "--tokens", "3", "--token-delay", "150ms")
		base := "http://" + p.waitListening(t)

		// Then it is healthy and says what it runs
		if code, body := httpGet(t, base+"/healthz"); code != 200 || strings.TrimSpace(body) != "ok" {
			t.Errorf("healthz = %d %q, want 200 ok", code, body)
		}
		var info map[string]string
		if _, body := httpGet(t, base+"/"); json.Unmarshal([]byte(body), &info) != nil ||
			info["model"] != "triage-v2" || info["version"] != "v2.0" {
			t.Errorf("GET / = %q, want model triage-v2 and version v2.0", body)
		}

		// When a chat is asked for
		start := time.Now()
		resp, err := http.Post(base+"/v1/chat", "application/json", strings.NewReader(`{"message": "I have a rash"}`))
		if err != nil {
			t.Fatalf("POST /v1/chat: %v", err)
		}
		defer resp.Body.Close()
		if resp.Header.Get("Content-Type") != "text/event-stream" || resp.Header.Get("X-Chat-Model") != "triage-v2" {
			t.Errorf("headers = %v, want an event stream from triage-v2", resp.Header)
		}

		// Then each token comes as its own event, as it is produced
		r := bufio.NewReader(resp.Body)
		var events []string
		var at []time.Duration
		for {
			data, err := readEvent(r)
			if err != nil {
				t.Fatalf("stream ended after %q: %v", events, err)
			}
			events = append(events, data)
			at = append(at, time.Since(start))
			if data == "[DONE]" {
				break
			}
		}
		want := []string{`{"token":"Urgent"}`, `{"token":" care"}`, `{"token":" today:"}`,
			`{"done":true,"triage":"success","model":"triage-v2"}`, "[DONE]"}
		if strings.Join(events, "\n") != strings.Join(want, "\n") {
			t.Fatalf("events:\n%s\nwant:\n%s", strings.Join(events, "\n"), strings.Join(want, "\n"))
		}
		// The server waits 2×150ms between the first token and the done event; had the
		// stream been buffered they would arrive together.
		if gap := at[3] - at[0]; gap < 200*time.Millisecond {
			t.Errorf("first token read only %v before the done event: the stream is buffered", gap)
		}
	})

	t.Run("SIGTERM finishes the request in flight then exits 0", func(t *testing.T) {
		t.Parallel()
		// Given a chat in the middle of its stream
		p := startProc(t, bin, nil, "--tokens", "3", "--token-delay", "400ms")
		base := "http://" + p.waitListening(t)
		resp, err := http.Get(base + "/v1/chat?message=cough")
		if err != nil {
			t.Fatalf("GET /v1/chat: %v", err)
		}
		defer resp.Body.Close()
		r := bufio.NewReader(resp.Body)
		if data, err := readEvent(r); err != nil || !strings.Contains(data, "token") {
			t.Fatalf("first event = %q, %v; want a token", data, err)
		}

		// When the process is told to stop
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatalf("send SIGTERM: %v", err)
		}
		waitFor(t, 10*time.Second, "shutdown to start", func() bool { return strings.Contains(p.log(), "shutting down") })

		// Then the request still gets the rest of its answer
		s := readStream(t, r)
		if len(s.tokens) != 2 || s.done.Triage != "success" {
			t.Errorf("rest of the stream = %+v, want 2 more tokens and a successful triage", s)
		}
		// And the process exits 0
		if code := p.waitExit(t, 10*time.Second); code != 0 {
			t.Errorf("exit status = %d, want 0\n%s", code, p.log())
		}
	})

	t.Run("crash-after exits with status 3", func(t *testing.T) {
		t.Parallel()
		p := startProc(t, bin, []string{"CHAT_CRASH_AFTER=300ms"})
		p.waitListening(t)
		if code := p.waitExit(t, 10*time.Second); code != exitCrash {
			t.Errorf("exit status = %d, want 3\n%s", code, p.log())
		}
		if !strings.Contains(p.log(), "crashing as asked") {
			t.Errorf("log does not say why it crashed:\n%s", p.log())
		}
	})

	t.Run("error-rate 1 answers every chat with 500", func(t *testing.T) {
		t.Parallel()
		p := startProc(t, bin, []string{"CHAT_ERROR_RATE=1"})
		base := "http://" + p.waitListening(t)
		for range 3 {
			resp, err := http.Post(base+"/v1/chat", "application/json", strings.NewReader(`{"message": "hi"}`))
			if err != nil {
				t.Fatalf("POST /v1/chat: %v", err)
			}
			var body struct{ Error string }
			err = json.NewDecoder(resp.Body).Decode(&body)
			resp.Body.Close()
			if resp.StatusCode != 500 || err != nil || body.Error == "" {
				t.Errorf("chat = %d %+v (%v), want 500 with a JSON error", resp.StatusCode, body, err)
			}
		}
		if code, _ := httpGet(t, base+"/healthz"); code != 200 {
			t.Errorf("healthz = %d, want 200: errors do not fail readiness", code)
		}
	})

	t.Run("fail-readiness answers 503 on healthz", func(t *testing.T) {
		t.Parallel()
		p := startProc(t, bin, nil, "--fail-readiness")
		base := "http://" + p.waitListening(t)
		if code, body := httpGet(t, base+"/healthz"); code != 503 {
			t.Errorf("healthz = %d %q, want 503", code, body)
		}
	})

	t.Run("startup-delay is unready, then ready", func(t *testing.T) {
		t.Parallel()
		p := startProc(t, bin, []string{"CHAT_STARTUP_DELAY=1500ms"})
		base := "http://" + p.waitListening(t)
		if code, _ := httpGet(t, base+"/healthz"); code != 503 {
			t.Errorf("healthz right after start = %d, want 503", code)
		}
		waitFor(t, 10*time.Second, "healthz 200", func() bool {
			code, _ := httpGet(t, base+"/healthz")
			return code == 200
		})
	})

	t.Run("leak keeps memory resident: RSS grows with the answers", func(t *testing.T) {
		t.Parallel()
		// Given a chat-api that keeps 1MiB per answer
		p := startProc(t, bin, []string{"CHAT_LEAK=1MiB"}, "--tokens", "1", "--token-delay", "0s")
		base := "http://" + p.waitListening(t)
		chat(t, base) // the first answer warms the runtime up
		before := vmRSS(t, p.cmd.Process.Pid)

		// When it answers 64 chats
		for range 64 {
			chat(t, base)
		}

		// Then its resident memory has grown by about 64MiB (not merely reserved)
		after := vmRSS(t, p.cmd.Process.Pid)
		if grew := after - before; grew < 48<<20 {
			t.Errorf("VmRSS grew by %d KiB over 64 answers (%d -> %d KiB); want at least 48MiB", grew>>10, before>>10, after>>10)
		}
		if code, _ := httpGet(t, base+"/healthz"); code != 200 {
			t.Errorf("healthz = %d, want 200: a leak does not fail readiness", code)
		}
	})

	t.Run("hang-rate 1 accepts chats and never answers; healthz answers", func(t *testing.T) {
		t.Parallel()
		p := startProc(t, bin, []string{"CHAT_HANG_RATE=1"}, "--shutdown-timeout", "5s")
		base := "http://" + p.waitListening(t)

		// When a chat is asked for, then not even its headers come within the deadline
		ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/chat?message=cough", nil)
		started := time.Now()
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			t.Fatalf("chat answered %d after %v; want no answer", resp.StatusCode, time.Since(started))
		}
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("chat failed with %v; want our deadline to pass (the request accepted and kept waiting)", err)
		}
		// And the health check still answers at once
		if code, body := httpGet(t, base+"/healthz"); code != 200 {
			t.Errorf("healthz = %d %q, want 200", code, body)
		}
		// And the request the client left is counted as such
		waitFor(t, 5*time.Second, "the left request in the metrics", func() bool {
			_, m := httpGet(t, base+"/metrics")
			return strings.Contains(m, `chat_requests_total{code="499"} 1`)
		})

		// When a hung request is open at SIGTERM, then the process does not wait for it
		go func() {
			if resp, err := http.Get(base + "/v1/chat?message=cough"); err == nil {
				resp.Body.Close()
			}
		}()
		waitFor(t, 5*time.Second, "the second chat to be in flight", func() bool {
			_, m := httpGet(t, base+"/metrics")
			return strings.Contains(m, "chat_requests_in_flight 1\n")
		})
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatalf("send SIGTERM: %v", err)
		}
		if code := p.waitExit(t, 3*time.Second); code != 0 {
			t.Errorf("exit status = %d, want 0\n%s", code, p.log())
		}
	})

	badValues := []struct {
		name string
		env  []string
		args []string
		want []string
	}{
		{"variable not a number", []string{"CHAT_ERROR_RATE=abc"}, nil, []string{"CHAT_ERROR_RATE", `"abc"`}},
		{"variable out of range", []string{"CHAT_ERROR_RATE=1.5"}, nil, []string{"CHAT_ERROR_RATE", `"1.5"`, "between 0 and 1"}},
		{"variable bad duration", []string{"CHAT_TOKEN_DELAY=fast"}, nil, []string{"CHAT_TOKEN_DELAY", `"fast"`}},
		{"flag out of range", nil, []string{"--triage-fail-rate", "2"}, []string{"triage-fail-rate", `"2"`}},
	}
	for _, tt := range badValues {
		t.Run("bad value exits 2: "+tt.name, func(t *testing.T) {
			t.Parallel()
			p := startProc(t, bin, tt.env, tt.args...)
			if code := p.waitExit(t, 10*time.Second); code != exitUsage {
				t.Errorf("exit status = %d, want 2", code)
			}
			for _, s := range tt.want {
				if !strings.Contains(p.log(), s) {
					t.Errorf("stderr does not name %s:\n%s", s, p.log())
				}
			}
		})
	}
}

// chat asks for one chat and reads its whole answer.
func chat(t *testing.T, base string) {
	t.Helper()
	resp, err := http.Get(base + "/v1/chat?message=cough")
	if err != nil {
		t.Fatalf("GET /v1/chat: %v", err)
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil || resp.StatusCode != 200 {
		t.Fatalf("chat = %d, %v; want 200", resp.StatusCode, err)
	}
}

// vmRSS reads the resident memory of process pid, in bytes, from /proc.
func vmRSS(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Skipf("no /proc here: %v", err)
	}
	m := regexp.MustCompile(`(?m)^VmRSS:\s+(\d+) kB$`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("no VmRSS line in /proc/%d/status:\n%s", pid, b)
	}
	kb, _ := strconv.ParseInt(string(m[1]), 10, 64)
	return kb << 10
}

// proc is a running chat-api.
type proc struct {
	cmd    *exec.Cmd
	stderr *testkit.SyncBuffer
	exited chan struct{} // closed once the process has exited
	code   int           // exit status, set before exited is closed
}

// startProc starts bin with --port 0 and env on top of the test's environment, from which
// every chat-api variable is removed.
func startProc(t *testing.T, bin string, env []string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"--port", "0"}, args...)...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CHAT_") && !strings.HasPrefix(kv, "PORT=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	p := &proc{cmd: cmd, stderr: &testkit.SyncBuffer{}, exited: make(chan struct{})}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	go func() {
		err := cmd.Wait()
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			p.code = exit.ExitCode()
		} else if err != nil {
			p.code = -1
		}
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			_ = cmd.Process.Kill()
			<-p.exited
		}
	})
	return p
}

var listeningRE = regexp.MustCompile(`msg=listening addr=(\S+)`)

// waitListening returns the address the process logged it listens on.
func (p *proc) waitListening(t *testing.T) string {
	t.Helper()
	var addr string
	waitFor(t, 10*time.Second, "the listening log line", func() bool {
		if m := listeningRE.FindStringSubmatch(p.log()); m != nil {
			addr = m[1]
			return true
		}
		select {
		case <-p.exited:
			t.Fatalf("process exited with %d before listening:\n%s", p.code, p.log())
		default:
		}
		return false
	})
	return addr
}

// waitExit waits for the process to exit and returns its status.
func (p *proc) waitExit(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case <-p.exited:
		return p.code
	case <-time.After(timeout):
		t.Fatalf("process still running after %v:\n%s", timeout, p.log())
		return 0
	}
}

func (p *proc) log() string { return p.stderr.String() }

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		<-tick.C
	}
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
