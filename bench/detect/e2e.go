package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"ramp.dev/ramp/api/v1alpha1"
)

// runE2E runs scenario A through the real ramp binary (its proxy, control loop and judge)
// and the real chat-api: stable answers 0.1% of requests with 500, the canary (5%) 10% from
// its first request. It measures, from the client's side, the time from the canary's first
// request to its last one (weight 0) and the client requests the canary failed.
func runE2E(trials, rps int) error {
	dir, err := os.MkdirTemp("", "ramp-detect-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	ramp, chat := filepath.Join(dir, "ramp"), filepath.Join(dir, "chat-api")
	for _, b := range [][2]string{{ramp, "./cmd/ramp"}, {chat, "./examples/chat-api"}} {
		if out, err := exec.Command("go", "build", "-o", b[0], b[1]).CombinedOutput(); err != nil {
			return fmt.Errorf("build %s: %w\n%s", b[1], err, out)
		}
	}
	fmt.Printf("\nend to end, scenario A through ramp's proxy and chat-api at %d rps, canary 5%%, canary 5xx 10%% (stable 0.1%%):\n", rps)
	fmt.Println("trial  detect (first canary request → last)  failed canary requests  failed client requests  aborted because")
	for i := range trials {
		det, failed, total, why, err := e2eTrial(dir, ramp, chat, rps, i)
		if err != nil {
			return fmt.Errorf("trial %d: %w", i+1, err)
		}
		if r := []rune(why); len(r) > 150 {
			why = string(r[:150]) + "…"
		}
		fmt.Printf("%5d  %36s  %22d  %22d  %s\n", i+1, det.Round(10*time.Millisecond), failed, total, why)
	}
	return nil
}

func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func spec(listen, chat, model, errRate string) string {
	return fmt.Sprintf(`apiVersion: ramp.dev/v1alpha1
kind: Rollout
metadata:
  name: chat-api
spec:
  replicas: 2
  listen: %s
  template:
    process:
      command: %s
      env:
      - {name: CHAT_MODEL, value: %s}
      - {name: CHAT_ERROR_RATE, value: "%s"}
      - {name: CHAT_TOKENS, value: "3"}
      - {name: CHAT_TOKEN_DELAY, value: "2ms"}
      readinessProbe:
        httpGet: {path: /healthz}
        periodSeconds: 1
  strategy:
    canary:
      steps:
      - setWeight: 5
      - pause: {duration: 600s}
`, listen, chat, model, errRate)
}

type hit struct {
	at     time.Time
	model  string
	status int
}

func e2eTrial(dir, ramp, chat string, rps, n int) (detect time.Duration, canaryFailed, clientFailed int, why string, err error) {
	state := filepath.Join(dir, fmt.Sprintf("state-%d", n))
	listen, err := freePort()
	if err != nil {
		return 0, 0, 0, "", err
	}
	api, err := freePort()
	if err != nil {
		return 0, 0, 0, "", err
	}
	if err := os.MkdirAll(state, 0o700); err != nil {
		return 0, 0, 0, "", err
	}
	file := filepath.Join(state, "rollout.yaml")
	if err := os.WriteFile(file, []byte(spec(listen, chat, "v1", "0.001")), 0o600); err != nil {
		return 0, 0, 0, "", err
	}
	up := exec.Command(ramp, "up", "--state-dir", state, "--api-addr", api, "-f", file)
	logf, _ := os.Create(filepath.Join(state, "ramp.log"))
	defer logf.Close()
	up.Stdout, up.Stderr = logf, logf
	if err := up.Start(); err != nil {
		return 0, 0, 0, "", err
	}
	defer func() {
		_ = up.Process.Signal(syscall.SIGTERM)
		_ = up.Wait()
	}()
	get := func() (v1alpha1.Rollout, error) {
		var ro v1alpha1.Rollout
		out, err := exec.Command(ramp, "get", "chat-api", "-o", "json", "--state-dir", state).Output()
		if err != nil {
			return ro, err
		}
		return ro, json.Unmarshal(out, &ro)
	}
	wait := func(p v1alpha1.RolloutPhase, d time.Duration) (v1alpha1.Rollout, error) {
		deadline := time.Now().Add(d)
		for {
			ro, err := get()
			if err == nil && ro.Status.Phase == p {
				return ro, nil
			}
			if time.Now().After(deadline) {
				return ro, fmt.Errorf("no phase %s after %s: %v %s", p, d, err, ro.Status.Message)
			}
			time.Sleep(200 * time.Millisecond) // polling a real process: nothing to wait on
		}
	}
	if _, err := wait(v1alpha1.PhaseHealthy, 60*time.Second); err != nil {
		return 0, 0, 0, "", err
	}

	// Load: rps requests per second, each a streamed chat.
	ctx, cancel := context.WithCancel(context.Background())
	var mu sync.Mutex
	var hits []hit
	var wg sync.WaitGroup
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 512}, Timeout: 30 * time.Second}
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(time.Second / time.Duration(rps))
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				wg.Add(1)
				go func() {
					defer wg.Done()
					h := hit{at: time.Now()}
					resp, err := client.Get("http://" + listen + "/v1/chat?message=chest+pain")
					if err == nil {
						h.model, h.status = resp.Header.Get("X-Chat-Model"), resp.StatusCode
						sc := bufio.NewScanner(resp.Body)
						for sc.Scan() {
						}
						resp.Body.Close()
					}
					mu.Lock()
					hits = append(hits, h)
					mu.Unlock()
				}()
			}
		}
	}()
	time.Sleep(5 * time.Second) // stable's traffic before the canary: the latency thresholds come from it
	if err := os.WriteFile(file, []byte(spec(listen, chat, "v2", "0.1")), 0o600); err != nil {
		cancel()
		return 0, 0, 0, "", err
	}
	if out, err := exec.Command(ramp, "apply", "-f", file, "--state-dir", state).CombinedOutput(); err != nil {
		cancel()
		return 0, 0, 0, "", fmt.Errorf("apply: %w: %s", err, out)
	}
	ro, err := wait(v1alpha1.PhaseDegraded, 90*time.Second)
	time.Sleep(2 * time.Second) // requests in flight finish; the canary gets no new ones
	cancel()
	wg.Wait()
	if err != nil {
		return 0, 0, 0, "", err
	}
	var first, last time.Time
	for _, h := range hits {
		if h.status != http.StatusOK {
			clientFailed++
		}
		if h.model != "v2" {
			continue
		}
		if h.status != http.StatusOK {
			canaryFailed++
		}
		if first.IsZero() || h.at.Before(first) {
			first = h.at
		}
		if h.at.After(last) {
			last = h.at
		}
	}
	if first.IsZero() {
		return 0, 0, 0, "", errors.New("the canary got no request")
	}
	return last.Sub(first), canaryFailed, clientFailed, ro.Status.Message, nil
}
