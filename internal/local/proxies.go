package local

import (
	"context"
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
	"ramp.dev/ramp/internal/engine"
	"ramp.dev/ramp/internal/proxy"
	"ramp.dev/ramp/internal/spec"
	"ramp.dev/ramp/internal/supervisor"
)

// proxies holds each rollout's proxy and the listeners in front of it.
type proxies struct {
	log      *slog.Logger
	registry *prometheus.Registry

	// mu guards byName itself, which measurements read off the loop.
	mu     sync.RWMutex
	byName map[string]*rolloutProxy
	// regexps caches the header routes' regexps; only the control loop uses it.
	regexps map[string]*regexp.Regexp
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

func newProxies(log *slog.Logger, registry *prometheus.Registry) *proxies {
	return &proxies{log: log, registry: registry, byName: map[string]*rolloutProxy{}, regexps: map[string]*regexp.Regexp{}}
}

// get returns the rollout's proxy, making it the first time.
func (ps *proxies) get(name string) *rolloutProxy {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	rp := ps.byName[name]
	if rp == nil {
		rp = &rolloutProxy{p: proxy.New(name, proxy.Options{Logger: ps.log})}
		ps.byName[name] = rp
	}
	return rp
}

// of returns the rollout's proxy, or nil. It does not need the control loop.
func (ps *proxies) of(name string) *proxy.Proxy {
	ps.mu.RLock()
	defer ps.mu.RUnlock()
	if rp := ps.byName[name]; rp != nil {
		return rp.p
	}
	return nil
}

// ensure starts (or moves) r's listeners.
func (ps *proxies) ensure(r *v1alpha1.Rollout) error {
	rp := ps.get(r.Name)
	if !rp.collectorRegistered {
		if err := ps.registry.Register(rp.p.Collector()); err == nil {
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
		if sc, err = lc.serverConfig(ps.log); err != nil {
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
			srv, err := ps.serve(r.Spec.Listen, rp.p, rp.mainLn, sc)
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
			srv, err := ps.serve(previewAddr, rp.p.PreviewHandler(), rp.previewLn, sc)
			if err != nil {
				return fmt.Errorf("preview listen for rollout %s: %w", r.Name, err)
			}
			rp.preview, rp.previewAddr, rp.previewLn = srv, previewAddr, nil
		}
	}
	return nil
}

// serve serves h on addr, on ln when the caller already bound it.
func (ps *proxies) serve(addr string, h http.Handler, ln net.Listener, sc proxy.ServerConfig) (*proxy.Server, error) {
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
			ps.log.Error("proxy listener stopped", "addr", addr, "err", err)
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

// drain is the supervisor's hook before it stops an instance: no new requests reach it and
// the ones it has finish.
func (ps *proxies) drain(ctx context.Context, inst supervisor.Instance) {
	p := ps.of(inst.Rollout)
	if p == nil {
		return
	}
	p.Drain(inst.ID)
	if err := p.WaitIdle(ctx, inst.ID); err != nil {
		ps.log.Warn("instance stopped with requests in flight", "instance", inst.ID, "err", err)
	}
}

// shutdown closes the listeners gracefully.
func (ps *proxies) shutdown() {
	ps.mu.RLock()
	defer ps.mu.RUnlock()
	for _, rp := range ps.byName {
		closeServer(rp.main)
		closeServer(rp.preview)
	}
}

// checkListen fails when an address of r cannot be bound, so a bad apply is refused before
// it is stored. It keeps the listener for ensure.
func (ps *proxies) checkListen(r *v1alpha1.Rollout) error {
	rp := ps.get(r.Name)
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
	if _, err := listenerConfigOf(r).serverConfig(ps.log); err != nil {
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

// setRoutes gives the proxy the engine's routes over the instances that can take traffic.
func (ps *proxies) setRoutes(r *v1alpha1.Rollout, routes engine.Routes, observed map[int64][]supervisor.Instance) {
	rp := ps.get(r.Name)
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
				pm.Regex = ps.regexp(m.HeaderValue.Regex)
			}
			pr.Match = append(pr.Match, pm)
		}
		for _, m := range hr.CookieMatch {
			pm := proxy.Match{Cookie: m.CookieName, Exact: m.CookieValue.Exact, Prefix: m.CookieValue.Prefix}
			if m.CookieValue.Regex != "" {
				pm.Regex = ps.regexp(m.CookieValue.Regex)
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

func (ps *proxies) regexp(s string) *regexp.Regexp {
	if re, ok := ps.regexps[s]; ok {
		return re
	}
	re := regexp.MustCompile(s) // validated by spec.Load
	ps.regexps[s] = re
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
