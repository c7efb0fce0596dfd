// Package proxy is ramp's local-mode data plane: the reverse proxy in front of one rollout's
// instances. It owns the routing table (weighted pools per revision, header routes, the
// blue-green preview), the choice of an instance per request, retrying a request once when
// an instance refuses the connection, draining instances, and measuring every request per
// revision (an in-memory rolling window for analysis, and Prometheus metrics).
//
// It knows nothing of the engine, the API types or Kubernetes: local mode translates a
// rollout's state into a Table and calls SetTable.
package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"ramp.dev/ramp/internal/proxy/fast"
)

// Backend is one instance of a revision.
type Backend struct {
	// ID names the instance for Drain and WaitIdle; it must be unique within the proxy.
	ID string
	// Addr is the instance's host:port.
	Addr string
}

// Match is one header or cookie condition. Exactly one of Exact, Prefix or Regex is meant to
// be set: Regex wins when not nil, then Prefix when not empty; otherwise the value must equal
// Exact (so zero Exact, Prefix and Regex match a header that is present with an empty value).
// The header (or cookie) must be present; any one of its values may match.
type Match struct {
	// Header is the header name, case-insensitive. Ignored when Cookie is set.
	Header string
	// Cookie is a cookie name, case-sensitive; when set the condition is on that cookie's
	// value instead of a header. Empty means a header condition.
	Cookie string
	Exact  string
	Prefix string
	Regex  *regexp.Regexp
}

// HeaderRoute sends requests whose headers satisfy all of Match to Revision, ahead of the
// weights. A route with no Match matches nothing.
type HeaderRoute struct {
	// Name is for logs only.
	Name     string
	Match    []Match
	Revision int64
}

// Pool is the set of instances of one revision that share its traffic weight.
type Pool struct {
	Revision int64
	// Role is the revision's role ("stable", "canary", "active", "preview"); it labels metrics.
	Role string
	// Weight is the pool's percent share of the traffic that no header route takes. Weights
	// are renormalised over the pools that have a ready instance; when all of those are zero
	// the pool with the highest weight (the first on a tie) takes everything.
	Weight   int32
	Backends []Backend
}

// Table is the proxy's whole routing state; SetTable swaps it atomically.
type Table struct {
	Pools []Pool
	// HeaderRoutes are tried in order before the weights. A matching route whose revision has
	// no ready instance is skipped.
	HeaderRoutes []HeaderRoute
	// Preview is the revision PreviewHandler serves; 0 means none (PreviewHandler answers 503).
	Preview int64
	// TrustedSources limit HeaderRoutes to clients whose address (the connection's peer,
	// never X-Forwarded-For) is in one of these prefixes; other clients follow the weights.
	// Empty means every client may use the routes.
	TrustedSources []netip.Prefix
	// Sticky keeps each user on one revision while the weights grow. Nil means every
	// request is weighed on its own.
	Sticky *Sticky
	// Mirror copies a share of the requests to a revision. Nil means no mirroring.
	Mirror *Mirror
}

// Options configure a Proxy.
type Options struct {
	// Logger receives upstream failures and retries. Nil means slog.Default().
	Logger *slog.Logger
	// Clock is the time source for measurements. Nil means time.Now.
	Clock func() time.Time
	// ResponseHeaderTimeout bounds the wait for an instance's response headers; when it runs
	// out the client gets 504. Zero means no limit (responses that take minutes are normal).
	ResponseHeaderTimeout time.Duration
	// DialTimeout bounds connecting to an instance. Zero means 5 seconds.
	DialTimeout time.Duration
	// TrustForwardedHeaders keeps the client's X-Forwarded-For/-Host/-Proto and appends to
	// them. False means they are replaced with what this proxy sees.
	TrustForwardedHeaders bool
}

// Log keys.
const (
	keyRollout  = "rollout"
	keyRevision = "revision"
	keyBackend  = "backend"
)

// RevisionHeader is added to every proxied response and names the revision that served it.
const RevisionHeader = "X-Ramp-Revision"

// Proxy is a reverse proxy for one rollout. Its methods are safe for concurrent use.
type Proxy struct {
	rollout string
	log     *slog.Logger
	now     func() time.Time
	trustXF bool
	table   atomic.Pointer[routeTable]
	up      atomic.Pointer[upstreams]
	rp      *httputil.ReverseProxy
	netFwd  forwarder // netForwarder{p}
	metrics *metrics
	mirrors mirrorState

	mu       sync.Mutex // guards backends and revs
	backends map[string]*backendState
	revs     map[int64]*revStats
}

// routeTable is a Table compiled for the request path.
type routeTable struct {
	pools   []*pool
	byRev   map[int64][]*pool
	routes  []HeaderRoute
	preview int64
	trusted []netip.Prefix
	sticky  *stickyTable
	mirror  *mirrorTable
}

type pool struct {
	rev       int64
	revHeader string   // rev, formatted for RevisionHeader
	revValue  []string // {revHeader}, capacity 1: a response header value shared by all
	role      string
	weight    int32
	targets   []target
	rr        atomic.Uint32
	stats     *revStats
	obs       poolObservers
	// requests are the pool's ramp_requests_total children by classIndex, looked up on a
	// class's first request; nil until then.
	requests [len(classNames)]atomic.Pointer[counter]
}

type target struct {
	b    *backendState
	addr string
}

// New returns a proxy for the named rollout with an empty table: every request gets 503
// until SetTable.
func New(rollout string, opts Options) *Proxy {
	p := &Proxy{
		rollout:  rollout,
		log:      opts.Logger,
		now:      opts.Clock,
		trustXF:  opts.TrustForwardedHeaders,
		backends: map[string]*backendState{},
		revs:     map[int64]*revStats{},
		metrics:  newMetrics(rollout),
	}
	if p.log == nil {
		p.log = slog.Default()
	}
	p.log = p.log.With(keyRollout, rollout)
	if p.now == nil {
		p.now = time.Now
	}
	p.up.Store(newUpstreams(Settings{ConnectTimeout: opts.DialTimeout, FirstByteTimeout: opts.ResponseHeaderTimeout}, p.trustXF))
	p.mirrors.init(p)
	p.netFwd = netForwarder{p}
	p.rp = &httputil.ReverseProxy{
		Rewrite:        p.rewrite,
		Transport:      &retryTransport{p: p},
		FlushInterval:  -1,
		BufferPool:     copyBuffers{},
		ErrorHandler:   p.errorHandler,
		ModifyResponse: p.modifyResponse,
		ErrorLog:       slog.NewLogLogger(p.log.Handler(), slog.LevelWarn),
	}
	p.table.Store(&routeTable{byRev: map[int64][]*pool{}})
	return p
}

// SetTable replaces the routing table. Requests already on their way keep the instance they
// were given. Drain marks persist for backends still listed with the same address; a backend
// that leaves the table (or changes address) is no longer drained if it comes back.
func (p *Proxy) SetTable(t Table) {
	p.mu.Lock()
	defer p.mu.Unlock()
	rt := &routeTable{
		byRev:   map[int64][]*pool{},
		routes:  compileRoutes(t.HeaderRoutes),
		preview: t.Preview,
		trusted: slices.Clone(t.TrustedSources),
	}
	listed := map[string]bool{}
	addrs := map[string]bool{}
	for _, tp := range t.Pools {
		pl := &pool{rev: tp.Revision, revHeader: strconv.FormatInt(tp.Revision, 10), role: tp.Role, weight: max(tp.Weight, 0)}
		pl.revValue = []string{pl.revHeader}[:1:1]
		for _, b := range tp.Backends {
			st := p.backends[b.ID]
			if st == nil {
				st = &backendState{id: b.ID, addr: b.Addr}
				p.backends[b.ID] = st
			} else if st.addr != b.Addr {
				st.addr = b.Addr
				st.draining.Store(false)
			}
			st.gone.Store(false)
			listed[b.ID] = true
			addrs[b.Addr] = true
			pl.targets = append(pl.targets, target{b: st, addr: b.Addr})
		}
		pl.stats = p.revStatsLocked(tp.Revision)
		pl.obs = p.metrics.observers(tp.Revision, tp.Role)
		rt.pools = append(rt.pools, pl)
		rt.byRev[pl.rev] = append(rt.byRev[pl.rev], pl)
	}
	for id, st := range p.backends {
		if listed[id] {
			continue
		}
		st.draining.Store(false)
		st.gone.Store(true) // before reading inflight: see backendState.gone
		if st.inflight.Load() == 0 && st.waiters.Load() == 0 {
			delete(p.backends, id)
		}
	}
	cutoff := p.now().Add(-statsWindow).Unix()
	for rev, s := range p.revs {
		if _, ok := rt.byRev[rev]; !ok && s.lastSecond() < cutoff {
			delete(p.revs, rev)
			p.metrics.forget(rev)
		}
	}
	if fp := p.up.Load().fast; fp != nil {
		fp.Retain(addrs) // instances that left keep no idle connection open
	}
	rt.sticky = newStickyTable(t.Sticky, rt.pools)
	rt.mirror = newMirrorTable(t.Mirror, rt.byRev)
	p.table.Store(rt)
}

// Close closes the idle connections to the instances. Requests in flight are not affected;
// the proxy stays usable.
func (p *Proxy) Close() { p.up.Load().closeIdle(false) }

func (p *Proxy) revStatsLocked(rev int64) *revStats {
	s := p.revs[rev]
	if s == nil {
		s = &revStats{}
		p.revs[rev] = s
	}
	return s
}

// ServeHTTP proxies r to an instance chosen by the header routes and the weights.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) { p.serve(w, r, false) }

// PreviewHandler returns a handler that sends every request to the instances of
// Table.Preview, and answers 503 when there is no preview revision or it has no ready
// instance.
func (p *Proxy) PreviewHandler() http.Handler { return previewHandler{p} }

// FastEndpoint opts the proxy in to the fast server (FastServable).
func (p *Proxy) FastEndpoint() FastEndpoint { return FastEndpoint{p: p} }

type previewHandler struct{ p *Proxy }

func (h previewHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.p.serve(w, r, true) }

// FastEndpoint opts the preview handler in to the fast server (FastServable).
func (h previewHandler) FastEndpoint() FastEndpoint { return FastEndpoint{p: h.p, preview: true} }

// copyBuffers lends ReverseProxy the 32 KiB buffers it copies response bodies with, instead
// of one new buffer per request.
type copyBuffers struct{}

var copyBufferPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func (copyBuffers) Get() []byte  { return *copyBufferPool.Get().(*[]byte) }
func (copyBuffers) Put(b []byte) { copyBufferPool.Put(&b) }

// reqState follows one request through the proxy. Only the request's own goroutine touches
// it (ReverseProxy calls the transport and its hooks synchronously).
type reqState struct {
	p          *Proxy
	tbl        *routeTable
	up         *upstreams
	cancel     context.CancelCauseFunc // nil unless a timeout may cancel the upstream request
	preview    bool
	setBucket  int // a sticky bucket to hand out in a cookie; -1 means none
	start      time.Time
	replayable bool
	moved      bool // moved to another instance after a refused connection (retry.go)
	renewed    bool // sent again on a new connection after a reused one failed (retry.go)
	pool       *pool
	t          target
	tried      []*backendState
	triedBuf   [2]*backendState

	gotHeaders bool
	ttfb       time.Duration
	// gotBody is set when the first byte of the response body went to the client, at
	// firstToken after start.
	gotBody    bool
	firstToken time.Duration
	// body wraps the ReverseProxy path's response body to see its first byte.
	body       firstTokenBody
	status     int
	failed     bool // the upstream failed: no response, or a broken response body
	clientGone bool
}

type stateKey struct{}

func stateFrom(ctx context.Context) *reqState {
	st, _ := ctx.Value(stateKey{}).(*reqState)
	return st
}

// assign moves the request to instance t of pool pl; the caller already counted it in t's
// in-flight number (pick does).
func (st *reqState) assign(pl *pool, t target) {
	if st.pool != nil {
		st.pool.stats.end(st.start, st.gotBody)
		st.release()
	}
	st.pool, st.t = pl, t
	st.tried = append(st.tried, t.b)
	pl.obs.inflight.Inc()
	pl.stats.begin(st.start)
}

// release gives back the instance and the pool's in-flight gauge; the pool's arrival counts
// are ended by finish (or, when the request moves to another pool, by assign).
func (st *reqState) release() {
	st.pool.obs.inflight.Dec()
	st.t.b.done()
}

// bodyBegun notes that the response body's first byte went to the client.
func (st *reqState) bodyBegun(now time.Time) {
	st.gotBody = true
	st.firstToken = now.Sub(st.start)
	st.pool.stats.bodyStarted(st.start)
}

// serve serves a request of net/http's server.
func (p *Proxy) serve(w http.ResponseWriter, r *http.Request, preview bool) {
	p.serveState(w, r, &reqState{}, preview, p.up.Load(), nil)
}

// serveState serves r with st (zero) and the upstream settings up; idSlot, when not nil,
// backs the request id the proxy makes. The fast server's connServer lends st and idSlot:
// nothing keeps them past the request.
func (p *Proxy) serveState(w http.ResponseWriter, r *http.Request, st *reqState, preview bool, up *upstreams, idSlot *[1]string) {
	st.p, st.tbl, st.up, st.preview, st.start, st.setBucket = p, p.table.Load(), up, preview, p.now(), -1
	st.tried = st.triedBuf[:0]
	requestID(w, r, idSlot)
	if !limitBody(w, r, st.up.s.MaxRequestBodyBytes) {
		return
	}
	replayable, err := bufferBody(r)
	if err != nil {
		if tooLarge(w, err) {
			return
		}
		http.Error(w, "cannot read request body", http.StatusBadRequest)
		return
	}
	st.replayable = replayable
	pl, t, ok := p.route(st, r)
	// The table changed while the request was read, and its instances left it: route by the
	// new one (a few times at most, should it keep changing).
	for i := 0; !ok && i < 3; i++ {
		cur := p.table.Load()
		if cur == st.tbl {
			break
		}
		st.tbl = cur
		pl, t, ok = p.route(st, r)
	}
	if !ok {
		http.Error(w, "no ready instance for rollout "+p.rollout, http.StatusServiceUnavailable)
		return
	}
	st.assign(pl, t)
	if st.setBucket >= 0 {
		http.SetCookie(w, st.tbl.sticky.cookie(st.setBucket))
	}
	if st.tbl.mirror != nil && !preview && pl.rev != st.tbl.mirror.cfg.Revision {
		p.mirrors.maybe(st.tbl.mirror, r)
	}
	completed := false
	defer func() {
		// Also runs when ReverseProxy aborts a broken response with http.ErrAbortHandler.
		if !completed && !st.failed {
			if r.Context().Err() != nil {
				st.clientGone = true
			} else {
				st.failed = true
			}
		}
		p.finish(st)
		st.release()
	}()
	st.up.forwarderFor(p, w, r).forward(w, r, st)
	completed = true
}

// serveReverseProxy forwards r through httputil.ReverseProxy and net/http's Transport.
func (p *Proxy) serveReverseProxy(w http.ResponseWriter, r *http.Request, st *reqState) {
	ctx := context.WithValue(r.Context(), stateKey{}, st)
	ctx = guardReuse(ctx, func() { p.discarded(st, reasonUnasked, 1) })
	if st.up.s.FirstByteTimeout > 0 || st.up.s.IdleTimeout > 0 {
		var cancel context.CancelCauseFunc
		ctx, cancel = context.WithCancelCause(ctx)
		st.cancel = cancel
		defer cancel(nil)
	}
	p.rp.ServeHTTP(w, r.WithContext(ctx))
}

// route picks the pool and instance for a new request and counts it in flight there.
func (p *Proxy) route(st *reqState, r *http.Request) (*pool, target, bool) {
	tbl := st.tbl
	if st.preview {
		if tbl.preview == 0 {
			return nil, target{}, false
		}
		return firstReady(tbl.byRev[tbl.preview], nil)
	}
	if len(tbl.routes) > 0 && trusted(tbl.trusted, r) {
		for _, hr := range tbl.routes {
			if !routeMatches(hr, r.Header) {
				continue
			}
			if pl, t, ok := firstReady(tbl.byRev[hr.Revision], nil); ok {
				return pl, t, true
			}
		}
	}
	if tbl.sticky != nil {
		return tbl.sticky.pick(st, r)
	}
	return pickWeighted(tbl.pools, nil)
}

func firstReady(pools []*pool, exclude []*backendState) (*pool, target, bool) {
	for _, pl := range pools {
		if t, ok := pl.pick(exclude); ok {
			return pl, t, true
		}
	}
	return nil, target{}, false
}

// pickWeighted chooses a pool at random by weight among the pools with a ready instance,
// then an instance in it.
func pickWeighted(pools []*pool, exclude []*backendState) (*pool, target, bool) {
	var buf [8]*pool
	cand := buf[:0]
	for _, pl := range pools {
		if pl.hasReady(exclude) {
			cand = append(cand, pl)
		}
	}
	for len(cand) > 0 {
		i := weightedIndex(cand)
		if t, ok := cand[i].pick(exclude); ok {
			return cand[i], t, true
		}
		cand = slices.Delete(cand, i, i+1) // its instances were drained meanwhile
	}
	return nil, target{}, false
}

func weightedIndex(cand []*pool) int {
	var sum int64
	for _, pl := range cand {
		sum += int64(pl.weight)
	}
	if sum == 0 {
		best := 0
		for i, pl := range cand {
			if pl.weight > cand[best].weight {
				best = i
			}
		}
		return best
	}
	n := rand.Int64N(sum)
	for i, pl := range cand {
		if n < int64(pl.weight) {
			return i
		}
		n -= int64(pl.weight)
	}
	return len(cand) - 1
}

func (pl *pool) hasReady(exclude []*backendState) bool {
	for _, t := range pl.targets {
		if !t.b.draining.Load() && !slices.Contains(exclude, t.b) {
			return true
		}
	}
	return false
}

// pick chooses the ready instance with the fewest requests in flight, starting the scan at
// a round-robin position so that ties rotate, and counts the request in flight there.
func (pl *pool) pick(exclude []*backendState) (target, bool) {
	n := len(pl.targets)
	if n == 0 {
		return target{}, false
	}
	start := int(pl.rr.Add(1) % uint32(n))
	var skip []*backendState
	for {
		best, bestLoad := -1, int64(0)
		for i := range n {
			t := pl.targets[(start+i)%n]
			if t.b.draining.Load() || slices.Contains(exclude, t.b) || slices.Contains(skip, t.b) {
				continue
			}
			if load := t.b.inflight.Load(); best < 0 || load < bestLoad {
				best, bestLoad = (start+i)%n, load
			}
		}
		if best < 0 {
			return target{}, false
		}
		t := pl.targets[best]
		if t.b.acquire() {
			return t, true
		}
		skip = append(skip, t.b) // drained between the scan and acquire
	}
}

// compileRoutes copies routes with their header names in canonical form, so that matching
// looks them up without canonicalising them per request.
func compileRoutes(routes []HeaderRoute) []HeaderRoute {
	out := slices.Clone(routes)
	for i := range out {
		out[i].Match = slices.Clone(out[i].Match)
		for j := range out[i].Match {
			out[i].Match[j].Header = http.CanonicalHeaderKey(out[i].Match[j].Header)
		}
	}
	return out
}

func routeMatches(hr HeaderRoute, h http.Header) bool {
	if len(hr.Match) == 0 {
		return false
	}
	for _, m := range hr.Match {
		if !m.matches(h) {
			return false
		}
	}
	return true
}

func (m Match) matches(h http.Header) bool {
	for _, v := range m.values(h) {
		switch {
		case m.Regex != nil:
			if m.Regex.MatchString(v) {
				return true
			}
		case m.Prefix != "":
			if strings.HasPrefix(v, m.Prefix) {
				return true
			}
		default:
			if v == m.Exact {
				return true
			}
		}
	}
	return false
}

func (p *Proxy) rewrite(pr *httputil.ProxyRequest) {
	st := stateFrom(pr.In.Context())
	pr.SetURL(&url.URL{Scheme: "http", Host: st.t.addr})
	if p.trustXF {
		for _, h := range []string{"X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto"} {
			if v := pr.In.Header.Values(h); len(v) > 0 {
				pr.Out.Header[h] = slices.Clone(v)
			}
		}
		prior := pr.Out.Header.Get("X-Forwarded-Host")
		proto := pr.Out.Header.Get("X-Forwarded-Proto")
		pr.SetXForwarded() // appends to X-Forwarded-For, overwrites the others
		if prior != "" {
			pr.Out.Header.Set("X-Forwarded-Host", prior)
		}
		if proto != "" {
			pr.Out.Header.Set("X-Forwarded-Proto", proto)
		}
		return
	}
	pr.SetXForwarded()
}

func (p *Proxy) modifyResponse(resp *http.Response) error {
	if st := stateFrom(resp.Request.Context()); st != nil {
		resp.Header.Set(RevisionHeader, strconv.FormatInt(st.pool.rev, 10))
		resp.Header.Del(RequestIDHeader) // the client gets the id the instance was given
		if d := st.up.s.IdleTimeout; d > 0 && st.cancel != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			cancel := st.cancel
			resp.Body = &idleBody{rc: resp.Body, d: d, timer: time.AfterFunc(d, func() { cancel(errIdleTimeout) })}
		}
		if resp.StatusCode != http.StatusSwitchingProtocols && resp.Body != http.NoBody {
			// ReverseProxy writes what it reads at once (FlushInterval -1): the first read
			// with bytes is the first body byte the client is sent.
			st.body = firstTokenBody{rc: resp.Body, st: st, now: p.now}
			resp.Body = &st.body
		}
	}
	return nil
}

func (p *Proxy) errorHandler(w http.ResponseWriter, r *http.Request, err error) {
	p.upstreamFailed(w, r, stateFrom(r.Context()), err)
}

// upstreamFailed answers a request whose instance gave no response: 413 for a request body
// over its limit, 499 (to nobody) when the client went away, else 504 for timeouts and 502.
func (p *Proxy) upstreamFailed(w http.ResponseWriter, r *http.Request, st *reqState, err error) {
	if tooLarge(w, err) {
		st.status = http.StatusRequestEntityTooLarge
		return
	}
	var big *fast.HeadTooLargeError
	if errors.As(err, &big) || transportHeadTooLarge(err) {
		if big == nil {
			err = &fast.HeadTooLargeError{Limit: st.up.maxResponseHead()}
		}
		p.discarded(st, reasonHeadTooLarge, 1)
	}
	if cause := context.Cause(r.Context()); errors.Is(cause, errFirstByteTimeout) || errors.Is(cause, errIdleTimeout) {
		err = cause
	} else if errors.Is(r.Context().Err(), context.Canceled) {
		st.clientGone = true // nobody to answer
		st.status = 499
		w.WriteHeader(499)
		return
	}
	code := http.StatusBadGateway
	if errors.Is(err, context.DeadlineExceeded) || isTimeout(err) {
		code = http.StatusGatewayTimeout
	}
	st.failed = true
	st.status = code
	p.log.Warn("upstream failed", keyRevision, st.pool.rev, keyBackend, st.t.b.id,
		"addr", st.t.addr, "status", code, "err", err)
	w.Header().Set(RevisionHeader, st.pool.revHeader)
	http.Error(w, fmt.Sprintf("upstream %s: %s", st.t.b.id, http.StatusText(code)), code)
}

// transportHeadTooLarge reports whether err is net/http's Transport refusing an answer head
// over its MaxResponseHeaderBytes (it has no error value to compare with).
func transportHeadTooLarge(err error) bool {
	return err != nil && strings.Contains(err.Error(), "server response headers exceeded")
}

// retryTransport sends the request on the transport of the request's settings and follows
// the retry policy (retry.go): when the instance refuses the connection, it retries once on
// another instance (net/http's Transport itself retries a request on a new connection when a
// reused one fails, by rules like renewAfterStale's). It enforces the first-byte timeout.
type retryTransport struct {
	p *Proxy
}

func (rt *retryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	st := stateFrom(req.Context())
	if st == nil {
		return nil, errors.New("request without proxy state")
	}
	base := st.up.transportFor(req)
	var timer *time.Timer
	if d := st.up.s.FirstByteTimeout; d > 0 && st.cancel != nil {
		cancel := st.cancel // not st: the fast server's connServer reuses it for the next request
		timer = time.AfterFunc(d, func() { cancel(errFirstByteTimeout) })
	}
	resp, err := rt.roundTrip(st, base, req)
	if timer != nil && !timer.Stop() {
		// The deadline passed as the headers came: the request is cancelled, answer 504.
		if resp != nil {
			resp.Body.Close()
		}
		st.gotHeaders = false
		return nil, errFirstByteTimeout
	}
	return resp, err
}

func (rt *retryTransport) roundTrip(st *reqState, base http.RoundTripper, req *http.Request) (*http.Response, error) {
	resp, err := base.RoundTrip(req)
	if err != nil && rt.p.moveOnRefusal(req.Context(), st, err) {
		r2 := req.Clone(req.Context())
		r2.URL.Host = st.t.addr
		if req.Body != nil && req.GetBody != nil {
			if r2.Body, err = replayBody(req); err != nil {
				return nil, err
			}
		}
		resp, err = base.RoundTrip(r2)
	}
	if err == nil {
		st.gotHeaders = true
		st.ttfb = rt.p.now().Sub(st.start)
		st.status = resp.StatusCode
	}
	return resp, err
}

// finish records a finished request in its revision's measurements.
func (p *Proxy) finish(st *reqState) {
	end := p.now()
	lat := end.Sub(st.start)
	var class int
	is5xx := false
	switch {
	case st.failed:
		class = classError
	case st.clientGone:
		class = 4 // 499: the client went away
	default:
		class = classIndex(st.status)
		is5xx = st.status >= 500
	}
	// Metrics first: tests wait for Stats, then read the metrics.
	p.metrics.observe(st.pool, class, lat, st.ttfb, st.gotHeaders, st.firstToken, st.gotBody)
	st.pool.stats.recordEnded(st.start, end.Unix(), lat, st.ttfb, st.gotHeaders, st.firstToken, st.gotBody, is5xx, st.failed)
}

// firstTokenBody notes when the first byte of a response body is read on the ReverseProxy
// path, which passes it on to the client at once.
type firstTokenBody struct {
	rc  io.ReadCloser
	st  *reqState
	now func() time.Time
}

func (b *firstTokenBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if n > 0 && !b.st.gotBody {
		if b.st.pool != nil {
			b.st.bodyBegun(b.now())
		} else { // a mirrored copy: only timed
			b.st.gotBody, b.st.firstToken = true, b.now().Sub(b.st.start)
		}
	}
	return n, err
}

func (b *firstTokenBody) Close() error { return b.rc.Close() }

func codeClass(code int) string { return classNames[classIndex(code)] }

// classError is the index of the "error" status class; 1 to 5 are 1xx to 5xx.
const classError = 0

var classNames = [...]string{classError: "error", 1: "1xx", 2: "2xx", 3: "3xx", 4: "4xx", 5: "5xx"}

// classIndex is the index in classNames of code's status class.
func classIndex(code int) int {
	if code >= 100 && code < 600 {
		return code / 100
	}
	return classError
}
