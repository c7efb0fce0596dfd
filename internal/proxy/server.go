package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"ramp.dev/ramp/internal/proxy/fast"
)

// DefaultMaxHeaderBytes bounds a request's headers when ServerConfig.MaxHeaderBytes is zero.
const DefaultMaxHeaderBytes = 64 << 10

// ServerConfig configures the HTTP server of one of a rollout's listeners.
type ServerConfig struct {
	// MaxHeaderBytes bounds the request line and headers; a larger request is answered 431.
	// Zero means DefaultMaxHeaderBytes.
	MaxHeaderBytes int
	// TLS terminates TLS (HTTP/1.1 and HTTP/2) with its certificate. Nil means plain HTTP.
	TLS *CertReloader
	// Logger receives the server's errors. Nil means slog.Default().
	Logger *slog.Logger
	// HeaderTimeout bounds reading a request's line and headers, from their first byte (from
	// the connection's start for its first request); the connection is then closed without
	// an answer. Zero means DefaultHeaderTimeout; negative means no limit.
	HeaderTimeout time.Duration
	// IdleTimeout bounds the wait for the next request on a kept-alive connection; the
	// connection is then closed. It never runs while an answer is being sent. Zero means
	// DefaultIdleTimeout; negative means no limit.
	IdleTimeout time.Duration
	// WriteTimeout bounds each write to the client, as nginx's send_timeout: a write that
	// makes no progress for this long closes the connection (and the instance's connection
	// of the answer in flight). It is no deadline on a whole answer: a stream that the
	// client keeps reading runs for as long as it lasts. Over HTTP/2 it bounds each write of
	// each stream too (a stalled stream is reset). Zero means DefaultWriteTimeout; negative
	// means no limit.
	WriteTimeout time.Duration
}

// The client-side timeouts when ServerConfig leaves them at zero.
const (
	DefaultHeaderTimeout = 30 * time.Second
	DefaultIdleTimeout   = 75 * time.Second // nginx's keepalive_timeout
	DefaultWriteTimeout  = 60 * time.Second // nginx's send_timeout
)

// orDefault is d, or def when d is zero; a negative d (no limit) is 0.
func orDefault(d, def time.Duration) time.Duration {
	switch {
	case d == 0:
		return def
	case d < 0:
		return 0
	}
	return d
}

// Server is the HTTP server of one of a rollout's listeners. In front of a handler that
// opts in with FastServable (a Proxy, its PreviewHandler) without TLS, it reads plain
// HTTP/1.1 requests itself (fast.Server) and hands every other connection to the embedded
// http.Server; otherwise the embedded server serves everything. Shutdown and Close cover
// both.
type Server struct {
	*http.Server
	fast         *fast.Server // nil when net/http serves every connection
	writeTimeout time.Duration
}

// NewServer returns the server for a listener in front of h. Serve it with Serve. Its client
// timeouts (ServerConfig's HeaderTimeout, IdleTimeout and WriteTimeout) bound a request's
// head, the wait between requests and each write's progress, never a whole request or
// answer: answers may stream for minutes.
func NewServer(h http.Handler, c ServerConfig) *Server {
	log := c.Logger
	if log == nil {
		log = slog.Default()
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: orDefault(c.HeaderTimeout, DefaultHeaderTimeout),
		IdleTimeout:       orDefault(c.IdleTimeout, DefaultIdleTimeout),
		MaxHeaderBytes:    c.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	if srv.MaxHeaderBytes <= 0 {
		srv.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	// net/http's WriteTimeout is a deadline on a whole answer, which would cut streams:
	// each write's progress is bounded by fast.ClientListener instead.
	s := &Server{Server: srv, writeTimeout: orDefault(c.WriteTimeout, DefaultWriteTimeout)}
	if c.TLS != nil {
		if s.writeTimeout > 0 {
			srv.Handler = streamTimeout{h: h, d: s.writeTimeout}
		}
		srv.TLSConfig = &tls.Config{
			MinVersion:     tls.VersionTLS12,
			GetCertificate: c.TLS.GetCertificate,
			NextProtos:     []string{"h2", "http/1.1"},
		}
		return s
	}
	if fh, ok := h.(FastServable); ok {
		if e := fh.FastEndpoint(); e.p != nil {
			s.fast = fast.NewServer(e.newConn, srv, s.writeTimeout)
		}
	}
	if s.fast == nil {
		// Not silent: a middleware around a Proxy that does not opt in costs every request
		// net/http's server.
		log.Warn("fast server off: the handler does not opt in with proxy.FastServable; net/http serves every request",
			"handler", fmt.Sprintf("%T", h))
	}
	return s
}

// FastServable is implemented by a handler that lets the fast server (fast.Server) read
// its plain HTTP/1.1 requests and hand them to a Proxy directly. A Proxy and its
// PreviewHandler implement it. A handler that wraps one (a middleware) opts in by
// implementing it too, usually by returning the wrapped handler's endpoint: it then accepts
// that the requests the fast server serves reach the Proxy without going through its own
// ServeHTTP, which still sees every connection net/http serves (TLS, HTTP/2, and whatever
// the fast server hands over). A handler that does not implement it (or returns the zero
// FastEndpoint) is served by net/http alone: every request goes through its ServeHTTP, with
// the same answers, at net/http's cost per request.
type FastServable interface {
	FastEndpoint() FastEndpoint
}

// FastEndpoint is where the fast server hands the requests it reads: a Proxy, for its
// weighted routes or for its preview revision. The zero value is none.
type FastEndpoint struct {
	p       *Proxy
	preview bool
}

// newConn makes the fast server's handler of one client connection.
func (e FastEndpoint) newConn() fast.ConnHandler { return &connServer{p: e.p, preview: e.preview} }

// connServer serves the requests the fast server reads on one client connection (the
// serving seam): the settings are those in force when the request's head was read, and the
// request's state and id are stored here, reused from request to request.
type connServer struct {
	p       *Proxy
	preview bool
	up      *upstreams
	st      reqState
	reqID   [1]string // backs the request's X-Request-Id when the proxy made it
}

// Take accepts the request while the fast path and the fast server are on.
func (c *connServer) Take() bool {
	up := c.p.up.Load()
	if up.fast == nil || up.s.DisableFastServer {
		return false
	}
	c.up = up
	return true
}

func (c *connServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	st := &c.st
	*st = reqState{}
	c.p.serveState(w, r, st, c.preview, c.up, &c.reqID)
}

// Serve serves srv on ln, over TLS when srv has a TLS config. It returns
// http.ErrServerClosed after Shutdown or Close.
func Serve(srv *Server, ln net.Listener) error {
	if srv.TLSConfig != nil {
		return srv.ServeTLS(srv.clientListener(ln), "", "")
	}
	if srv.fast == nil || srv.ReadTimeout != 0 || srv.WriteTimeout != 0 {
		return srv.Server.Serve(srv.clientListener(ln))
	}
	return srv.fast.Serve(ln)
}

// clientListener wraps ln's connections so that each write to a client is bounded by the
// write timeout (net/http has no such setting).
func (s *Server) clientListener(ln net.Listener) net.Listener {
	return fast.ClientListener(ln, s.writeTimeout)
}

// streamTimeout applies the write timeout to each HTTP/2 answer: a stalled stream (its flow
// control window spent on a client that reads other streams, or none) blocks its writes
// while the connection's writes go on, so the connection's write timeout does not see it.
type streamTimeout struct {
	h http.Handler
	d time.Duration
}

func (h streamTimeout) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.ProtoMajor != 2 {
		h.h.ServeHTTP(w, r)
		return
	}
	sw := &streamWriter{ResponseWriter: w, rc: http.NewResponseController(w), d: h.d}
	sw.t = time.AfterFunc(time.Hour, sw.expire)
	sw.t.Stop()
	defer func() {
		sw.t.Stop()
		sw.mu.Lock()
		sw.done = true // the ResponseWriter must not be used any more
		sw.mu.Unlock()
	}()
	h.h.ServeHTTP(sw, r)
}

// streamWriter resets its HTTP/2 stream when a write or flush has not returned after d. Its
// timer runs only during writes: net/http's stream write deadline is a deadline on the
// rest of the answer, which would cut a stream at its first pause longer than d.
type streamWriter struct {
	http.ResponseWriter
	rc *http.ResponseController
	d  time.Duration
	t  *time.Timer

	mu   sync.Mutex
	done bool
}

func (w *streamWriter) expire() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.rc.SetWriteDeadline(time.Unix(1, 0)) // in the past: the stream is reset at once
	}
}

func (w *streamWriter) Write(p []byte) (int, error) {
	w.t.Reset(w.d)
	n, err := w.ResponseWriter.Write(p)
	w.t.Stop()
	return n, err
}

func (w *streamWriter) FlushError() error {
	w.t.Reset(w.d)
	err := w.rc.Flush()
	w.t.Stop()
	return err
}

func (w *streamWriter) Flush() { w.FlushError() }

func (w *streamWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Shutdown stops the server gracefully as http.Server.Shutdown: it closes the listeners,
// then each connection once it has no request in flight, and returns when none is left or
// ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	if s.fast == nil {
		return s.Server.Shutdown(ctx)
	}
	s.fast.CloseListeners()
	errc := make(chan error, 1)
	go func() { errc <- s.Server.Shutdown(ctx) }()
	err := s.fast.Shutdown(ctx)
	if err2 := <-errc; err == nil {
		err = err2
	}
	return err
}

// Close closes the listeners and every connection at once, as http.Server.Close.
func (s *Server) Close() error {
	if s.fast != nil {
		s.fast.Close()
	}
	return s.Server.Close()
}

// CertReloader serves a certificate and key file pair, and loads them again when either
// file's modification time or size changes (checked at each TLS handshake). When the new
// files do not load (a half-written pair), the previous certificate stays in use.
type CertReloader struct {
	certFile, keyFile string
	log               *slog.Logger

	mu       sync.Mutex
	cert     *tls.Certificate
	certStat fileStamp
	keyStat  fileStamp
	failed   error // the last reload error, logged once per stamp
}

type fileStamp struct {
	mod  time.Time
	size int64
}

func stampOf(path string) (fileStamp, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}, err
	}
	return fileStamp{fi.ModTime(), fi.Size()}, nil
}

// NewCertReloader loads the pair once; it fails when they do not load. A nil logger means
// slog.Default().
func NewCertReloader(certFile, keyFile string, log *slog.Logger) (*CertReloader, error) {
	if log == nil {
		log = slog.Default()
	}
	c := &CertReloader{certFile: certFile, keyFile: keyFile, log: log}
	if err := c.reload(); err != nil {
		return nil, err
	}
	return c, nil
}

// reload loads the files when their stamps changed. c.mu is held or c is not shared yet.
func (c *CertReloader) reload() error {
	cs, err := stampOf(c.certFile)
	if err != nil {
		return fmt.Errorf("certificate file: %w", err)
	}
	ks, err := stampOf(c.keyFile)
	if err != nil {
		return fmt.Errorf("key file: %w", err)
	}
	if c.cert != nil && cs == c.certStat && ks == c.keyStat {
		return nil
	}
	cert, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
	if err != nil {
		return fmt.Errorf("load certificate %s and key %s: %w", c.certFile, c.keyFile, err)
	}
	c.cert, c.certStat, c.keyStat = &cert, cs, ks
	return nil
}

// GetCertificate is for tls.Config.GetCertificate.
func (c *CertReloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.reload(); err != nil {
		if c.failed == nil || c.failed.Error() != err.Error() {
			c.log.Warn("certificate not reloaded; keeping the previous one", "err", err)
		}
		c.failed = err
	} else {
		c.failed = nil
	}
	if c.cert == nil {
		return nil, errors.New("no certificate")
	}
	return c.cert, nil
}
