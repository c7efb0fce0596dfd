// Package e2e drives the real ramp binary, the real sample chat-api as child processes and
// real HTTP traffic on 127.0.0.1, as a user would.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/test/testkit"
)

var (
	rampBin string
	chatBin string
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "ramp-e2e-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	rampBin = filepath.Join(dir, "ramp")
	chatBin = filepath.Join(dir, "chat-api")
	for _, b := range [][2]string{{rampBin, "ramp.dev/ramp/cmd/ramp"}, {chatBin, "ramp.dev/ramp/examples/chat-api"}} {
		out, err := exec.Command("go", "build", "-o", b[0], b[1]).CombinedOutput()
		if err != nil {
			fmt.Fprintf(os.Stderr, "build %s: %s\n%s", b[1], err, out)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for {
		ok, state := cond()
		if ok {
			return
		}
		last = state
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s; last state: %s", timeout, what, last)
		}
		time.Sleep(50 * time.Millisecond) // a poll interval, bounded by the deadline above
	}
}

// spec is a rollout of the sample chat-api with the knobs the tests turn.
type spec struct {
	Listen, Preview string
	Replicas        int
	Env             map[string]string
	Strategy        string // YAML under spec.strategy, indented by 4
	Deadline        int
	Proxy           string // YAML under spec.proxy, indented by 4; empty means none
	// Extra is more YAML documents (e.g. AnalysisTemplates) appended to the file.
	Extra string
}

func (s spec) yaml() string {
	var env strings.Builder
	env.WriteString("        - {name: CHAT_TOKENS, value: \"3\"}\n        - {name: CHAT_TOKEN_DELAY, value: \"2ms\"}\n")
	for _, k := range sortedKeys(s.Env) {
		fmt.Fprintf(&env, "        - {name: %s, value: %q}\n", k, s.Env[k])
	}
	if s.Replicas == 0 {
		s.Replicas = 2
	}
	if s.Deadline == 0 {
		s.Deadline = 15
	}
	return fmt.Sprintf(`apiVersion: ramp.dev/v1alpha1
kind: AnalysisTemplate
metadata:
  name: error-rate
spec:
  metrics:
  - name: error-rate
    initialDelay: 1s
    interval: 1s
    count: 3
    successCondition: result < 0.05
    provider:
      builtin:
        metric: error-rate
        minRequests: 3
---
apiVersion: ramp.dev/v1alpha1
kind: Rollout
metadata:
  name: chat-api
spec:
  replicas: %d
  listen: %s
  progressDeadlineSeconds: %d
  template:
    process:
      command: %s
      env:
%s      readinessProbe:
        httpGet:
          path: /healthz
        periodSeconds: 1
      terminationGracePeriodSeconds: 10
  strategy:
%s%s%s`, s.Replicas, s.Listen, s.Deadline, chatBin, env.String(), s.Strategy, proxyYAML(s.Proxy), s.Extra)
}

func proxyYAML(p string) string {
	if p == "" {
		return ""
	}
	return "  proxy:\n" + p
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	for i := range keys {
		for j := i + 1; j < len(keys); j++ {
			if keys[j] < keys[i] {
				keys[i], keys[j] = keys[j], keys[i]
			}
		}
	}
	return keys
}

// ramp is one `ramp up` process and its state directory.
type ramp struct {
	t        *testing.T
	stateDir string
	apiAddr  string
	specFile string
	cmd      *exec.Cmd
	done     chan struct{}
	logs     *testkit.SyncBuffer
}

// given ramp is up with the spec applied, and its first revision is healthy.
func startRamp(t *testing.T, s spec) *ramp {
	t.Helper()
	return startRampText(t, s.yaml())
}

// startRampText is startRamp with the spec file's text.
func startRampText(t *testing.T, text string) *ramp {
	t.Helper()
	r := &ramp{t: t, stateDir: t.TempDir(), apiAddr: testkit.FreeAddr(t), logs: &testkit.SyncBuffer{}}
	r.specFile = filepath.Join(r.stateDir, "rollout.yaml")
	r.writeText(text)
	t.Cleanup(func() {
		r.stop()
		if t.Failed() {
			t.Logf("ramp logs:\n%s", tail(r.logs.String(), 6000))
		}
	})
	r.up("-f", r.specFile)
	r.waitPhase(v1alpha1.PhaseHealthy, 30*time.Second)
	return r
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func (r *ramp) write(s spec) {
	r.t.Helper()
	r.writeText(s.yaml())
}

func (r *ramp) writeText(text string) {
	r.t.Helper()
	if err := os.WriteFile(r.specFile, []byte(text), 0o600); err != nil {
		r.t.Fatal(err)
	}
}

func (r *ramp) up(args ...string) {
	r.t.Helper()
	args = append([]string{"up", "--state-dir", r.stateDir, "--api-addr", r.apiAddr}, args...)
	r.cmd = exec.Command(rampBin, args...)
	r.cmd.Stdout, r.cmd.Stderr = r.logs, r.logs
	if err := r.cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	r.done = make(chan struct{})
	go func() { _ = r.cmd.Wait(); close(r.done) }()
	waitFor(r.t, 20*time.Second, "the control API", func() (bool, string) {
		select {
		case <-r.done:
			r.t.Fatalf("ramp up exited:\n%s", tail(r.logs.String(), 3000))
		default:
		}
		resp, err := http.Get("http://" + r.apiAddr + "/healthz")
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == 200, resp.Status
	})
}

// stop ends ramp gracefully (SIGTERM), as Ctrl-C would.
func (r *ramp) stop() {
	if r.cmd == nil || r.cmd.Process == nil {
		return
	}
	select {
	case <-r.done:
		return
	default:
	}
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.done:
	case <-time.After(60 * time.Second):
		_ = r.cmd.Process.Kill()
		<-r.done
	}
}

// kill9 kills ramp the hard way: no cleanup code runs.
func (r *ramp) kill9() {
	r.t.Helper()
	if err := r.cmd.Process.Kill(); err != nil {
		r.t.Fatal(err)
	}
	<-r.done
}

// cli runs a ramp CLI verb against this ramp and returns its output and exit code.
func (r *ramp) cli(args ...string) (string, int) {
	r.t.Helper()
	cmd := exec.Command(rampBin, append(args, "--state-dir", r.stateDir)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return out.String(), 0
	case errors.As(err, &ee):
		return out.String(), ee.ExitCode()
	}
	r.t.Fatalf("ramp %v: %s", args, err)
	return "", -1
}

// must runs a CLI verb that must succeed.
func (r *ramp) must(args ...string) string {
	r.t.Helper()
	out, code := r.cli(args...)
	if code != 0 {
		r.t.Fatalf("ramp %s: exit %d:\n%s", strings.Join(args, " "), code, out)
	}
	return out
}

func (r *ramp) apply(s spec) string {
	r.t.Helper()
	r.write(s)
	return r.must("apply", "-f", r.specFile)
}

func (r *ramp) get() v1alpha1.Rollout {
	r.t.Helper()
	out := r.must("get", "chat-api", "-o", "json")
	var ro v1alpha1.Rollout
	if err := json.Unmarshal([]byte(out), &ro); err != nil {
		r.t.Fatalf("ramp get -o json: %s\n%s", err, out)
	}
	return ro
}

func (r *ramp) waitFor(timeout time.Duration, what string, cond func(v1alpha1.Rollout) bool) v1alpha1.Rollout {
	r.t.Helper()
	var last v1alpha1.Rollout
	waitFor(r.t, timeout, what, func() (bool, string) {
		last = r.get()
		return cond(last), fmt.Sprintf("phase %s, step %v, message %q, revisions %+v", last.Status.Phase, ptrVal(last.Status.CurrentStepIndex), last.Status.Message, last.Status.Revisions)
	})
	return last
}

func ptrVal(p *int32) any {
	if p == nil {
		return nil
	}
	return *p
}

func (r *ramp) waitPhase(p v1alpha1.RolloutPhase, timeout time.Duration) v1alpha1.Rollout {
	r.t.Helper()
	return r.waitFor(timeout, "phase "+string(p), func(ro v1alpha1.Rollout) bool { return ro.Status.Phase == p })
}

// load sends a constant rate of chat requests and counts each answer by model.
type load struct {
	url      string
	header   http.Header
	client   *http.Client
	mu       sync.Mutex
	byModel  map[string]int
	failures []string
	total    atomic.Int64
	cancel   context.CancelFunc
	wg       sync.WaitGroup
}

// startLoad sends rps requests per second to addr until stopped.
func startLoad(t *testing.T, addr string, rps int, header http.Header) *load {
	ctx, cancel := context.WithCancel(context.Background())
	l := &load{
		url: "http://" + addr + "/v1/chat?message=chest+pain", header: header, byModel: map[string]int{}, cancel: cancel,
		client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}, Timeout: 30 * time.Second},
	}
	interval := time.Second / time.Duration(rps)
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				l.wg.Add(1)
				go func() { defer l.wg.Done(); l.one() }()
			}
		}
	}()
	t.Cleanup(l.stop)
	return l
}

func (l *load) one() {
	l.total.Add(1)
	model, err := chat(l.client, l.url, l.header)
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		l.failures = append(l.failures, err.Error())
		return
	}
	l.byModel[model]++
}

func (l *load) stop() {
	l.cancel()
	l.wg.Wait()
}

func (l *load) snapshot() (map[string]int, []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	m := map[string]int{}
	for k, v := range l.byModel {
		m[k] = v
	}
	return m, append([]string(nil), l.failures...)
}

// chat sends one streamed chat request and returns the model that answered. Anything but a
// 200 with a complete event stream is an error.
func chat(c *http.Client, url string, header http.Header) (string, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		return "", fmt.Errorf("status %d: %s", resp.StatusCode, strings.TrimSpace(string(b)))
	}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if sc.Text() == "data: [DONE]" {
			return resp.Header.Get("X-Chat-Model"), nil
		}
	}
	return "", fmt.Errorf("stream from %s ended before [DONE]: %v", resp.Header.Get("X-Chat-Model"), sc.Err())
}

// models sends n requests and counts the answering models.
func models(t *testing.T, addr string, n int, header http.Header) map[string]int {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second}
	out := map[string]int{}
	for range n {
		m, err := chat(c, "http://"+addr+"/v1/chat?message=hi", header)
		if err != nil {
			out["error: "+err.Error()]++
			continue
		}
		out[m]++
	}
	return out
}
