// Command chat-api is a small stand-in for an LLM-backed medical triage chat service, in the
// shape of CarePath AI's chat-api. ramp rolls it out in demos and end-to-end tests: every
// way a new model can be worse than the old one — more 5xx, slower first tokens, fewer
// successful triage answers, requests that hang, a memory leak, a process that never gets
// ready or crashes — can be switched on
// with a flag or an environment variable, so a rollout can be shown to succeed or to roll
// back by itself. There is no real model: the answer is a deterministic triage text built
// from the message.
//
// # Endpoints
//
//   - POST /v1/chat with a JSON body {"message": "..."} streams the answer as server-sent
//     events (Content-Type: text/event-stream): one event per token, data: {"token": "..."},
//     flushed one by one; then data: {"done": true, "triage": "success"|"failed",
//     "model": "<model>"}; then data: [DONE]. A body that is not such JSON, or an empty
//     message, gets 400 with a JSON {"error": "..."}.
//   - GET /v1/chat?message=... does the same; handy for curl and load generators.
//   - GET / answers {"model": "...", "version": "..."}.
//   - GET /healthz answers 200 "ok", or 503 while the model is "loading"
//     (--startup-delay) or when readiness is made to fail (--fail-readiness).
//   - GET /metrics serves Prometheus metrics: chat_requests_total{code},
//     chat_triage_total{outcome="success"|"failed"} (the business metric: successful triage
//     answers), chat_requests_in_flight, chat_leaked_bytes_total (what --leak kept), and the
//     histograms chat_first_token_seconds and chat_request_duration_seconds, plus the Go and
//     process collectors (process_resident_memory_bytes shows a leak).
//
// Every response carries the header X-Chat-Model: <model>.
//
// # Switches
//
// Each flag has an environment variable of the same meaning; a flag given on the command
// line wins over the variable. Durations use Go syntax (250ms, 2s, 1m). Sizes are bytes,
// optionally with a unit: B, KiB, MiB, GiB (powers of 1024) or KB, MB, GB (powers of 1000).
//
// A request chosen by --hang-rate is accepted and then never answered, not even with headers:
// it waits until the client goes away (or the process shuts down, which cuts its
// connection); /healthz stays fine. --leak keeps that many bytes for each chat answer
// started, written to so that they count in the process's resident memory, and never frees
// them.
//
//	--port               PORT                    port on 127.0.0.1 (default 8000; 0 picks a free port)
//	--model              CHAT_MODEL              model name reported everywhere (default triage-v1)
//	--version            CHAT_VERSION            version reported by GET / (default dev)
//	--tokens             CHAT_TOKENS             tokens per answer (default 8)
//	--token-delay        CHAT_TOKEN_DELAY        delay before each token (default 20ms)
//	--first-token-delay  CHAT_FIRST_TOKEN_DELAY  extra delay before the first token only
//	--latency            CHAT_LATENCY            extra delay before the response starts
//	--error-rate         CHAT_ERROR_RATE         share (0..1) of chat requests answered 500
//	--triage-fail-rate   CHAT_TRIAGE_FAIL_RATE   share (0..1) of answers with triage "failed"
//	--hang-rate          CHAT_HANG_RATE          share (0..1) of chat requests never answered
//	--leak               CHAT_LEAK               bytes kept for good per chat answer (256KiB, 1MiB)
//	--seed               CHAT_SEED               seed of the random choices (0: random)
//	--fail-readiness     CHAT_FAIL_READINESS     /healthz always answers 503
//	--startup-delay      CHAT_STARTUP_DELAY      /healthz and chat answer 503 this long after start
//	--crash-after        CHAT_CRASH_AFTER        exit with status 3 this long after start (0: never)
//	--shutdown-timeout   CHAT_SHUTDOWN_TIMEOUT   how long SIGTERM waits for requests (default 30s)
//
// # Exit status
//
// 0 after SIGTERM or SIGINT, once in-flight requests have finished (or the shutdown timeout
// has passed); 1 when the port cannot be listened on; 2 for a bad flag or environment value
// (the message names the flag or variable and the value); 3 when --crash-after fires.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Exit statuses of the process.
const (
	exitOK    = 0
	exitServe = 1 // the port cannot be listened on, or serving failed
	exitUsage = 2 // a bad flag or environment value
	exitCrash = 3 // --crash-after fired
)

const (
	defaultModel  = "triage-v1"
	modelHeader   = "X-Chat-Model"
	maxBodyBytes  = 1 << 20
	clientGone    = 499 // status recorded when the client left before anything was written
	triageSuccess = "success"
	triageFailed  = "failed"
)

// version is what GET / reports unless --version or CHAT_VERSION says otherwise; release
// builds may set it with -ldflags "-X main.version=v1.2.3".
var version = "dev"

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.LookupEnv, os.Stdout, os.Stderr))
}

// run is the whole program: it parses the switches, serves until ctx ends or a signal comes,
// and returns the exit status.
func run(ctx context.Context, args []string, lookupEnv func(string) (string, bool), stdout, stderr io.Writer) int {
	cfg, err := parseConfig(args, lookupEnv)
	if errors.Is(err, flag.ErrHelp) {
		printUsage(stdout)
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "chat-api: %s\nRun 'chat-api --help' for the flags.\n", err)
		return exitUsage
	}

	log := slog.New(slog.NewTextHandler(stderr, nil))
	started := time.Now()
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(cfg.port)))
	if err != nil {
		log.Error("listen", "err", err)
		return exitServe
	}
	chat := newServer(cfg, started, log)
	srv := &http.Server{
		Handler:           chat.routes(),
		ReadHeaderTimeout: 10 * time.Second,
	}
	srv.RegisterOnShutdown(chat.stop)
	log.Info("listening", "addr", ln.Addr().String(), "model", cfg.model, "version", cfg.version)

	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, os.Interrupt)
	defer stop()
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()

	var crash <-chan time.Time
	if cfg.crashAfter > 0 {
		t := time.NewTimer(cfg.crashAfter - time.Since(started))
		defer t.Stop()
		crash = t.C
	}

	select {
	case err := <-serveErr:
		log.Error("serve", "err", err)
		return exitServe
	case <-crash:
		log.Error("crashing as asked", "crash_after", cfg.crashAfter)
		return exitCrash
	case <-ctx.Done():
	}
	stop() // a second signal now ends the process at once

	log.Info("shutting down: finishing in-flight requests", "timeout", cfg.shutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), cfg.shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn("shutdown timeout passed; closing the remaining connections", "err", err)
		srv.Close()
	}
	log.Info("stopped")
	return exitOK
}

// config holds the switches. The zero value of a delay or a rate means "none".
type config struct {
	port    int    // 0 picks a free port
	model   string // never empty after parsing
	version string // never empty after parsing

	tokens          int           // tokens per answer, at least 1
	tokenDelay      time.Duration // before each token
	firstTokenDelay time.Duration // added before the first token, after the headers are sent
	latency         time.Duration // before anything is written

	errorRate      float64 // share of chat requests answered 500
	triageFailRate float64 // share of answered chat requests whose triage failed
	hangRate       float64 // share of chat requests never answered
	leak           int64   // bytes kept for good per chat answer
	seed           int64   // 0 seeds the random choices from the clock

	failReadiness   bool          // /healthz always answers 503
	startupDelay    time.Duration // /healthz and chat answer 503 until this long after start
	crashAfter      time.Duration // exit with status 3 this long after start; 0 is never
	shutdownTimeout time.Duration // how long a signal waits for in-flight requests
}

func defaultConfig() config {
	return config{
		port:            8000,
		model:           defaultModel,
		version:         version,
		tokens:          8,
		tokenDelay:      20 * time.Millisecond,
		shutdownTimeout: 30 * time.Second,
	}
}

// setting ties a flag to the environment variable of the same meaning.
type setting struct {
	flag, env, typ, usage string
}

// flagSet defines the switches on c and returns them in the order --help lists them.
func flagSet(c *config) (*flag.FlagSet, []setting) {
	fs := flag.NewFlagSet("chat-api", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // run reports errors and prints the usage itself
	var settings []setting
	// typ names the kind of value in --help; empty for a boolean flag.
	add := func(v flag.Value, name, typ, env, usage string) {
		fs.Var(v, name, usage)
		settings = append(settings, setting{flag: name, env: env, typ: typ, usage: usage})
	}
	add(&intValue{p: &c.port, min: 0, max: 65535}, "port", "int", "PORT", "TCP port to listen on at 127.0.0.1; 0 picks a free port")
	add(&textValue{&c.model}, "model", "string", "CHAT_MODEL", "model name, sent in the X-Chat-Model header, the done event and GET /")
	add(&textValue{&c.version}, "version", "string", "CHAT_VERSION", "version reported by GET /")
	add(&intValue{p: &c.tokens, min: 1, max: math.MaxInt32}, "tokens", "int", "CHAT_TOKENS", "tokens streamed per answer")
	add(&durationValue{&c.tokenDelay}, "token-delay", "duration", "CHAT_TOKEN_DELAY", "delay before each token")
	add(&durationValue{&c.firstTokenDelay}, "first-token-delay", "duration", "CHAT_FIRST_TOKEN_DELAY", "extra delay before the first token only (slow time to first token)")
	add(&durationValue{&c.latency}, "latency", "duration", "CHAT_LATENCY", "extra delay before the response starts (overall slowness)")
	add(&fractionValue{&c.errorRate}, "error-rate", "0..1", "CHAT_ERROR_RATE", "share (0..1) of chat requests answered 500, chosen at random")
	add(&fractionValue{&c.triageFailRate}, "triage-fail-rate", "0..1", "CHAT_TRIAGE_FAIL_RATE", `share (0..1) of chat answers that are 200 but with triage "failed"`)
	add(&fractionValue{&c.hangRate}, "hang-rate", "0..1", "CHAT_HANG_RATE", "share (0..1) of chat requests accepted and never answered, until the client goes away")
	add(&sizeValue{&c.leak}, "leak", "size", "CHAT_LEAK", "bytes kept for good per chat answer, like 256KiB or 1MiB (a memory leak)")
	add(&int64Value{&c.seed}, "seed", "int", "CHAT_SEED", "seed of the random choices, for repeatable runs; 0 seeds from the clock")
	add(&boolValue{&c.failReadiness}, "fail-readiness", "", "CHAT_FAIL_READINESS", "/healthz always answers 503")
	add(&durationValue{&c.startupDelay}, "startup-delay", "duration", "CHAT_STARTUP_DELAY", "/healthz and chat answer 503 this long after start (model loading)")
	add(&durationValue{&c.crashAfter}, "crash-after", "duration", "CHAT_CRASH_AFTER", "exit with status 3 this long after start; 0 is never")
	add(&durationValue{&c.shutdownTimeout}, "shutdown-timeout", "duration", "CHAT_SHUTDOWN_TIMEOUT", "how long SIGTERM/SIGINT waits for in-flight requests")
	return fs, settings
}

// parseConfig reads the switches from args, then from the environment for every flag not
// given in args. It returns flag.ErrHelp when help was asked for.
func parseConfig(args []string, lookupEnv func(string) (string, bool)) (config, error) {
	cfg := defaultConfig()
	fs, settings := flagSet(&cfg)
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	for _, s := range settings {
		v, ok := lookupEnv(s.env)
		if given[s.flag] || !ok || v == "" {
			continue
		}
		if err := fs.Set(s.flag, v); err != nil {
			return config{}, fmt.Errorf("invalid value %q for %s (--%s): %w", v, s.env, s.flag, err)
		}
	}
	return cfg, nil
}

func printUsage(w io.Writer) {
	cfg := defaultConfig()
	fs, settings := flagSet(&cfg)
	fmt.Fprint(w, `chat-api: a fake LLM-backed medical triage chat API, for rollout demos and tests.

Usage: chat-api [flags]

Endpoints:
  POST /v1/chat {"message": "..."}   stream the answer as server-sent events
  GET  /v1/chat?message=...          the same, for curl and load generators
  GET  /                             {"model": ..., "version": ...}
  GET  /healthz                      200 ok, or 503 while not ready
  GET  /metrics                      Prometheus metrics

Every flag can also be set with the environment variable next to it; the flag wins.
Durations are written like 250ms, 2s, 1m; sizes like 4096, 256KiB, 1MiB or 1MB.

`)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  Flag\tVariable\tMeaning")
	for _, s := range settings {
		f := fs.Lookup(s.flag)
		usage := s.usage
		if f.DefValue != "" && f.DefValue != "0" && f.DefValue != "0s" && f.DefValue != "false" {
			usage += " (default " + f.DefValue + ")"
		}
		fmt.Fprintf(tw, "  --%s %s\t%s\t%s\n", s.flag, s.typ, s.env, usage)
	}
	tw.Flush()
	fmt.Fprint(w, `
Exit status: 0 after SIGTERM/SIGINT once in-flight requests finished; 1 when the port cannot
be listened on; 2 for a bad flag or variable; 3 when --crash-after fires.
`)
}

// The flag.Value types below check their range in Set, so a flag and its environment
// variable are validated by the same code.

type intValue struct {
	p        *int
	min, max int
}

func (v *intValue) String() string {
	if v == nil || v.p == nil {
		return "0"
	}
	return strconv.Itoa(*v.p)
}

func (v *intValue) Set(s string) error {
	n, err := strconv.Atoi(s)
	if err != nil {
		return errors.New("not a whole number")
	}
	if n < v.min || n > v.max {
		return fmt.Errorf("must be between %d and %d", v.min, v.max)
	}
	*v.p = n
	return nil
}

type int64Value struct{ p *int64 }

func (v *int64Value) String() string {
	if v == nil || v.p == nil {
		return "0"
	}
	return strconv.FormatInt(*v.p, 10)
}

func (v *int64Value) Set(s string) error {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return errors.New("not a 64-bit whole number")
	}
	*v.p = n
	return nil
}

type textValue struct{ p *string }

func (v *textValue) String() string {
	if v == nil || v.p == nil {
		return ""
	}
	return *v.p
}

func (v *textValue) Set(s string) error {
	if strings.TrimSpace(s) == "" {
		return errors.New("must not be empty")
	}
	*v.p = s
	return nil
}

type durationValue struct{ p *time.Duration }

func (v *durationValue) String() string {
	if v == nil || v.p == nil {
		return "0s"
	}
	return v.p.String()
}

func (v *durationValue) Set(s string) error {
	d, err := time.ParseDuration(s)
	if err != nil {
		return errors.New("not a duration (write it like 250ms, 2s or 1m)")
	}
	if d < 0 {
		return errors.New("must not be negative")
	}
	*v.p = d
	return nil
}

type fractionValue struct{ p *float64 }

func (v *fractionValue) String() string {
	if v == nil || v.p == nil {
		return "0"
	}
	return strconv.FormatFloat(*v.p, 'g', -1, 64)
}

func (v *fractionValue) Set(s string) error {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return errors.New("not a number")
	}
	if math.IsNaN(f) || f < 0 || f > 1 {
		return errors.New("must be between 0 and 1")
	}
	*v.p = f
	return nil
}

// maxLeak bounds --leak: one answer never takes more than this.
const maxLeak = 1 << 30

// sizeValue is a number of bytes: digits, optionally followed by a unit.
type sizeValue struct{ p *int64 }

func (v *sizeValue) String() string {
	if v == nil || v.p == nil {
		return "0"
	}
	return strconv.FormatInt(*v.p, 10)
}

var sizeUnits = []struct {
	name string
	mult int64
}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"B", 1}}

func (v *sizeValue) Set(s string) error {
	const shape = "not a size (write it like 4096, 256KiB, 1MiB or 1MB)"
	num, mult := strings.TrimSpace(s), int64(1)
	for _, u := range sizeUnits {
		if len(num) > len(u.name) && strings.EqualFold(num[len(num)-len(u.name):], u.name) {
			num, mult = strings.TrimSpace(num[:len(num)-len(u.name)]), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil {
		return errors.New(shape)
	}
	if n < 0 {
		return errors.New("must not be negative")
	}
	if n > maxLeak/mult {
		return fmt.Errorf("must be at most %d bytes (1GiB)", maxLeak)
	}
	*v.p = n * mult
	return nil
}

type boolValue struct{ p *bool }

func (v *boolValue) String() string {
	if v == nil || v.p == nil {
		return "false"
	}
	return strconv.FormatBool(*v.p)
}

func (v *boolValue) Set(s string) error {
	b, err := strconv.ParseBool(s)
	if err != nil {
		return errors.New("not a boolean (true, false, 1 or 0)")
	}
	*v.p = b
	return nil
}

func (v *boolValue) IsBoolFlag() bool { return true }

// server answers the HTTP API of one chat-api process.
type server struct {
	cfg     config
	log     *slog.Logger
	reg     *prometheus.Registry
	metrics *metrics
	started time.Time

	// now and sleep are the clock; tests replace them. sleep returns ctx's error when ctx
	// ends first.
	now   func() time.Time
	sleep func(ctx context.Context, d time.Duration) error

	mu      sync.Mutex // guards rnd, hangRnd and leaked
	rnd     *rand.Rand
	hangRnd *rand.Rand // its own stream, so that --hang-rate leaves rnd's choices as they were
	leaked  [][]byte   // what --leak keeps

	// stopping is closed when the server shuts down: hung requests then end.
	stopping chan struct{}
	stopOnce sync.Once
}

func newServer(cfg config, started time.Time, log *slog.Logger) *server {
	seed := uint64(cfg.seed)
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return &server{
		cfg:      cfg,
		log:      log,
		reg:      reg,
		metrics:  newMetrics(reg),
		started:  started,
		now:      time.Now,
		sleep:    sleepCtx,
		rnd:      rand.New(rand.NewPCG(seed, seed>>1^0x9e3779b97f4a7c15)),
		hangRnd:  rand.New(rand.NewPCG(seed^0x5851f42d4c957f2d, seed)),
		stopping: make(chan struct{}),
	}
}

// stop ends the requests that hang on purpose; the server calls it when it shuts down.
func (s *server) stop() { s.stopOnce.Do(func() { close(s.stopping) }) }

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", s.handleInfo)
	mux.HandleFunc("GET /healthz", s.handleHealthz)
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /v1/chat", s.handleChat)
	mux.HandleFunc("POST /v1/chat", s.handleChat)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(modelHeader, s.cfg.model)
		mux.ServeHTTP(w, r)
	})
}

func (s *server) handleInfo(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"model": s.cfg.model, "version": s.cfg.version})
}

func (s *server) handleHealthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	switch {
	case s.cfg.failReadiness:
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, "not ready: readiness fails on purpose (--fail-readiness)")
	case s.loading():
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, "not ready: model loading (--startup-delay)")
	default:
		fmt.Fprintln(w, "ok")
	}
}

// loading reports whether the startup delay is still running.
func (s *server) loading() bool {
	return s.now().Sub(s.started) < s.cfg.startupDelay
}

func (s *server) handleChat(w http.ResponseWriter, r *http.Request) {
	start := s.now()
	s.metrics.inFlight.Inc()
	defer s.metrics.inFlight.Dec()
	code := s.chat(w, r, start)
	s.metrics.requests.WithLabelValues(strconv.Itoa(code)).Inc()
	s.metrics.duration.Observe(s.now().Sub(start).Seconds())
}

// chat answers one chat request and returns the status it sent.
func (s *server) chat(w http.ResponseWriter, r *http.Request, start time.Time) int {
	msg, err := chatMessage(w, r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return http.StatusBadRequest
	}
	if s.loading() {
		writeError(w, http.StatusServiceUnavailable, "model is still loading")
		return http.StatusServiceUnavailable
	}
	ctx := r.Context()
	if err := s.sleep(ctx, s.cfg.latency); err != nil {
		return clientGone
	}
	if s.hang() {
		select {
		case <-ctx.Done():
			return clientGone
		case <-s.stopping:
			// Shutting down: cut the connection rather than answer.
			panic(http.ErrAbortHandler)
		}
	}
	fail, triageFail := s.draw()
	if fail {
		writeError(w, http.StatusInternalServerError, "model backend error (injected by --error-rate)")
		return http.StatusInternalServerError
	}

	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	s.leakOne()
	rc := http.NewResponseController(w)
	if err := rc.Flush(); err != nil {
		s.log.Warn("response cannot be flushed; tokens will not stream", "err", err)
	}
	for i, tok := range answerTokens(msg, s.cfg.tokens, triageFail) {
		d := s.cfg.tokenDelay
		if i == 0 {
			d += s.cfg.firstTokenDelay
		}
		if err := s.sleep(ctx, d); err != nil {
			return http.StatusOK
		}
		if err := writeEvent(w, rc, tokenEvent{Token: tok}); err != nil {
			return http.StatusOK
		}
		if i == 0 {
			s.metrics.firstToken.Observe(s.now().Sub(start).Seconds())
		}
	}
	outcome := triageSuccess
	if triageFail {
		outcome = triageFailed
	}
	if err := writeEvent(w, rc, doneEvent{Done: true, Triage: outcome, Model: s.cfg.model}); err != nil {
		return http.StatusOK
	}
	s.metrics.triage.WithLabelValues(outcome).Inc()
	_ = writeData(w, rc, "[DONE]") // the answer is complete; a lost terminator changes nothing
	return http.StatusOK
}

// draw makes the random choices of one request: whether it fails with a 500 and whether its
// triage fails. Both numbers are drawn every time so a seed gives the same sequence whatever
// the rates.
func (s *server) draw() (fail, triageFail bool) {
	s.mu.Lock()
	a, b := s.rnd.Float64(), s.rnd.Float64()
	s.mu.Unlock()
	return a < s.cfg.errorRate, b < s.cfg.triageFailRate
}

// hang draws whether a chat request hangs, from its own random stream.
func (s *server) hang() bool {
	if s.cfg.hangRate <= 0 {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hangRnd.Float64() < s.cfg.hangRate
}

// leakOne keeps --leak bytes for good, writing a byte of every page so that the memory is
// really resident and not just reserved.
func (s *server) leakOne() {
	if s.cfg.leak <= 0 {
		return
	}
	b := make([]byte, s.cfg.leak)
	for i := 0; i < len(b); i += 4096 {
		b[i] = 1
	}
	b[len(b)-1] = 1
	s.mu.Lock()
	s.leaked = append(s.leaked, b)
	s.mu.Unlock()
	s.metrics.leaked.Add(float64(len(b)))
}

type chatRequest struct {
	Message string `json:"message"`
}

type tokenEvent struct {
	Token string `json:"token"`
}

type doneEvent struct {
	Done   bool   `json:"done"`
	Triage string `json:"triage"`
	Model  string `json:"model"`
}

// chatMessage reads the message from the JSON body of a POST or the query of a GET.
func chatMessage(w http.ResponseWriter, r *http.Request) (string, error) {
	const shape = `send JSON like {"message": "I have a headache"}`
	var msg string
	if r.Method == http.MethodPost {
		var req chatRequest
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBodyBytes))
		if err := dec.Decode(&req); err != nil {
			return "", fmt.Errorf("invalid JSON body: %s; %s", err, shape)
		}
		if dec.More() {
			return "", fmt.Errorf("invalid JSON body: more than one value; %s", shape)
		}
		msg = req.Message
	} else {
		msg = r.URL.Query().Get("message")
	}
	if strings.TrimSpace(msg) == "" {
		if r.Method == http.MethodPost {
			return "", errors.New(`"message" is missing or empty; ` + shape)
		}
		return "", errors.New(`query parameter "message" is missing or empty`)
	}
	return msg, nil
}

// triageLevel is one possible answer of the fake model.
type triageLevel struct {
	keywords []string // a message containing one of them gets this level
	answer   string
}

var levels = []triageLevel{
	{nil, "Self-care: rest, drink fluids and watch how it develops over the next days."},
	{nil, "See a doctor within 48 hours: book a routine appointment with your GP."},
	{[]string{"fever", "vomit", "rash", "swollen", "burn"}, "Urgent care today: visit an urgent care clinic within a few hours."},
	{[]string{"chest pain", "breath", "unconscious", "bleeding", "stroke", "seizure"}, "Emergency: call emergency services now and do not drive yourself."},
}

const (
	disclaimer   = "This is not a diagnosis; seek care if your symptoms get worse."
	failedAnswer = "Sorry, I could not triage this. Please describe your symptoms again or call your doctor."
)

// answerTokens is the fake model: n tokens of a triage answer that depends only on the
// message (keywords first, then a hash of the text), cycling the text when n is longer.
func answerTokens(msg string, n int, failed bool) []string {
	text := failedAnswer
	if !failed {
		text = triageFor(msg) + " " + disclaimer
	}
	words := strings.Fields(text)
	tokens := make([]string, n)
	for i := range tokens {
		tokens[i] = words[i%len(words)]
		if i > 0 {
			tokens[i] = " " + tokens[i]
		}
	}
	return tokens
}

func triageFor(msg string) string {
	lower := strings.ToLower(msg)
	for i := len(levels) - 1; i >= 0; i-- {
		for _, k := range levels[i].keywords {
			if strings.Contains(lower, k) {
				return levels[i].answer
			}
		}
	}
	h := fnv.New32a()
	h.Write([]byte(lower))
	return levels[h.Sum32()%2].answer
}

func writeEvent(w io.Writer, rc *http.ResponseController, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode event: %w", err)
	}
	return writeData(w, rc, string(b))
}

func writeData(w io.Writer, rc *http.ResponseController, data string) error {
	if _, err := fmt.Fprintf(w, "data: %s\n\n", data); err != nil {
		return fmt.Errorf("write event: %w", err)
	}
	if err := rc.Flush(); err != nil {
		return fmt.Errorf("flush event: %w", err)
	}
	return nil
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v) // the status is sent; nothing useful to do on error
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}

// metrics are the Prometheus series of the chat API.
type metrics struct {
	requests   *prometheus.CounterVec // chat requests by status code
	triage     *prometheus.CounterVec // completed answers by triage outcome
	firstToken prometheus.Histogram   // request start to first token flushed
	duration   prometheus.Histogram   // whole chat request
	leaked     prometheus.Counter     // bytes kept by --leak
	inFlight   prometheus.Gauge       // chat requests being answered (or hanging)
}

func newMetrics(reg prometheus.Registerer) *metrics {
	buckets := []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chat_requests_total",
			Help: "Chat requests (/v1/chat) by HTTP status code; 499 means the client left before an answer.",
		}, []string{"code"}),
		triage: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chat_triage_total",
			Help: "Chat answers streamed to the end, by triage outcome (success or failed).",
		}, []string{"outcome"}),
		firstToken: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "chat_first_token_seconds",
			Help:    "Time from the start of a chat request to its first token.",
			Buckets: buckets,
		}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "chat_request_duration_seconds",
			Help:    "Duration of chat requests, to the end of the stream.",
			Buckets: buckets,
		}),
	}
	m.leaked = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "chat_leaked_bytes_total",
		Help: "Bytes kept for good by the memory leak switched on with --leak.",
	})
	m.inFlight = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "chat_requests_in_flight",
		Help: "Chat requests accepted and not yet finished, hung ones included.",
	})
	reg.MustRegister(m.requests, m.triage, m.firstToken, m.duration, m.leaked, m.inFlight)
	// Both outcomes exist from the start, so a ratio over them is defined before a failure.
	m.triage.WithLabelValues(triageSuccess)
	m.triage.WithLabelValues(triageFailed)
	return m
}
