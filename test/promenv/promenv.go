// Package promenv runs a real Prometheus for tests: Debian's prometheus (test/tools/
// prometheus.sh installs it) on a free loopback port, scraping chosen targets every second.
package promenv

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"ramp.dev/ramp/test/testkit"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Binary finds prometheus. It is a failure when missing (test/tools/prometheus.sh,
// run by make test, installs it), unless RAMP_SKIP_PROMETHEUS=1.
func Binary(t testing.TB) string {
	t.Helper()
	bin, err := exec.LookPath("prometheus")
	if err == nil {
		return bin
	}
	if os.Getenv("RAMP_SKIP_PROMETHEUS") == "1" {
		t.Skip("prometheus is not installed and RAMP_SKIP_PROMETHEUS=1")
	}
	t.Fatalf("prometheus is not installed: run test/tools/prometheus.sh (make test does), or set RAMP_SKIP_PROMETHEUS=1 to skip")
	return ""
}

// Start runs prometheus on a free loopback port, scraping targets every second,
// and returns its URL once it is ready.
func Start(t testing.TB, bin string, targets ...string) string {
	t.Helper()
	quoted := make([]string, len(targets))
	for i, tg := range targets {
		quoted[i] = strconv.Quote(tg)
	}
	return StartConfig(t, bin, fmt.Sprintf(`scrape_configs:
  - job_name: ramp-test
    static_configs:
      - targets: [%s]
`, strings.Join(quoted, ", ")))
}

// Global is the global section of every test Prometheus's configuration: a scrape and an
// evaluation every second.
const Global = `global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
`

// StartConfig runs prometheus with Global and scrapeConfigs (a scrape_configs section, and
// any other but global) on a free loopback port, and returns its URL once it is ready.
func StartConfig(t testing.TB, bin, scrapeConfigs string) string {
	t.Helper()
	dir := t.TempDir()
	config := Global + scrapeConfigs
	cfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfg, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	for attempt := 0; ; attempt++ {
		addr := testkit.FreeAddr(t)
		log := &strings.Builder{}
		cmd := exec.Command(bin, "--config.file="+cfg, "--storage.tsdb.path="+filepath.Join(dir, "data"),
			"--web.listen-address="+addr, "--log.level=warn")
		logFile, err := os.Create(filepath.Join(dir, fmt.Sprintf("log-%d", attempt)))
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stdout, cmd.Stderr = logFile, logFile
		if err := cmd.Start(); err != nil {
			t.Fatalf("start prometheus: %v", err)
		}
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		stop := func() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(10 * time.Second):
				_ = cmd.Process.Kill()
				<-exited
			}
			logFile.Close()
		}
		base := "http://" + addr
		ready := false
		deadline := time.Now().Add(30 * time.Second)
		for !ready && time.Now().Before(deadline) {
			select {
			case <-exited:
				deadline = time.Time{}
				continue
			case <-time.After(50 * time.Millisecond):
			}
			if resp, err := http.Get(base + "/-/ready"); err == nil {
				ready = resp.StatusCode == 200
				resp.Body.Close()
			}
			// Another test's Prometheus may have taken the port between FreeAddr and the
			// bind (this one then exits): ready only when the one answering is ours.
			ready = ready && ownsPort(base, filepath.Join(dir, "data"))
		}
		if ready {
			t.Cleanup(stop)
			return base
		}
		stop()
		b, _ := os.ReadFile(logFile.Name())
		fmt.Fprint(log, string(b))
		if attempt == 2 {
			t.Fatalf("prometheus did not get ready on %s:\n%s", addr, log)
		}
		t.Logf("prometheus did not start on %s (port taken?), trying another port:\n%s", addr, log)
	}
}

// WaitScrapes polls the Prometheus at addr until every target was scraped at least n times in
// the last minute, or fails the test after timeout.
func WaitScrapes(t testing.TB, addr string, n int, timeout time.Duration) {
	t.Helper()
	q := url.Values{"query": {"min(count_over_time(up[1m]))"}}
	deadline := time.Now().Add(timeout)
	for {
		var body struct {
			Data struct {
				Result []struct {
					Value [2]any `json:"value"`
				} `json:"result"`
			} `json:"data"`
		}
		resp, err := http.Get(addr + "/api/v1/query?" + q.Encode())
		if err == nil {
			err = json.NewDecoder(resp.Body).Decode(&body)
			resp.Body.Close()
		}
		if err == nil && len(body.Data.Result) == 1 {
			if s, ok := body.Data.Result[0].Value[1].(string); ok {
				if v, err := strconv.ParseFloat(s, 64); err == nil && v >= float64(n) {
					return
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus at %s did not scrape its targets %d times within %s (last error: %v)", addr, n, timeout, err)
		}
		time.Sleep(100 * time.Millisecond) // poll
	}
}

// ownsPort reports whether the Prometheus at base is the one whose data lives in dataDir.
func ownsPort(base, dataDir string) bool {
	resp, err := http.Get(base + "/api/v1/status/flags")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	var body struct {
		Data map[string]string `json:"data"`
	}
	return json.NewDecoder(resp.Body).Decode(&body) == nil && body.Data["storage.tsdb.path"] == dataDir
}
