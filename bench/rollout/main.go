// Command rollout benchmarks whole local rollouts under constant load: the real ramp binary
// (`ramp up`) runs the sample service examples/chat-api (2 tokens, 1 ms apart), and an
// open-loop generator sends GET /v1/chat at a constant rate through ramp's proxy while
//
//  1. a canary rollout goes 5 → 25 → 50 → 100% (2 s pauses) and its old instances are
//     drained and stopped with SIGTERM;
//  2. a blue-green rollout starts a preview, switches traffic to it (auto-promotion after
//     2 s), and drains and stops the old active instances.
//
// It counts failed requests (any transport error, cut body or non-2xx answer: must be 0) and
// compares p99 latency (from each request's intended send time) during the transitions with
// steady state (target ≤ 1.5×).
//
//	go run ./bench/rollout -rate 2000
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/bench/internal/openloop"
	"ramp.dev/ramp/internal/server"
)

var (
	rate    = flag.Float64("rate", 2000, "requests per second")
	steady  = flag.Duration("steady", 6*time.Second, "steady load before and after each transition")
	apiAddr = flag.String("api-addr", "127.0.0.1:17070", "ramp's control API address")
)

// rolloutYAML is one rollout of the bench over chat-api: the command (%[1]s), the name,
// the listen address, the model and the strategy's lines.
const rolloutYAML = `apiVersion: ramp.dev/v1alpha1
kind: Rollout
metadata: {name: %[2]s}
spec:
  replicas: 2
  listen: %[3]s
  progressDeadlineSeconds: 60
  template:
    process:
      command: %[1]s
      env:
      - {name: CHAT_MODEL, value: %[4]s}
      - {name: CHAT_TOKENS, value: "2"}
      - {name: CHAT_TOKEN_DELAY, value: 1ms}
      - {name: CHAT_SHUTDOWN_TIMEOUT, value: 30s}
      readinessProbe: {httpGet: {path: /healthz}, periodSeconds: 1}
      terminationGracePeriodSeconds: 30
  strategy:
%[5]s`

// spec is the bench's two rollouts: a canary and a blue-green, with their models.
func spec(command, canary, bg string) string {
	return fmt.Sprintf(rolloutYAML, command, "chat-canary", "127.0.0.1:18181", canary, `    canary:
      steps:
      - setWeight: 5
      - pause: {duration: 2s}
      - setWeight: 25
      - pause: {duration: 2s}
      - setWeight: 50
      - pause: {duration: 2s}
      - setWeight: 100
`) + "---\n" + fmt.Sprintf(rolloutYAML, command, "chat-bg", "127.0.0.1:18182", bg, `    blueGreen:
      previewListen: 127.0.0.1:18183
      autoPromotionEnabled: true
      autoPromotionSeconds: 2
      scaleDownDelaySeconds: 2
`)
}

type phase struct {
	name                 string
	url                  string
	model                [2]string // canary, blue-green models to apply
	rollout              string
	from, to             time.Duration // transition window, from the load's start
	samples              []openloop.Sample
	steadyP99, transP99  time.Duration
	failed, n, transDone int
}

func main() {
	flag.Parse()
	log.SetFlags(0)
	dir, err := os.MkdirTemp("", "ramp-bench-rollout-")
	check(err)
	defer os.RemoveAll(dir)
	bin := func(n string) string { return filepath.Join(dir, n) }
	for _, b := range [][2]string{{"ramp", "./cmd/ramp"}, {"chat-api", "./examples/chat-api"}} {
		if out, err := exec.Command("go", "build", "-o", bin(b[0]), b[1]).CombinedOutput(); err != nil {
			log.Fatalf("go build %s: %v\n%s", b[1], err, out)
		}
	}
	write := func(canary, bg string) string {
		f := filepath.Join(dir, "spec-"+canary+"-"+bg+".yaml")
		check(os.WriteFile(f, []byte(spec(bin("chat-api"), canary, bg)), 0o644))
		return f
	}
	state := filepath.Join(dir, "state")
	up := exec.Command(bin("ramp"), "--state-dir", state, "up", "--api-addr", *apiAddr, "-f", write("v1", "v1"))
	logf, err := os.Create(filepath.Join(dir, "ramp.log"))
	check(err)
	up.Stdout, up.Stderr = logf, logf
	check(up.Start())
	stop := func() {
		up.Process.Signal(syscall.SIGTERM)
		up.Wait()
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() { <-sig; stop(); os.Exit(1) }()
	defer stop()

	// The bench watches ramp through its API in-process: a `ramp get` process every 100 ms
	// would cost CPU during the transitions only and so weigh on the very p99 it compares.
	var api *server.Client
	settled := func(name string, rev int64) func() bool {
		return func() bool {
			if api == nil {
				token, err := os.ReadFile(filepath.Join(state, "token"))
				if err != nil {
					return false
				}
				api = &server.Client{BaseURL: "http://" + *apiAddr, Token: strings.TrimSpace(string(token))}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			r, err := api.Get(ctx, name)
			if err != nil {
				return false
			}
			s := r.Status
			if s.Phase != v1alpha1.PhaseHealthy || max(s.StableRevision, s.ActiveRevision) != rev {
				return false
			}
			for _, rv := range s.Revisions { // the old revision's instances are gone
				if rv.Revision != rev && (rv.Desired > 0 || rv.Ready > 0) {
					return false
				}
			}
			return true
		}
	}
	waitFor("both rollouts healthy at revision 1", 60*time.Second, func() bool {
		return settled("chat-canary", 1)() && settled("chat-bg", 1)()
	})

	phases := []*phase{
		{name: "canary 5→25→50→100%, drain", url: "http://127.0.0.1:18181/v1/chat?message=fever", model: [2]string{"v2", "v1"}, rollout: "chat-canary"},
		{name: "blue-green switch, drain", url: "http://127.0.0.1:18182/v1/chat?message=fever", model: [2]string{"v2", "v2"}, rollout: "chat-bg"},
	}
	for _, ph := range phases {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		started := make(chan time.Time, 1)
		go func() {
			defer close(done)
			// Long enough for the transition; cancelled once the tail of steady load is in.
			ph.samples, _ = openloop.Run(ctx, openloop.Config{URL: ph.url, Rate: *rate, Duration: 5 * time.Minute}, func(t time.Time) { started <- t })
		}()
		t0 := <-started
		time.Sleep(*steady) // steady load before the change, by design of the benchmark
		ph.from = time.Since(t0)
		doc, err := os.ReadFile(write(ph.model[0], ph.model[1]))
		check(err)
		actx, acancel := context.WithTimeout(context.Background(), 30*time.Second)
		if _, err := api.Apply(actx, doc); err != nil {
			log.Fatalf("apply through the API: %v", err)
		}
		acancel()
		waitFor(ph.rollout+" at revision 2 with the old instances stopped", 2*time.Minute, settled(ph.rollout, 2))
		ph.to = time.Since(t0)
		time.Sleep(*steady) // steady load after
		cancel()
		<-done
		summarize(ph)
	}
	fmt.Printf("\nrollout benchmark at %.0f rps (open loop; latency from intended send time)\n\n", *rate)
	fmt.Println("| transition | requests | failed | steady p99 | transition p99 | ratio | transition length |")
	fmt.Println("|---|---:|---:|---:|---:|---:|---:|")
	for _, ph := range phases {
		fmt.Printf("| %s | %d | %d | %s | %s | %.2f | %s |\n", ph.name, ph.n, ph.failed,
			ph.steadyP99.Round(10*time.Microsecond), ph.transP99.Round(10*time.Microsecond),
			float64(ph.transP99)/float64(max(ph.steadyP99, 1)), (ph.to - ph.from).Round(100*time.Millisecond))
	}
}

// summarize splits a phase's samples into steady state and transition by intended send
// time. The first second is left out of steady state (connections being opened).
func summarize(ph *phase) {
	var st, tr []time.Duration
	errs := map[string]int{}
	for _, s := range ph.samples {
		ph.n++
		if s.Failed() {
			ph.failed++
			k := fmt.Sprint(s.Status)
			if s.Err != nil {
				k = s.Err.Error()
			}
			errs[k]++
		}
		switch {
		case s.Intended >= ph.from && s.Intended <= ph.to:
			tr = append(tr, s.Latency)
		case s.Intended >= time.Second:
			st = append(st, s.Latency)
		}
	}
	slices.Sort(st)
	slices.Sort(tr)
	ph.steadyP99, ph.transP99 = openloop.Quantile(st, 0.99), openloop.Quantile(tr, 0.99)
	for k, v := range errs {
		log.Printf("%s: %d × %s", ph.name, v, strings.TrimSpace(k))
	}
}

func waitFor(what string, within time.Duration, cond func() bool) {
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			log.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(100 * time.Millisecond) // polling ramp's API through the CLI
	}
}

func check(err error) {
	if err != nil {
		log.Fatal(err)
	}
}
