package e2e

import (
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/test/testkit"
)

// metricValue returns the value of the series name{labels} on ramp's /metrics, where labels
// are the rollout, revision and role (any role when empty); ok false when it is not there.
func (r *ramp) metricValue(name string, rev int64, role string) (float64, bool) {
	r.t.Helper()
	resp, err := http.Get("http://" + r.apiAddr + "/metrics")
	if err != nil {
		r.t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		r.t.Fatalf("GET /metrics: %s %v", resp.Status, err)
	}
	want := []string{`rollout="chat-api"`, `revision="` + strconv.FormatInt(rev, 10) + `"`}
	if role != "" {
		want = append(want, `role="`+role+`"`)
	}
	for _, line := range strings.Split(string(b), "\n") {
		labels, value, ok := strings.Cut(strings.TrimPrefix(line, name+"{"), "} ")
		if !ok || !strings.HasPrefix(line, name+"{") {
			continue
		}
		match := true
		for _, w := range want {
			match = match && slices.Contains(strings.Split(labels, ","), w)
		}
		if !match {
			continue
		}
		v, err := strconv.ParseFloat(value, 64)
		if err != nil {
			r.t.Fatalf("%s: %v", line, err)
		}
		return v, true
	}
	return 0, false
}

// A canary that is ready and serves, then exits long after its start (past the crash-loop
// window, so it never crash-loops) is aborted at its first exit, since stable's instances had
// none; the event names the exit status and the last lines of its stderr; and /metrics shows
// the instances' exits, CPU, memory and probe failures per revision.
func TestCanaryThatExitsLateIsAbortedAndTheExitRecorded(t *testing.T) {
	s := spec{Listen: testkit.FreeAddr(t), Strategy: `    canary:
      judge: {enabled: false}
      steps:
      - setWeight: 25
      - pause: {}
`}
	r := startRamp(t, model(s, "v1"))
	l := startLoad(t, s.Listen, 40, nil)
	defer l.stop()

	// When v2 serves for 12 s, then exits with status 3
	r.apply(model(s, "v2", "CHAT_CRASH_AFTER", "12s"))
	r.waitFor(30*time.Second, "the canary paused with a ready instance", func(ro v1alpha1.Rollout) bool {
		return ro.Status.Phase == v1alpha1.PhasePaused && readyOf(ro, 2) == 1
	})
	// Then, while it runs, /metrics shows both revisions' instances
	waitFor(t, 10*time.Second, "instance metrics of both revisions", func() (bool, string) {
		mem, _ := r.metricValue("ramp_instance_memory_bytes", 2, "canary")
		cpu, _ := r.metricValue("ramp_instance_cpu_seconds_total", 1, "stable")
		n1, _ := r.metricValue("ramp_instances", 1, "stable")
		_, pf := r.metricValue("ramp_instance_probe_failures_total", 2, "canary")
		ex, ok := r.metricValue("ramp_instance_exits_total", 2, "canary")
		state := fmt.Sprintf("canary memory %g, stable cpu %g, stable instances %g, canary probe failures series %v, canary exits %g (%v)", mem, cpu, n1, pf, ex, ok)
		return mem > 1<<20 && mem < 1<<30 && cpu > 0 && cpu < 60 && n1 == 2 && pf && ok && ex == 0, state
	})

	// And when it exits, the rollout is aborted at once, saying why
	start := time.Now()
	out, code := r.cli("status", "chat-api", "--timeout", "60s")
	if code != 1 || !strings.Contains(out, "revision 2 exited unexpectedly: instance chat-api-r2-1 exited with status 3") {
		t.Fatalf("ramp status exit %d, want 1 naming the exit:\n%s", code, out)
	}
	t.Logf("aborted %s after the status wait began: %s", time.Since(start).Round(time.Millisecond), r.get().Status.Message)
	// And an event records the exit: status, how long it ran, its last stderr lines
	events := r.must("events", "chat-api")
	if !regexp.MustCompile(`InstanceExited.*instance chat-api-r2-1 of revision 2 exited with status 3 after 12\.\d+s .*last stderr: .*crashing as asked`).MatchString(events) {
		t.Fatalf("no InstanceExited event with the status, run time and stderr:\n%s", events)
	}
	// And the exit is counted on /metrics
	waitFor(t, 10*time.Second, "the canary's exit on /metrics", func() (bool, string) {
		v, ok := r.metricValue("ramp_instance_exits_total", 2, "")
		return v == 1, fmt.Sprint(v, ok)
	})
	// And all traffic is back on v1
	waitFor(t, 10*time.Second, "all traffic on v1", func() (bool, string) {
		got := models(t, s.Listen, 20, nil)
		return got["v1"] == 20, str(got)
	})
	l.stop()
	byModel, failures := l.snapshot()
	t.Logf("requests by model %v; %d failed (the streams the exit cut)", byModel, len(failures))
}
