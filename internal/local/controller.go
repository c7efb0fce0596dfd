package local

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/analysis"
	"ramp.dev/ramp/internal/control"
	"ramp.dev/ramp/internal/engine"
	"ramp.dev/ramp/internal/proxy"
	"ramp.dev/ramp/internal/rampmetrics"
	"ramp.dev/ramp/internal/spec"
	"ramp.dev/ramp/internal/store"
	"ramp.dev/ramp/internal/supervisor"
)

// Log keys.
const (
	keyRollout  = "rollout"
	keyRevision = "revision"
)

// Controller is local mode's adapter around the engine: it observes the supervisor and the
// proxy, runs analysis, calls engine.Decide and carries out its output. It serves the
// control API through control.Control (backend.go).
type Controller struct {
	store    *store.Store
	sup      *supervisor.Supervisor
	runner   *analysis.Runner
	log      *slog.Logger
	now      func() time.Time
	registry *prometheus.Registry

	// measure takes analysis measurements off the loop.
	measure *analysis.Async

	// mu serialises every change of state: API commands and the control loop.
	mu sync.Mutex
	// proxiesMu guards the proxies map itself, which measurements read without mu.
	proxiesMu sync.RWMutex
	proxies   map[string]*rolloutProxy
	regexps   map[string]*regexp.Regexp
	kick      chan struct{}
	// judges holds each rollout's judge state, by rollout name; nil until the first judge.
	judges map[string]*judgeState
	// watches holds each rollout's watch-window judge state, by rollout name.
	watches map[string]*watchState
	// exits are the exits of each instance already recorded as events, by rollout and
	// instance ID.
	exits map[string]map[string]int32
}

// rolloutProxy is one rollout's proxy and the listeners in front of it.
type rolloutProxy struct {
	p                   *proxy.Proxy
	listen, previewAddr string
	lc                  listenerConfig
	main, preview       *proxy.Server
	mainLn, previewLn   net.Listener
	collectorRegistered bool
}

func (c *Controller) kickLoop() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// loop reconciles every rollout when something changes, and at least every tick.
func (c *Controller) loop(ctx context.Context, tick time.Duration) {
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		c.reconcileAll(ctx)
		select {
		case <-ctx.Done():
			return
		case <-c.kick:
		case <-c.sup.Changes():
		case <-t.C:
		}
	}
}

func (c *Controller) reconcileAll(ctx context.Context) {
	c.mu.Lock()
	defer c.mu.Unlock()
	rollouts, err := c.store.ListRollouts()
	if err != nil {
		c.log.Error("list rollouts", "err", err)
		return
	}
	for i := range rollouts {
		if err := c.reconcile(ctx, &rollouts[i]); err != nil {
			c.log.Error("reconcile", keyRollout, rollouts[i].Name, "err", err)
		}
	}
}

// reconcile runs one decision for r. c.mu is held.
func (c *Controller) reconcile(ctx context.Context, r *v1alpha1.Rollout) error {
	defer func(start time.Time) { rampmetrics.ObserveReconcile(rampmetrics.ModeLocal, time.Since(start)) }(time.Now())
	now := c.now()
	name := r.Name
	if err := c.ensureProxy(r); err != nil {
		return err
	}
	observed := c.sup.Instances(name)
	instances := map[int64][]engine.Instance{}
	for rev, list := range observed {
		for _, in := range list {
			instances[rev] = append(instances[rev], engine.Instance{
				ID: in.ID, Ready: in.Ready, ReadySince: in.ReadySince, StartedAt: in.StartedAt,
				Terminating: in.Terminating, CrashLooping: in.CrashLooping, Restarts: in.Restarts, Message: in.Message, LastExit: in.LastExit,
				Exits: in.Exits, CreatedAt: in.CreatedAt, MemoryBytes: in.MemoryBytes,
			})
		}
	}
	c.recordExits(name, observed)

	before, err := json.Marshal(r.Status)
	if err != nil {
		return fmt.Errorf("marshal status: %w", err)
	}
	c.runAnalysis(ctx, now, r)

	out := engine.Decide(engine.Input{Rollout: r, Revision: r.Status.CurrentRevision, Instances: instances, Now: now, WatchJudge: true})
	promotedFrom := r.Status.StableRevision
	r.Status = out.Status
	// Carry out the desired state: instances (the ones a restart replaces stop first, so that
	// Scale starts their replacements), then routes.
	c.sup.Stop(name, out.Restart)
	revs := map[int64]bool{}
	for rev := range out.Scale {
		revs[rev] = true
	}
	for rev := range observed {
		revs[rev] = true
	}
	for rev := range revs {
		n := out.Scale[rev]
		var tmpl v1alpha1.Template // stopping needs no template; a pruned revision has none
		if n > 0 {
			if tmpl, err = c.template(name, rev); err != nil {
				return err
			}
		}
		c.sup.Scale(name, rev, tmpl, n)
	}
	for _, list := range observed { // the instances just stopped take no new requests
		for i := range list {
			if slices.Contains(out.Restart, list[i].ID) {
				list[i].Terminating = true
			}
		}
	}
	c.setRoutes(r, out.Routes, observed)

	// Then record the decision, so the status never shows what traffic does not do yet.
	after, err := json.Marshal(r.Status)
	if err != nil {
		return fmt.Errorf("marshal status: %w", err)
	}
	if string(before) != string(after) {
		if err := c.store.PutRollout(r); err != nil {
			return fmt.Errorf("save status of %s: %w", name, err)
		}
	}
	for _, e := range out.Events {
		c.record(name, e.Type, e.Reason, e.Message, e.Revision)
	}
	// Stop the measurements of runs the engine no longer wants (an abort, a promotion, a
	// new revision), so a test suite stops when its rollout does.
	c.measure.Forget("", name, r.Status.Analysis)
	if promotedFrom != r.Status.StableRevision {
		c.prune(r)
	}

	return nil
}

// recordExits records an InstanceExited event for each exit of an instance's own not yet
// recorded, saying how it ended, how long it ran and the last lines of its stderr. c.mu is held.
func (c *Controller) recordExits(rollout string, observed map[int64][]supervisor.Instance) {
	if c.exits == nil {
		c.exits = map[string]map[string]int32{}
	}
	recorded := c.exits[rollout]
	next := map[string]int32{} // only the instances still there
	for rev, list := range observed {
		for _, in := range list {
			next[in.ID] = in.Exits
			if in.Exits <= recorded[in.ID] {
				continue
			}
			msg := fmt.Sprintf("instance %s of revision %d %s after %s (exit %d of this instance)",
				in.ID, rev, in.LastExit, in.ExitRan.Round(time.Millisecond), in.Exits)
			if len(in.ExitStderr) > 0 {
				msg += "; last stderr: " + strings.Join(in.ExitStderr, " | ")
			} else {
				msg += "; no stderr"
			}
			c.record(rollout, engine.EventWarning, "InstanceExited", msg, rev)
		}
	}
	c.exits[rollout] = next
}

func (c *Controller) record(rollout, typ, reason, msg string, rev int64) {
	e, err := c.store.AppendEvent(control.Event{Time: c.now(), Rollout: rollout, Type: typ, Reason: reason, Message: msg, Revision: rev})
	if err != nil {
		c.log.Error("record event", keyRollout, rollout, "err", err)
		return
	}
	level := slog.LevelInfo
	if typ == engine.EventWarning {
		level = slog.LevelWarn
	}
	c.log.Log(context.Background(), level, msg, keyRollout, rollout, keyRevision, rev, "reason", reason, "seq", e.Seq)
}

// template returns revision rev's template.
func (c *Controller) template(rollout string, rev int64) (v1alpha1.Template, error) {
	r, err := c.store.GetRevision(rollout, rev)
	if err != nil {
		return v1alpha1.Template{}, fmt.Errorf("revision %d of %s: %w", rev, rollout, err)
	}
	return r.Template, nil
}

func (c *Controller) prune(r *v1alpha1.Rollout) {
	keep := 10
	if r.Spec.RevisionHistoryLimit != nil {
		keep = int(*r.Spec.RevisionHistoryLimit)
	}
	protect := []int64{r.Status.StableRevision, r.Status.CurrentRevision}
	for k := range r.Status.ScaleDownAt {
		var n int64
		if _, err := fmt.Sscan(k, &n); err == nil {
			protect = append(protect, n)
		}
	}
	if err := c.store.PruneRevisions(r.Name, keep, protect...); err != nil {
		c.log.Error("prune revisions", keyRollout, r.Name, "err", err)
	}
}

// setRoutes gives the proxy the engine's routes over the instances that can take traffic.
func (c *Controller) setRoutes(r *v1alpha1.Rollout, routes engine.Routes, observed map[int64][]supervisor.Instance) {
	rp := c.rolloutProxy(r.Name)
	backends := func(rev int64) []proxy.Backend {
		var out []proxy.Backend
		for _, in := range observed[rev] {
			if in.Ready && !in.Terminating {
				out = append(out, proxy.Backend{ID: in.ID, Addr: in.Addr})
			}
		}
		return out
	}
	var t proxy.Table
	revs := slices.Sorted(maps.Keys(routes.Weights))
	for _, rev := range revs {
		t.Pools = append(t.Pools, proxy.Pool{Revision: rev, Role: string(roleOf(r, rev)), Weight: routes.Weights[rev], Backends: backends(rev)})
	}
	addPool := func(rev int64) {
		if _, ok := routes.Weights[rev]; !ok && rev != 0 {
			t.Pools = append(t.Pools, proxy.Pool{Revision: rev, Role: string(roleOf(r, rev)), Weight: 0, Backends: backends(rev)})
			routes.Weights[rev] = 0
		}
	}
	for _, hr := range routes.HeaderRoutes {
		pr := proxy.HeaderRoute{Name: hr.Name, Revision: hr.Revision}
		for _, m := range hr.Match {
			pm := proxy.Match{Header: m.HeaderName, Exact: m.HeaderValue.Exact, Prefix: m.HeaderValue.Prefix}
			if m.HeaderValue.Regex != "" {
				pm.Regex = c.regexp(m.HeaderValue.Regex)
			}
			pr.Match = append(pr.Match, pm)
		}
		for _, m := range hr.CookieMatch {
			pm := proxy.Match{Cookie: m.CookieName, Exact: m.CookieValue.Exact, Prefix: m.CookieValue.Prefix}
			if m.CookieValue.Regex != "" {
				pm.Regex = c.regexp(m.CookieValue.Regex)
			}
			pr.Match = append(pr.Match, pm)
		}
		t.HeaderRoutes = append(t.HeaderRoutes, pr)
		addPool(hr.Revision)
	}
	t.Preview = routes.Preview
	addPool(routes.Preview)
	routingExtras(r, &t, addPool)
	rp.p.SetTable(t)
}

func (c *Controller) regexp(s string) *regexp.Regexp {
	if re, ok := c.regexps[s]; ok {
		return re
	}
	re := regexp.MustCompile(s) // validated by spec.Load
	c.regexps[s] = re
	return re
}

func roleOf(r *v1alpha1.Rollout, rev int64) v1alpha1.Role {
	for _, s := range r.Status.Revisions {
		if s.Revision == rev {
			return s.Role
		}
	}
	return v1alpha1.RoleOld
}

// ensureProxy starts (or moves) r's listeners.
func (c *Controller) ensureProxy(r *v1alpha1.Rollout) error {
	rp := c.rolloutProxy(r.Name)
	if !rp.collectorRegistered {
		if err := c.registry.Register(rp.p.Collector()); err == nil {
			rp.collectorRegistered = true
		}
	}
	rp.p.SetSettings(proxySettings(r))
	previewAddr := ""
	if bg := r.Spec.Strategy.BlueGreen; bg != nil {
		previewAddr = bg.PreviewListen
	}
	lc := listenerConfigOf(r)
	var sc proxy.ServerConfig
	if rp.lc != lc || rp.listen != r.Spec.Listen || rp.previewAddr != previewAddr {
		var err error
		if sc, err = lc.serverConfig(c.log); err != nil {
			return fmt.Errorf("rollout %s: %w", r.Name, err)
		}
	}
	if rp.lc != lc { // restart the listeners with the new TLS or limits
		closeServer(rp.main)
		closeServer(rp.preview)
		rp.main, rp.listen, rp.preview, rp.previewAddr = nil, "", nil, ""
		rp.lc = lc
	}
	if rp.listen != r.Spec.Listen {
		closeServer(rp.main)
		rp.main, rp.listen = nil, ""
		if r.Spec.Listen != "" {
			srv, err := c.serve(r.Spec.Listen, rp.p, rp.mainLn, sc)
			if err != nil {
				return fmt.Errorf("listen for rollout %s: %w", r.Name, err)
			}
			rp.main, rp.listen, rp.mainLn = srv, r.Spec.Listen, nil
		}
	}
	if rp.previewAddr != previewAddr {
		closeServer(rp.preview)
		rp.preview, rp.previewAddr = nil, ""
		if previewAddr != "" {
			srv, err := c.serve(previewAddr, rp.p.PreviewHandler(), rp.previewLn, sc)
			if err != nil {
				return fmt.Errorf("preview listen for rollout %s: %w", r.Name, err)
			}
			rp.preview, rp.previewAddr, rp.previewLn = srv, previewAddr, nil
		}
	}
	return nil
}

// serve serves h on addr, on ln when the caller already bound it.
func (c *Controller) serve(addr string, h http.Handler, ln net.Listener, sc proxy.ServerConfig) (*proxy.Server, error) {
	if ln == nil {
		var err error
		ln, err = net.Listen("tcp", addr)
		if err != nil {
			return nil, err
		}
	}
	srv := proxy.NewServer(h, sc)
	go func() {
		if err := proxy.Serve(srv, ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			c.log.Error("proxy listener stopped", "addr", addr, "err", err)
		}
	}()
	return srv, nil
}

func closeServer(s *proxy.Server) {
	if s == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_ = s.Shutdown(ctx)
}

// rolloutProxy returns the rollout's proxy, making it the first time.
func (c *Controller) rolloutProxy(name string) *rolloutProxy {
	c.proxiesMu.Lock()
	defer c.proxiesMu.Unlock()
	rp := c.proxies[name]
	if rp == nil {
		rp = &rolloutProxy{p: proxy.New(name, proxy.Options{Logger: c.log})}
		c.proxies[name] = rp
	}
	return rp
}

// proxyOf returns the rollout's proxy, or nil. It does not need mu.
func (c *Controller) proxyOf(name string) *proxy.Proxy {
	c.proxiesMu.RLock()
	defer c.proxiesMu.RUnlock()
	if rp := c.proxies[name]; rp != nil {
		return rp.p
	}
	return nil
}

// drain is the supervisor's hook before it stops an instance: no new requests reach it and
// the ones it has finish.
func (c *Controller) drain(ctx context.Context, inst supervisor.Instance) {
	p := c.proxyOf(inst.Rollout)
	if p == nil {
		return
	}
	p.Drain(inst.ID)
	if err := p.WaitIdle(ctx, inst.ID); err != nil {
		c.log.Warn("instance stopped with requests in flight", "instance", inst.ID, "err", err)
	}
}

// shutdown closes the listeners gracefully.
func (c *Controller) shutdown() {
	c.proxiesMu.RLock()
	defer c.proxiesMu.RUnlock()
	for _, rp := range c.proxies {
		closeServer(rp.main)
		closeServer(rp.preview)
	}
}

// checkListen fails when addr cannot be bound, so a bad apply is refused before it is stored.
// It keeps the listener for ensureProxy.
func (c *Controller) checkListen(r *v1alpha1.Rollout) error {
	rp := c.rolloutProxy(r.Name)
	bind := func(field, addr, current string, ln *net.Listener) error {
		if addr == "" || addr == current || *ln != nil {
			return nil
		}
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return &spec.FieldError{Path: field, Value: addr, Msg: "cannot listen: " + err.Error()}
		}
		*ln = l
		return nil
	}
	if _, err := listenerConfigOf(r).serverConfig(c.log); err != nil {
		return err
	}
	if err := bind("spec.listen", r.Spec.Listen, rp.listen, &rp.mainLn); err != nil {
		return err
	}
	if bg := r.Spec.Strategy.BlueGreen; bg != nil {
		if err := bind("spec.strategy.blueGreen.previewListen", bg.PreviewListen, rp.previewAddr, &rp.previewLn); err != nil {
			return err
		}
	}
	return nil
}
