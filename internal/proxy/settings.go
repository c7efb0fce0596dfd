package proxy

import (
	"errors"
	"net"
	"net/http"
	"time"

	"ramp.dev/ramp/internal/proxy/fast"
)

// Settings are a rollout's upstream connection settings. SetSettings changes them at run
// time; requests in flight keep the settings they started with.
type Settings struct {
	// ConnectTimeout bounds connecting to an instance. Zero means 5 seconds.
	ConnectTimeout time.Duration
	// FirstByteTimeout bounds the wait for an instance's response headers, from the moment
	// the request is sent; when it runs out the client gets 504. Zero means no limit
	// (answers that take minutes are normal).
	FirstByteTimeout time.Duration
	// IdleTimeout bounds the silence between two reads of a response body; when it runs
	// out the response is cut and counted as an upstream failure. Zero means no limit.
	IdleTimeout time.Duration
	// H2C speaks HTTP/2 without TLS ("prior knowledge") to the instances. False means
	// HTTP/1.1. WebSocket upgrades always use HTTP/1.1.
	H2C bool
	// MaxRequestBodyBytes is the largest request body accepted; a larger one is answered
	// 413. Zero means no limit.
	MaxRequestBodyBytes int64
	// MaxResponseHeaderBytes bounds an instance's answer head (status line and headers);
	// over it the client gets 502 and the connection is closed. Zero means
	// DefaultMaxResponseHeaderBytes.
	MaxResponseHeaderBytes int
	// DisableFastPath sends every request through httputil.ReverseProxy and net/http's
	// Transport. False means plain HTTP/1.1 requests take the fast path (fast.Pool), which
	// forwards on the client connection's goroutine; upgrades, h2c, Expect: 100-continue
	// and request trailers always take the ReverseProxy path.
	DisableFastPath bool
	// DisableFastServer hands every client connection of a Server to net/http's server.
	// False means a Server built by NewServer for a Proxy (without TLS) reads plain
	// HTTP/1.1 requests itself (fast.Server) and hands the rest to net/http. The fast
	// server also needs the fast path: with DisableFastPath or H2C, net/http serves.
	DisableFastServer bool
}

// DefaultMaxResponseHeaderBytes is the answer head limit when Settings leave it zero: 64 KiB,
// as large as the request head limit (heads are a few hundred bytes in practice; nginx's
// proxy_buffer_size is 4-8 KiB, Envoy's default 60 KiB, net/http's 10 MiB).
const DefaultMaxResponseHeaderBytes = 64 << 10

// maxResponseHead is the answer head limit in force.
func (u *upstreams) maxResponseHead() int {
	if u.s.MaxResponseHeaderBytes > 0 {
		return u.s.MaxResponseHeaderBytes
	}
	return DefaultMaxResponseHeaderBytes
}

// upstreams are the transports built from one Settings.
type upstreams struct {
	s   Settings
	h1  *http.Transport
	h2c *http.Transport // nil unless s.H2C
	// fast holds the fast path's idle connections; nil when the fast path is off (h2c
	// upstreams, or DisableFastPath).
	fast *fast.Pool
}

// newUpstreams builds the transports of s; trustXF is the proxy's TrustForwardedHeaders.
func newUpstreams(s Settings, trustXF bool) *upstreams {
	connect := s.ConnectTimeout
	if connect <= 0 {
		connect = 5 * time.Second
	}
	dialer := &net.Dialer{Timeout: connect, KeepAlive: 30 * time.Second}
	maxHead := s.MaxResponseHeaderBytes
	if maxHead <= 0 {
		maxHead = DefaultMaxResponseHeaderBytes
	}
	mk := func() *http.Transport {
		return &http.Transport{
			Proxy:                  nil, // instances are local; never go through an environment proxy
			DialContext:            dialer.DialContext,
			MaxIdleConns:           1024,
			MaxIdleConnsPerHost:    256,
			IdleConnTimeout:        90 * time.Second,
			ExpectContinueTimeout:  time.Second,
			DisableCompression:     true, // pass encodings through untouched
			MaxResponseHeaderBytes: int64(maxHead),
		}
	}
	u := &upstreams{s: s, h1: mk()}
	u.h1.DialContext = guardDial(dialer.DialContext) // reuseguard.go
	if !s.H2C && !s.DisableFastPath {
		u.fast = fast.NewPool(fast.PoolConfig{
			Dialer:           dialer,
			FirstByteTimeout: s.FirstByteTimeout,
			IdleTimeout:      s.IdleTimeout,
			MaxResponseHead:  maxHead,
			TrustForwarded:   trustXF,
		})
	}
	if s.H2C {
		u.h2c = mk()
		u.h2c.Protocols = new(http.Protocols)
		u.h2c.Protocols.SetUnencryptedHTTP2(true)
	}
	return u
}

// closeIdle closes the idle connections; final (the settings were replaced) also closes
// the fast path's connections still in use as they are handed back.
func (u *upstreams) closeIdle(final bool) {
	if u.fast != nil {
		u.fast.CloseIdle(final)
	}
	u.h1.CloseIdleConnections()
	if u.h2c != nil {
		u.h2c.CloseIdleConnections()
	}
}

// transportFor returns the transport for req: HTTP/1.1 for upgrades, else per the settings.
func (u *upstreams) transportFor(req *http.Request) *http.Transport {
	if u.h2c != nil && req.Header.Get("Upgrade") == "" {
		return u.h2c
	}
	return u.h1
}

// SetSettings replaces the upstream settings. When they change, new transports are built
// and the old ones' idle connections closed; requests in flight finish on the old ones.
func (p *Proxy) SetSettings(s Settings) {
	p.mu.Lock()
	defer p.mu.Unlock()
	old := p.up.Load()
	if old != nil && old.s == s {
		return
	}
	p.up.Store(newUpstreams(s, p.trustXF))
	if old != nil {
		old.closeIdle(true)
	}
}

// Settings returns the settings in force.
func (p *Proxy) Settings() Settings { return p.up.Load().s }

// The deadlines this proxy enforces on an upstream, the same on both ways of forwarding:
// net.Errors with Timeout true, so the client gets 504.
var (
	errFirstByteTimeout = fast.ErrFirstByteTimeout
	errIdleTimeout      = fast.ErrIdleTimeout
)

// idleBody cuts a response body that stays silent longer than d by cancelling the request.
type idleBody struct {
	rc interface {
		Read([]byte) (int, error)
		Close() error
	}
	d     time.Duration
	timer *time.Timer
}

func (b *idleBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	b.timer.Reset(b.d)
	return n, err
}

func (b *idleBody) Close() error {
	b.timer.Stop()
	return b.rc.Close()
}

// isTimeout reports whether err is a deadline running out.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
