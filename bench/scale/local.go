package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"ramp.dev/ramp/api/v1alpha1"
)

// localRollout is one rollout of the local run: a canary of one instance that has never
// changed since its first revision.
const localRollout = `---
apiVersion: ramp.dev/v1alpha1
kind: Rollout
metadata: {name: %s}
spec:
  replicas: 1
  listen: %s
  template:
%s
  strategy:
    canary:
      steps:
      - setWeight: 5
      - pause: {duration: 30s}
      - setWeight: 50
      - pause: {duration: 30s}
      - setWeight: 100
`

func runLocal(ctx context.Context, dir, bin string) (*result, error) {
	n := *rollouts
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("svc-%04d", i)
	}
	templates := make([]string, n)
	detail := ""
	switch *template {
	case "upstream":
		// One listener per rollout in this process, answering 200 "ok". ramp's supervisor
		// checks each with a TCP connect every second; no request is sent.
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok\n")) }),
			ReadHeaderTimeout: 10 * time.Second}
		defer srv.Close()
		for i := range templates {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				return nil, err
			}
			go srv.Serve(ln)
			templates[i] = fmt.Sprintf("    upstreams: [%q]", ln.Addr().String())
		}
		detail = "one fixed upstream each, served by the bench"
	case "process":
		up := filepath.Join(dir, "upstream")
		if err := goBuild(up, "./bench/upstream"); err != nil {
			return nil, err
		}
		for i := range templates {
			templates[i] = fmt.Sprintf(`    process:
      command: %s
      args: [-addr, "127.0.0.1:$(PORT)", -name, %s]
      readinessProbe: {httpGet: {path: /healthz}}`, up, names[i])
		}
		detail = "one bench/upstream child process each, readiness probe on its defaults"
	}
	// After the upstreams' listeners, which stay open, so that no address is taken twice.
	addrs, err := freeAddrs(n + 1)
	if err != nil {
		return nil, err
	}
	apiAddr, listens := addrs[0], addrs[1:]
	var spec strings.Builder
	for i := range names {
		fmt.Fprintf(&spec, localRollout, names[i], listens[i], templates[i])
	}
	specFile := filepath.Join(dir, "rollouts.yaml")
	if err := os.WriteFile(specFile, []byte(spec.String()), 0o644); err != nil {
		return nil, err
	}

	state := filepath.Join(dir, "state")
	env, pprofAddr, err := profileEnv()
	if err != nil {
		return nil, err
	}
	logFile := filepath.Join(dir, "ramp.log")
	cmd, stop, err := startRamp(bin, env, logFile, "--state-dir", state, "serve", "--api-addr", apiAddr)
	if err != nil {
		return nil, err
	}
	defer stop()
	pid := cmd.Process.Pid
	fail := func(err error) (*result, error) {
		return nil, fmt.Errorf("%w\nramp's log (end):\n%s", err, tailFile(logFile, 3000))
	}
	if err := waitUntil(ctx, "ramp's control API", 30*time.Second, 100*time.Millisecond, func() (bool, string, error) {
		if exited(pid) {
			return false, "", fmt.Errorf("ramp serve exited")
		}
		resp, err := http.Get("http://" + apiAddr + "/healthz")
		if err != nil {
			return false, err.Error(), nil
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, resp.Status, nil
	}); err != nil {
		return fail(err)
	}
	baseRSS, err := idleRSS(ctx, pid)
	if err != nil {
		return fail(err)
	}

	rampCLI := func(args ...string) ([]byte, error) {
		c := exec.CommandContext(ctx, bin, append([]string{"--state-dir", state}, args...)...)
		var out, errb strings.Builder
		c.Stdout, c.Stderr = &out, &errb
		if err := c.Run(); err != nil {
			return nil, fmt.Errorf("ramp %s: %w\n%s", strings.Join(args, " "), err, errb.String())
		}
		return []byte(out.String()), nil
	}
	start := time.Now()
	if _, err := rampCLI("apply", "-f", specFile); err != nil {
		return fail(err)
	}
	log.Printf("applied %d rollouts in %s", n, time.Since(start).Round(time.Millisecond))
	check := func() (bool, string, error) {
		if exited(pid) {
			return false, "", fmt.Errorf("ramp serve exited")
		}
		out, err := rampCLI("get", "-o", "json")
		if err != nil {
			return false, err.Error(), nil
		}
		var list v1alpha1.RolloutList
		if err := json.Unmarshal(out, &list); err != nil {
			return false, "", fmt.Errorf("ramp get -o json: %w", err)
		}
		ok, state := settled(list.Items, n, func(v1alpha1.Rollout) bool { return true })
		return ok, state, nil
	}
	if err := waitUntil(ctx, "all rollouts settled", *settleWait, time.Second, check); err != nil {
		return fail(err)
	}
	log.Printf("all %d rollouts settled %s after the apply; warming up %s, then measuring %ds", n, time.Since(start).Round(time.Second), *warmup, *seconds)
	if err := sleep(ctx, *warmup); err != nil {
		return nil, err
	}
	var prof func(context.Context, time.Duration) error
	if pprofAddr != "" {
		prof = pprofProfile(pprofAddr)
	}
	load0 := loadAverage()
	m, err := measure(ctx, pid, time.Duration(*seconds)*time.Second, "http://"+apiAddr+"/metrics", prof, nil)
	if err != nil {
		return fail(err)
	}
	load1 := loadAverage()
	// Nothing may have changed: every rollout still settled on its first revision.
	if ok, state, err := check(); err != nil || !ok {
		return fail(fmt.Errorf("after the window, not all rollouts settled any more (%s): %v", state, err))
	}
	res := &result{
		mode: "local", rollouts: n, detail: detail, window: m.window, baseRSS: baseRSS, target: 0.05,
		load: [2]string{load0, load1},
		counters: []counter{
			m.counter("decisions (ramp_reconcile_duration_seconds_count)", "ramp_reconcile_duration_seconds_count", `mode="local"`),
			m.counter("GC cycles (go_gc_duration_seconds_count)", "go_gc_duration_seconds_count"),
		},
		gauges: []counter{
			{what: "goroutines after the window", value: sumMetric(m.after, "go_goroutines")},
			{what: "Go heap in use after the window, MiB", value: sumMetric(m.after, "go_memstats_heap_inuse_bytes") / (1 << 20)},
		},
	}
	if *cpuProfile != "" {
		res.profileTop = profileTop(bin)
	}
	return res, nil
}

// settled reports whether all n rollouts are Healthy on their first revision with every
// desired instance ready (and, for Kubernetes, extra holds), and a summary otherwise.
func settled(items []v1alpha1.Rollout, n int, extra func(v1alpha1.Rollout) bool) (bool, string) {
	ok := 0
	phases := map[string]int{}
	for _, r := range items {
		s := r.Status
		phases[string(s.Phase)]++
		if s.Phase != v1alpha1.PhaseHealthy || max(s.StableRevision, s.ActiveRevision) != 1 || s.CurrentRevision != 1 || !extra(r) {
			continue
		}
		ready := len(s.Revisions) > 0
		for _, rv := range s.Revisions {
			if rv.Desired == 0 || rv.Ready != rv.Desired {
				ready = false
			}
		}
		if ready {
			ok++
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d of %d rollouts settled; phases:", ok, n)
	for _, p := range sortedKeys(phases) {
		name := p
		if name == "" {
			name = "(none)"
		}
		fmt.Fprintf(&b, " %s %d", name, phases[p])
	}
	return ok == n && len(items) == n, b.String()
}

// idleRSS waits a few seconds for a freshly started ramp to settle, then reads its RSS.
func idleRSS(ctx context.Context, pid int) (int64, error) {
	if err := sleep(ctx, 5*time.Second); err != nil {
		return 0, err
	}
	m, err := readMem(pid)
	return m.rss, err
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-time.After(d): // a fixed wait the measurement calls for (warm-up, idle baseline)
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
