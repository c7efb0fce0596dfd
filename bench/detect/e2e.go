package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/bench/internal/openloop"
)

// e2eScenario is one bad model: the env added to the sample's CHAT_MODEL for revision 2.
type e2eScenario struct {
	name, what string
	env        []string
}

var e2eAll = []e2eScenario{
	{"a", "5xx on 10% of chats", []string{"CHAT_ERROR_RATE", "0.1"}},
	{"triage", "40% of triage answers failed, at HTTP 200", []string{"CHAT_TRIAGE_FAIL_RATE", "0.4"}},
	{"first-token", "first token 1.5 s late", []string{"CHAT_FIRST_TOKEN_DELAY", "1500ms"}},
	{"hang", "every chat accepted and never answered", []string{"CHAT_HANG_RATE", "1"}},
	{"crash", "each process exits 20 s after its start", []string{"CHAT_CRASH_AFTER", "20s"}},
	{"leak", "512 KiB kept per answer", []string{"CHAT_LEAK", "512KiB"}},
}

func e2eNames() []string {
	var out []string
	for _, s := range e2eAll {
		out = append(out, s.name)
	}
	return out
}

func parseE2E(list string) ([]e2eScenario, error) {
	var out []e2eScenario
	for _, n := range strings.Split(list, ",") {
		n = strings.TrimSpace(n)
		if n == "" {
			continue
		}
		found := false
		for _, s := range e2eAll {
			if s.name == n {
				out, found = append(out, s), true
			}
		}
		if !found {
			return nil, fmt.Errorf("-e2e-scenarios: unknown scenario %q (want some of %s)", n, strings.Join(e2eNames(), ","))
		}
	}
	return out, nil
}

// clientTimeout is how long a client waits for a whole answer, as the chat team's users do.
const clientTimeout = 2 * time.Minute

// runE2E runs each bad model through the real ramp binary (its proxy, control loop, judge
// and watch window) and the real chat-api, with examples/chat-api/rollout.yaml as it ships
// (only the listen address, the binary's path and the model's env changed), under an
// open-loop load of rps chats per second whose clients wait up to 2 minutes. Per trial it
// measures the time from the apply to the rollout Degraded with revision 1 stable, the time
// from the apply to the last chat answered by the bad model (X-Chat-Model), and the chats
// failed (an error status), cut (a transport error or a body cut short) or hung (no whole
// answer in 2 minutes). keep keeps the trials' directories (ramp's state and log) and prints
// where.
func runE2E(scns []e2eScenario, trials, rps int, keep bool) error {
	sample, err := os.ReadFile(filepath.Join("examples", "chat-api", "rollout.yaml"))
	if err != nil {
		return fmt.Errorf("%w (run from the repository's root)", err)
	}
	dir, err := os.MkdirTemp("", "ramp-detect-")
	if err != nil {
		return err
	}
	if keep {
		fmt.Println("trials' state and ramp's logs kept in", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	ramp, chat := filepath.Join(dir, "ramp"), filepath.Join(dir, "chat-api")
	for _, b := range [][2]string{{ramp, "./cmd/ramp"}, {chat, "./examples/chat-api"}} {
		if out, err := exec.Command("go", "build", "-o", b[0], b[1]).CombinedOutput(); err != nil {
			return fmt.Errorf("build %s: %w\n%s", b[1], err, out)
		}
	}
	fmt.Printf("\nend to end: examples/chat-api/rollout.yaml as it ships, %d chats/s open loop, clients wait up to %s\n", rps, clientTimeout)
	fmt.Println("scenario     trial  apply→Degraded  apply→last bad answer  chats  by bad model  failed  cut  hung  bad after Degraded  v1 p50  v1 p99  load avg  message")
	for _, sc := range scns {
		for i := range trials {
			r, err := e2eTrial(dir, ramp, chat, string(sample), sc, rps, i)
			if err != nil {
				return fmt.Errorf("%s trial %d: %w", sc.name, i+1, err)
			}
			why := r.message
			if rs := []rune(why); len(rs) > 200 {
				why = string(rs[:200]) + "…"
			}
			last := "-"
			if r.lastBad > 0 {
				last = r.lastBad.Round(10 * time.Millisecond).String()
			}
			var codes []string
			for c, k := range r.statuses {
				codes = append(codes, fmt.Sprintf("%d×%d", k, c))
			}
			slices.Sort(codes)
			failed := fmt.Sprint(r.failed)
			if len(codes) > 0 {
				failed += " (" + strings.Join(codes, ", ") + ")"
			}
			fmt.Printf("%-11s  %5d  %14s  %21s  %5d  %12d  %6s  %3d  %4d  %19d  %6s  %6s  %8s  %s\n", sc.name, i+1,
				r.degraded.Round(10*time.Millisecond), last, r.chats, r.bad, failed, r.cut, r.hung, r.badAfter,
				r.p50.Round(time.Millisecond), r.p99.Round(time.Millisecond), r.load, why)
		}
	}
	return nil
}

// sampleText is the sample with the listen address, the binary's path and revision's model
// env changed, nothing else (as test/e2e's sampleFile does).
func sampleText(sample, listen, chat, model string, env ...string) (string, error) {
	s := sample
	for _, r := range [][2]string{
		{"listen: 127.0.0.1:8080", "listen: " + listen},
		{"command: bin/chat-api", "command: " + chat},
	} {
		if strings.Count(s, r[0]) != 1 {
			return "", fmt.Errorf("examples/chat-api/rollout.yaml has %d %q, want 1", strings.Count(s, r[0]), r[0])
		}
		s = strings.Replace(s, r[0], r[1], 1)
	}
	var extra strings.Builder
	extra.WriteString("        value: " + model + "\n")
	for i := 0; i+1 < len(env); i += 2 {
		extra.WriteString("      - name: " + env[i] + "\n        value: \"" + env[i+1] + "\"\n")
	}
	const old = "        value: triage-v1\n"
	if strings.Count(s, old) != 1 {
		return "", fmt.Errorf("examples/chat-api/rollout.yaml has %d %q, want 1", strings.Count(s, old), old)
	}
	return strings.Replace(s, old, extra.String(), 1), nil
}

func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

type e2eResult struct {
	degraded, lastBad    time.Duration
	chats, bad, badAfter int
	failed, cut, hung    int
	message, load        string
	statuses             map[int]int
	// p50 and p99 are the latencies (send time to the end of the answer) of the chats
	// answered whole by triage-v1.
	p50, p99 time.Duration
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Fields(string(b))[0]
}

func e2eTrial(dir, ramp, chat, sample string, sc e2eScenario, rps, n int) (res e2eResult, err error) {
	state := filepath.Join(dir, fmt.Sprintf("%s-%d", sc.name, n))
	listen, err := freePort()
	if err != nil {
		return res, err
	}
	api, err := freePort()
	if err != nil {
		return res, err
	}
	if err := os.MkdirAll(state, 0o700); err != nil {
		return res, err
	}
	file := filepath.Join(state, "rollout.yaml")
	good, err := sampleText(sample, listen, chat, "triage-v1")
	if err != nil {
		return res, err
	}
	bad, err := sampleText(sample, listen, chat, "triage-v2", sc.env...)
	if err != nil {
		return res, err
	}
	if err := os.WriteFile(file, []byte(good), 0o600); err != nil {
		return res, err
	}
	up := exec.Command(ramp, "up", "--state-dir", state, "--api-addr", api, "-f", file)
	logf, err := os.Create(filepath.Join(state, "ramp.log"))
	if err != nil {
		return res, err
	}
	defer logf.Close()
	up.Stdout, up.Stderr = logf, logf
	if err := up.Start(); err != nil {
		return res, err
	}
	defer func() {
		_ = up.Process.Signal(syscall.SIGTERM)
		_ = up.Wait()
		if err != nil {
			if b, rerr := os.ReadFile(filepath.Join(state, "ramp.log")); rerr == nil {
				if len(b) > 4000 {
					b = b[len(b)-4000:]
				}
				err = fmt.Errorf("%w\nramp's log ends:\n%s", err, b)
			}
		}
	}()
	get := func() (v1alpha1.Rollout, error) {
		var ro v1alpha1.Rollout
		out, err := exec.Command(ramp, "get", "chat-api", "-o", "json", "--state-dir", state).Output()
		if err != nil {
			return ro, err
		}
		return ro, json.Unmarshal(out, &ro)
	}
	wait := func(what string, d time.Duration, ok func(v1alpha1.Rollout) bool) (v1alpha1.Rollout, error) {
		deadline := time.Now().Add(d)
		for {
			ro, err := get()
			if err == nil && ok(ro) {
				return ro, nil
			}
			if time.Now().After(deadline) {
				return ro, fmt.Errorf("not %s after %s: %v (phase %s, stable %d: %s)", what, d, err, ro.Status.Phase, ro.Status.StableRevision, ro.Status.Message)
			}
			time.Sleep(200 * time.Millisecond) // polling a real process: nothing to wait on
		}
	}
	if _, err := wait("Healthy", 60*time.Second, func(ro v1alpha1.Rollout) bool { return ro.Status.Phase == v1alpha1.PhaseHealthy }); err != nil {
		return res, err
	}

	// Open-loop load from before the apply to a few seconds after the stop; the run ends when
	// ctx is cancelled and its chats in flight are over (at most clientTimeout later).
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	t0c := make(chan time.Time, 1)
	type runOut struct {
		samples []openloop.Sample
		err     error
	}
	done := make(chan runOut, 1)
	go func() {
		s, err := openloop.Run(ctx, openloop.Config{
			URL: "http://" + listen + "/v1/chat?message=chest+pain", Rate: float64(rps), Duration: 8 * time.Minute,
			Timeout: clientTimeout, KeepHeader: "X-Chat-Model",
		}, func(t time.Time) { t0c <- t })
		done <- runOut{s, err}
	}()
	t0 := <-t0c
	time.Sleep(5 * time.Second) // stable's chats before the apply: the judge's thresholds come from them
	if err := os.WriteFile(file, []byte(bad), 0o600); err != nil {
		return res, err
	}
	applied := time.Now()
	if out, err := exec.Command(ramp, "apply", "-f", file, "--state-dir", state).CombinedOutput(); err != nil {
		return res, fmt.Errorf("apply: %w: %s", err, out)
	}
	// The crash and the leak may be caught in the watch window after the promotion (300 s by
	// default).
	ro, werr := wait("Degraded with revision 1 stable", 6*time.Minute, func(ro v1alpha1.Rollout) bool {
		return ro.Status.Phase == v1alpha1.PhaseDegraded && ro.Status.StableRevision == 1
	})
	stopped := time.Now()
	time.Sleep(3 * time.Second) // chats sent after the stop, to confirm they reach triage-v1
	res.load = loadAvg()
	cancel()
	out := <-done
	if werr != nil {
		return res, werr
	}
	if out.err != nil {
		return res, out.err
	}
	res.degraded, res.message = stopped.Sub(applied), ro.Status.Message
	res.statuses = map[int]int{}
	applyAt, stopAt := applied.Sub(t0), stopped.Sub(t0)
	after := 0
	var v1Lat []time.Duration
	for _, s := range out.samples {
		res.chats++
		if s.Header == "triage-v1" && !s.Failed() {
			v1Lat = append(v1Lat, s.Latency)
		}
		if s.Header == "triage-v2" {
			res.bad++
			if d := s.Intended - applyAt; d > res.lastBad {
				res.lastBad = d
			}
			if s.Intended > stopAt {
				res.badAfter++
			}
		}
		if s.Intended > stopAt {
			after++
		}
		var ne net.Error
		switch {
		case s.Err != nil && errors.As(s.Err, &ne) && ne.Timeout():
			res.hung++
		case s.Err != nil:
			res.cut++
		case s.Status < 200 || s.Status >= 400:
			res.failed++
			res.statuses[s.Status]++
		}
	}
	slices.Sort(v1Lat)
	res.p50, res.p99 = openloop.Quantile(v1Lat, 0.5), openloop.Quantile(v1Lat, 0.99)
	if after == 0 {
		return res, errors.New("no chat was sent after the stop")
	}
	return res, nil
}
