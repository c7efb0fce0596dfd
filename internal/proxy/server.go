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
}

// Server is the HTTP server of one of a rollout's listeners. In front of a Proxy (or its
// PreviewHandler) without TLS, it reads plain HTTP/1.1 requests itself (fastserver.go) and
// hands every other connection to the embedded http.Server; otherwise the embedded server
// serves everything. Shutdown and Close cover both.
type Server struct {
	*http.Server
	fast *fastServer // nil when net/http serves every connection
}

// NewServer returns the server for a listener in front of h. Serve it with Serve. It sets no
// read, write or idle timeout on the client side beyond the headers' 30 seconds: answers
// may stream for minutes.
func NewServer(h http.Handler, c ServerConfig) *Server {
	log := c.Logger
	if log == nil {
		log = slog.Default()
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 30 * time.Second,
		MaxHeaderBytes:    c.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	if srv.MaxHeaderBytes <= 0 {
		srv.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	s := &Server{Server: srv}
	if c.TLS != nil {
		srv.TLSConfig = &tls.Config{
			MinVersion:     tls.VersionTLS12,
			GetCertificate: c.TLS.GetCertificate,
			NextProtos:     []string{"h2", "http/1.1"},
		}
		return s
	}
	switch h := h.(type) {
	case *Proxy:
		s.fast = newFastServer(h, false, srv)
	case previewHandler:
		s.fast = newFastServer(h.p, true, srv)
	}
	return s
}

// Serve serves srv on ln, over TLS when srv has a TLS config. It returns
// http.ErrServerClosed after Shutdown or Close.
func Serve(srv *Server, ln net.Listener) error {
	if srv.TLSConfig != nil {
		return srv.ServeTLS(ln, "", "")
	}
	if srv.fast == nil || srv.ReadTimeout != 0 || srv.WriteTimeout != 0 {
		return srv.Server.Serve(ln)
	}
	return srv.fast.serve(ln)
}

// Shutdown stops the server gracefully as http.Server.Shutdown: it closes the listeners,
// then each connection once it has no request in flight, and returns when none is left or
// ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	if s.fast == nil {
		return s.Server.Shutdown(ctx)
	}
	s.fast.closeListeners()
	errc := make(chan error, 1)
	go func() { errc <- s.Server.Shutdown(ctx) }()
	err := s.fast.shutdown(ctx)
	if err2 := <-errc; err == nil {
		err = err2
	}
	return err
}

// Close closes the listeners and every connection at once, as http.Server.Close.
func (s *Server) Close() error {
	if s.fast != nil {
		s.fast.close()
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
