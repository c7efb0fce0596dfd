package proxy

import (
	"context"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Mirror defaults.
const (
	defaultMirrorMaxBody       = 64 << 10
	defaultMirrorMaxConcurrent = 16
	defaultMirrorTimeout       = 30 * time.Second
)

// MirrorHeader is set on every mirrored copy, so an instance can tell a copy from a real
// request (and skip side effects).
const MirrorHeader = "X-Ramp-Mirror"

// Mirror copies a share of the requests that the weights or routes send to other revisions
// to the instances of one revision. The copies' answers are measured (MirrorStats, and
// ramp_mirror_requests_total) and thrown away: a copy never delays or fails the real
// request. Copies are bounded: by body size, by the number in flight, and by time.
type Mirror struct {
	// Revision receives the copies; when it has no ready instance, copies are dropped.
	Revision int64
	// Percent of the requests copied, 0 to 100.
	Percent int32
	// MaxBodyBytes is the largest request body copied; requests with a larger body, or one
	// of unknown length, are not copied (and counted as dropped). Zero means 64 KiB.
	MaxBodyBytes int64
	// MaxConcurrent is the number of copies in flight; a copy beyond it is dropped and
	// counted. Zero means 16.
	MaxConcurrent int
	// Timeout bounds one copy, answer body included. Zero means 30 seconds.
	Timeout time.Duration
}

type mirrorTable struct {
	cfg   Mirror
	pools []*pool
}

func newMirrorTable(m *Mirror, byRev map[int64][]*pool) *mirrorTable {
	if m == nil || m.Percent <= 0 || m.Revision == 0 {
		return nil
	}
	cfg := *m
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = defaultMirrorMaxBody
	}
	if cfg.MaxConcurrent <= 0 {
		cfg.MaxConcurrent = defaultMirrorMaxConcurrent
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = defaultMirrorTimeout
	}
	return &mirrorTable{cfg: cfg, pools: byRev[m.Revision]}
}

// mirrorState is the proxy's mirroring: copies in flight and their measurements.
type mirrorState struct {
	p        *Proxy
	inflight atomic.Int64
	dropped  atomic.Int64
	counter  *prometheus.CounterVec

	mu    sync.Mutex
	stats map[int64]*revStats
}

func (m *mirrorState) init(p *Proxy) {
	m.p = p
	m.stats = map[int64]*revStats{}
	m.counter = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name:        "ramp_mirror_requests_total",
		Help:        "Mirrored copies of requests, by revision, role and result (a status class, error when the instance failed to answer, dropped when the copy was not sent).",
		ConstLabels: prometheus.Labels{"rollout": p.rollout},
	}, []string{"revision", "role", "result"})
}

// hopHeaders are not copied to a mirrored request.
var hopHeaders = []string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

// maybe copies r to mt's revision when r falls in the mirrored share. It returns at once.
func (m *mirrorState) maybe(mt *mirrorTable, r *http.Request) {
	if rand.IntN(100) >= int(mt.cfg.Percent) || r.Header.Get("Upgrade") != "" {
		return
	}
	rev := strconv.FormatInt(mt.cfg.Revision, 10)
	role := ""
	if len(mt.pools) > 0 {
		role = mt.pools[0].role
	}
	hasBody := r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0
	if hasBody && (r.GetBody == nil || r.ContentLength < 0 || r.ContentLength > mt.cfg.MaxBodyBytes) {
		m.drop(rev, role)
		return
	}
	if m.inflight.Add(1) > int64(mt.cfg.MaxConcurrent) {
		m.inflight.Add(-1)
		m.drop(rev, role)
		return
	}
	pl, t, ok := firstReady(mt.pools, nil)
	if !ok {
		m.inflight.Add(-1)
		m.drop(rev, role)
		return
	}
	body := io.ReadCloser(http.NoBody)
	if hasBody {
		b, err := r.GetBody()
		if err != nil {
			t.b.done()
			m.inflight.Add(-1)
			m.drop(rev, role)
			return
		}
		body = b
	}
	h := r.Header.Clone()
	for _, c := range h.Values("Connection") {
		for _, name := range strings.Split(c, ",") {
			h.Del(strings.TrimSpace(name))
		}
	}
	for _, name := range hopHeaders {
		h.Del(name)
	}
	h.Set(MirrorHeader, "1")
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		h.Set("X-Forwarded-For", host)
	}
	up := m.p.up.Load()
	go m.send(mt.cfg.Timeout, up, pl, t, r.Method, r.Host, r.URL.RequestURI(), r.ContentLength, h, body)
}

func (m *mirrorState) drop(rev, role string) {
	m.dropped.Add(1)
	m.counter.WithLabelValues(rev, role, "dropped").Inc()
}

// send makes one copy and measures its answer.
func (m *mirrorState) send(timeout time.Duration, up *upstreams, pl *pool, t target, method, host, uri string,
	length int64, h http.Header, body io.ReadCloser) {
	defer m.inflight.Add(-1)
	defer t.b.done()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	ctx = guardReuse(ctx, nil)
	start := m.p.now()
	req, err := http.NewRequestWithContext(ctx, method, "http://"+t.addr+uri, body)
	if err != nil {
		body.Close()
		m.record(pl, start, 0, false, 0, 0, true)
		return
	}
	req.Header, req.Host, req.ContentLength = h, host, length
	if length == 0 {
		req.Body = http.NoBody
	}
	resp, err := up.transportFor(req).RoundTrip(req)
	if err != nil {
		m.record(pl, start, 0, false, 0, 0, true)
		return
	}
	ttfb := m.p.now().Sub(start)
	var st reqState // only its first-token fields
	st.start = start
	fb := firstTokenBody{rc: resp.Body, st: &st, now: m.p.now}
	_, err = io.Copy(io.Discard, &fb)
	resp.Body.Close()
	first := time.Duration(-1)
	if st.gotBody {
		first = st.firstToken
	}
	m.record(pl, start, ttfb, true, first, resp.StatusCode, err != nil)
}

// record records one copy's answer; first is the time to its first body byte, negative when
// it had none.
func (m *mirrorState) record(pl *pool, start time.Time, ttfb time.Duration, gotHeaders bool, first time.Duration, status int, failed bool) {
	end := m.p.now()
	m.mu.Lock()
	s := m.stats[pl.rev]
	if s == nil {
		s = &revStats{}
		m.stats[pl.rev] = s
	}
	m.mu.Unlock()
	s.record(end.Unix(), end.Sub(start), ttfb, gotHeaders, first, first >= 0 && gotHeaders, !failed && status >= 500, failed)
	result := "error"
	if !failed {
		result = codeClass(status)
	}
	m.counter.WithLabelValues(pl.obs.rev, pl.role, result).Inc()
}

// MirrorStats returns the measurements of the copies mirrored to revision since since (at
// most the last 10 minutes). Real requests are not in them; Stats has those.
func (p *Proxy) MirrorStats(revision int64, since time.Time) RequestStats {
	p.mirrors.mu.Lock()
	s := p.mirrors.stats[revision]
	p.mirrors.mu.Unlock()
	return p.window(s, since)
}

// MirrorDropped returns the number of copies not sent since the proxy started: over the
// concurrency or body limit, or with no ready instance to take them.
func (p *Proxy) MirrorDropped() int64 { return p.mirrors.dropped.Load() }

// MirrorInFlight returns the number of copies in flight.
func (p *Proxy) MirrorInFlight() int64 { return p.mirrors.inflight.Load() }
