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
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/analysis"
	"ramp.dev/ramp/internal/engine"
	"ramp.dev/ramp/internal/proxy"
	"ramp.dev/ramp/internal/server"
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
// control API through server.Backend.
type Controller struct {
	store    *store.Store
	sup      *supervisor.Supervisor
	runner   *analysis.Runner
	log      *slog.Logger
	now      func() time.Time
	registry *prometheus.Registry

	// mu serialises every change of state: API commands and the control loop.
	mu      sync.Mutex
	proxies map[string]*rolloutProxy
	regexps map[string]*regexp.Regexp
	kick    chan struct{}
	// judges holds each rollout's judge state, by rollout name; nil until the first judge.
	judges map[string]*judgeState
}

var _ server.Backend = (*Controller)(nil)

// rolloutProxy is one rollout's proxy and the listeners in front of it.
type rolloutProxy struct {
	p                   *proxy.Proxy
	listen, previewAddr string
	main, preview       *http.Server
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
				Terminating: in.Terminating, CrashLooping: in.CrashLooping, Restarts: in.Restarts, Message: in.Message,
			})
		}
	}

	before, err := json.Marshal(r.Status)
	if err != nil {
		return fmt.Errorf("marshal status: %w", err)
	}
	c.runAnalysis(ctx, now, r)

	out := engine.Decide(engine.Input{Rollout: r, Revision: r.Status.CurrentRevision, Instances: instances, Now: now})
	promotedFrom := r.Status.StableRevision
	r.Status = out.Status
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
	if promotedFrom != r.Status.StableRevision {
		c.prune(r)
	}

	// Carry out the desired state: instances, then routes.
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
	c.setRoutes(r, out.Routes, observed)
	return nil
}

// runAnalysis takes the measurements that are due for r's analysis runs.
func (c *Controller) runAnalysis(ctx context.Context, now time.Time, r *v1alpha1.Rollout) {
	for i := range r.Status.Analysis {
		run := &r.Status.Analysis[i]
		if run.Phase.Completed() {
			continue
		}
		before := run.Phase
		if run.Kind == v1alpha1.AnalysisKindJudge {
			c.stepJudge(now, r, run)
		} else {
			templates := map[string]*v1alpha1.AnalysisTemplate{}
			for _, ref := range run.Spec.Templates {
				t, err := c.store.GetAnalysisTemplate(ref.TemplateName)
				if err != nil {
					run.Phase = v1alpha1.AnalysisError
					run.Message = fmt.Sprintf("analysis template %q: %s", ref.TemplateName, err.Error())
					break
				}
				templates[ref.TemplateName] = t
			}
			if run.Phase.Completed() {
				continue
			}
			c.runner.Step(ctx, now, r.Name, run, templates)
		}
		if run.Phase != before && run.Phase.Completed() {
			typ := engine.EventNormal
			if run.Phase != v1alpha1.AnalysisSuccessful {
				typ = engine.EventWarning
			}
			c.record(r.Name, typ, "Analysis"+string(run.Phase), fmt.Sprintf("analysis %s: %s %s", run.Name, run.Phase, run.Message), run.Revision)
		}
	}
	c.forgetJudges(r)
}

func (c *Controller) record(rollout, typ, reason, msg string, rev int64) {
	e, err := c.store.AppendEvent(store.Event{Time: c.now(), Rollout: rollout, Type: typ, Reason: reason, Message: msg, Revision: rev})
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
	rp := c.proxies[r.Name]
	if rp == nil {
		return
	}
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
		t.HeaderRoutes = append(t.HeaderRoutes, pr)
		addPool(hr.Revision)
	}
	t.Preview = routes.Preview
	addPool(routes.Preview)
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
	rp := c.proxies[r.Name]
	if rp == nil {
		rp = &rolloutProxy{p: proxy.New(r.Name, proxy.Options{Logger: c.log})}
		c.proxies[r.Name] = rp
	}
	if !rp.collectorRegistered {
		if err := c.registry.Register(rp.p.Collector()); err == nil {
			rp.collectorRegistered = true
		}
	}
	previewAddr := ""
	if bg := r.Spec.Strategy.BlueGreen; bg != nil {
		previewAddr = bg.PreviewListen
	}
	if rp.listen != r.Spec.Listen {
		closeServer(rp.main)
		rp.main, rp.listen = nil, ""
		if r.Spec.Listen != "" {
			srv, err := c.serve(r.Spec.Listen, rp.p, rp.mainLn)
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
			srv, err := c.serve(previewAddr, rp.p.PreviewHandler(), rp.previewLn)
			if err != nil {
				return fmt.Errorf("preview listen for rollout %s: %w", r.Name, err)
			}
			rp.preview, rp.previewAddr, rp.previewLn = srv, previewAddr, nil
		}
	}
	return nil
}

// serve serves h on addr, on ln when the caller already bound it.
func (c *Controller) serve(addr string, h http.Handler, ln net.Listener) (*http.Server, error) {
	if ln == nil {
		var err error
		ln, err = net.Listen("tcp", addr)
		if err != nil {
			return nil, err
		}
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 30 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			c.log.Error("proxy listener stopped", "addr", addr, "err", err)
		}
	}()
	return srv, nil
}

func closeServer(s *http.Server) {
	if s == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_ = s.Shutdown(ctx)
}

// drain is the supervisor's hook before it stops an instance: no new requests reach it and
// the ones it has finish.
func (c *Controller) drain(ctx context.Context, inst supervisor.Instance) {
	c.mu.Lock()
	var ps []*proxy.Proxy
	for _, rp := range c.proxies {
		ps = append(ps, rp.p)
	}
	c.mu.Unlock()
	for _, p := range ps {
		p.Drain(inst.ID)
	}
	for _, p := range ps {
		if err := p.WaitIdle(ctx, inst.ID); err != nil {
			c.log.Warn("instance stopped with requests in flight", "instance", inst.ID, "err", err)
		}
	}
}

// shutdown closes the listeners gracefully.
func (c *Controller) shutdown() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, rp := range c.proxies {
		closeServer(rp.main)
		closeServer(rp.preview)
	}
}

// checkListen fails when addr cannot be bound, so a bad apply is refused before it is stored.
// It keeps the listener for ensureProxy.
func (c *Controller) checkListen(r *v1alpha1.Rollout) error {
	rp := c.proxies[r.Name]
	if rp == nil {
		rp = &rolloutProxy{p: proxy.New(r.Name, proxy.Options{Logger: c.log})}
		c.proxies[r.Name] = rp
	}
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
