// Package local is local mode: it wires the engine to the process supervisor, ramp's proxy,
// the analysis runner and the store, and runs the control loop.
package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/analysis/builtin"
	"ramp.dev/ramp/internal/analysis/command"
	"ramp.dev/ramp/internal/analysis/scrape"
	"ramp.dev/ramp/internal/proxy"
	"ramp.dev/ramp/internal/rampmetrics"
	"ramp.dev/ramp/internal/server"
	"ramp.dev/ramp/internal/spec"
	"ramp.dev/ramp/internal/store"
	"ramp.dev/ramp/internal/supervisor"
)

// DefaultAPIAddr is where the control API listens unless told otherwise.
const DefaultAPIAddr = "127.0.0.1:7070"

// Files in the state directory.
const (
	DBFile    = "ramp.db"
	TokenFile = "token"
	AddrFile  = "api.addr"
)

// Options configure local mode.
type Options struct {
	// StateDir holds the database, the API token and the API address file.
	StateDir string
	// APIAddr is where the control API listens. Empty means DefaultAPIAddr.
	APIAddr string
	// APIAllowedHosts are names (host, or host:port) the control API answers to besides the
	// address it listens on; requests whose Host or Origin names anything else are refused
	// (see server.CheckHost). Empty means none.
	APIAllowedHosts []string
	// Logger receives ramp's logs. Nil means slog.Default().
	Logger *slog.Logger
	// Out receives what `ramp up` prints for the user (apply results). Nil means io.Discard.
	Out io.Writer
	// Tick is the safety tick: the longest time between two decisions of a rollout that
	// nothing wakes (see wakeups). Zero means DefaultTick.
	Tick time.Duration
}

// Run starts local mode and blocks until ctx ends. apply, when not empty, is YAML applied
// once everything is up (ramp up -f); when it is invalid, Run returns its errors.
func Run(ctx context.Context, opts Options, apply []byte) error {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	out := opts.Out
	if out == nil {
		out = io.Discard
	}
	if opts.APIAddr == "" {
		opts.APIAddr = DefaultAPIAddr
	}
	if err := server.ValidateAllowedHosts(opts.APIAllowedHosts); err != nil {
		return fmt.Errorf("control API: %w", err)
	}
	var bundle *spec.Bundle
	if len(apply) > 0 {
		b, err := spec.Load(apply)
		if err != nil {
			return err
		}
		bundle = b
	}
	if err := os.MkdirAll(opts.StateDir, 0o700); err != nil {
		return fmt.Errorf("state directory: %w", err)
	}
	st, err := store.Open(filepath.Join(opts.StateDir, DBFile))
	if err != nil {
		return err
	}
	defer st.Close()
	token, err := loadToken(opts.StateDir)
	if err != nil {
		return err
	}

	registry := prometheus.NewRegistry()
	ps := newProxies(log, registry)
	sup, err := supervisor.New(supervisor.Options{StateDir: opts.StateDir, Logger: log, Drain: ps.drain})
	if err != nil {
		return err
	}
	c := newController(deps{store: st, sup: sup, log: log, registry: registry, proxies: ps, tick: opts.Tick})
	c.registry.MustRegister(instanceCollector{c}, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		rampmetrics.NewCollector(func(context.Context) ([]v1alpha1.Rollout, error) { return st.ListRollouts() }, log))

	ln, err := net.Listen("tcp", opts.APIAddr)
	if err != nil {
		return fmt.Errorf("control API: %w", err)
	}
	mux := http.NewServeMux()
	// /metrics needs no token (it holds no secrets, and scrapers rarely send one) but the
	// same Host and Origin checks as the API.
	mux.Handle("/metrics", server.CheckHost(opts.APIAllowedHosts, log, promhttp.HandlerFor(c.registry, promhttp.HandlerOpts{})))
	mux.Handle("/", server.New(c, token, log, server.WithAllowedHosts(opts.APIAllowedHosts)))
	api := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}

	if err := c.resumeAfterStart(); err != nil {
		_ = ln.Close()
		return fmt.Errorf("resume rollouts: %w", err)
	}
	// Apply before serving, so that the first answer of the API already shows the file.
	if bundle != nil {
		lines, err := c.ApplyBundle(ctx, bundle)
		for _, l := range lines {
			fmt.Fprintln(out, l)
		}
		if err != nil {
			_ = ln.Close()
			_ = sup.Close(context.Background())
			return err
		}
	}
	go func() {
		if err := api.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("control API stopped", "err", err)
		}
	}()
	addr := "http://" + ln.Addr().String()
	if err := os.WriteFile(filepath.Join(opts.StateDir, AddrFile), []byte(addr+"\n"), 0o600); err != nil {
		return fmt.Errorf("write API address: %w", err)
	}
	log.Info("ramp is up", "api", addr, "dashboard", addr+server.DashboardPath, "stateDir", opts.StateDir)
	fmt.Fprintf(out, "dashboard: %s%s (read-only until given the token of %s)\n", addr, server.DashboardPath, filepath.Join(opts.StateDir, TokenFile))

	c.loop(ctx)

	log.Info("ramp is stopping")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	_ = api.Shutdown(shutdownCtx)
	// Stop taking traffic (in-flight requests finish), then stop the instances.
	c.proxies.shutdown()
	return sup.Close(shutdownCtx)
}

// loadToken reads the API token from the state directory, creating it the first time.
func loadToken(dir string) (string, error) {
	path := filepath.Join(dir, TokenFile)
	b, err := os.ReadFile(path)
	if err == nil && len(strings.TrimSpace(string(b))) > 0 {
		return strings.TrimSpace(string(b)), nil
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("read token: %w", err)
	}
	tok, err := server.NewToken()
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(path, []byte(tok+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("write token: %w", err)
	}
	return tok, nil
}

// source feeds the builtin analysis provider from the proxy and the supervisor. Its methods
// run in measurement goroutines, without c.mu.
type source struct{ c *Controller }

func (s source) Requests(rollout string, revision int64, since time.Time) builtin.RequestStats {
	p := s.c.proxies.of(rollout)
	if p == nil {
		return builtin.RequestStats{}
	}
	return requestStats(p.Stats(revision, since))
}

func requestStats(st proxy.RequestStats) builtin.RequestStats {
	return builtin.RequestStats{
		Requests: st.Requests, Errors: st.Errors,
		Latency: st.Latency.Quantile, TTFB: st.TTFB.Quantile, FirstToken: st.FirstToken.Quantile, Duration: st.Window,
	}
}

func (s source) Instances(rollout string, revision int64) builtin.InstanceStats {
	var out builtin.InstanceStats
	now := s.c.clock.Now()
	for _, in := range s.c.sup.Instances(rollout)[revision] {
		// An exit counts at once, not after the restart's backoff.
		out.Restarts += int64(max(in.Exits, in.Restarts))
		out.ReadinessFailures += in.ReadinessFailures
		out.CPUSeconds += in.CPUSeconds
		if age := now.Sub(in.StartedAt).Seconds(); age > 0 {
			out.CPURate += in.CPUSeconds / age
		}
		out.MemoryBytes += in.MemoryBytes
	}
	return out
}

// addresses tells the scrape and command providers where a rollout's instances and
// listeners are. Its methods run in measurement goroutines, without c.mu.
type addresses struct{ c *Controller }

var (
	_ scrape.Source  = addresses{}
	_ command.Source = addresses{}
)

// Instances returns the addresses of the revision's ready instances that are not stopping.
func (a addresses) Instances(rollout string, revision int64) []string {
	var out []string
	for _, in := range a.c.sup.Instances(rollout)[revision] {
		if in.Ready && !in.Terminating && in.Addr != "" {
			out = append(out, in.Addr)
		}
	}
	return out
}

// Addresses returns where the rollout's traffic and its blue-green preview arrive.
func (a addresses) Addresses(rollout string) (listen, preview string) {
	r, err := a.c.store.GetRollout(rollout)
	if err != nil {
		return "", ""
	}
	if bg := r.Spec.Strategy.BlueGreen; bg != nil {
		preview = bg.PreviewListen
	}
	return r.Spec.Listen, preview
}
