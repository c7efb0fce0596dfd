package scrape

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/analysis"
)

// TestChatAPI reads the real sample service's failed-triage share, canary against stable.
func TestChatAPI(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs examples/chat-api")
	}
	bin := filepath.Join(t.TempDir(), "chat-api")
	if out, err := exec.Command("go", "build", "-o", bin, "ramp.dev/ramp/examples/chat-api").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	// Given two canary instances failing half of their triage answers and a healthy stable
	canary := []string{startChatAPI(t, bin, "0.5", "7"), startChatAPI(t, bin, "0.5", "8")}
	stable := startChatAPI(t, bin, "0", "9")
	p := New(instances{2: canary, 1: {stable}}, nil, nil)
	m := v1alpha1.Metric{Name: "failed-triage", Provider: v1alpha1.MetricProvider{Scrape: &v1alpha1.ScrapeMetric{
		Metric: "chat_triage_total", Labels: map[string]string{"outcome": "failed"},
		DivideBy: &v1alpha1.ScrapeSelector{Metric: "chat_triage_total"}, Baseline: true, MinTotal: 10,
	}}}
	target := analysis.Target{Rollout: "chat-api", Revision: 2, Baseline: 1, Since: time.Now()}

	// When the run looks first, then chats are answered
	if v, err := p.Measure(context.Background(), m, target); err != nil || !v.Inconclusive {
		t.Fatalf("first look: %+v, %v; want no data yet", v, err)
	}
	var failed, all int
	for _, addr := range canary {
		for range 20 {
			if chat(t, addr) {
				failed++
			}
			all++
		}
	}
	for range 20 {
		if chat(t, stable) {
			t.Fatalf("stable failed a triage")
		}
	}

	// Then the canary's share is what the answers said, and stable's is 0
	v, err := p.Measure(context.Background(), m, target)
	if err != nil {
		t.Fatal(err)
	}
	want := float64(failed) / float64(all)
	if v.Inconclusive || !near(v.Result, want) || v.Baseline == nil || *v.Baseline != 0 {
		t.Fatalf("got %+v (baseline %v), want %d/%d = %v with baseline 0", v, v.Baseline, failed, all, want)
	}
	if failed == 0 || failed == all {
		t.Fatalf("%d of %d failed; the seeds should give a mix", failed, all)
	}
	t.Logf("canary %s, stable %v", v.Text, *v.Baseline)
}

var listening = regexp.MustCompile(`msg=listening addr=(\S+)`)

// startChatAPI runs the sample service on a free port and returns its address.
func startChatAPI(t *testing.T, bin, failRate, seed string) string {
	t.Helper()
	cmd := exec.Command(bin, "--port", "0", "--tokens", "1", "--token-delay", "0s")
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CHAT_") && !strings.HasPrefix(kv, "PORT=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "CHAT_TRIAGE_FAIL_RATE="+failRate, "CHAT_SEED="+seed)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	addr := make(chan string, 1)
	var once sync.Once
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := listening.FindStringSubmatch(sc.Text()); m != nil {
				once.Do(func() { addr <- m[1] })
			}
		}
	}()
	select {
	case a := <-addr:
		return a
	case <-time.After(10 * time.Second):
		t.Fatalf("chat-api did not say where it listens")
		return ""
	}
}

// chat asks for one answer and reports whether its triage failed.
func chat(t *testing.T, addr string) bool {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/v1/chat?message=hi")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("chat: %d %v", resp.StatusCode, err)
	}
	return strings.Contains(string(b), `"triage":"failed"`)
}
