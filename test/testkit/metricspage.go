package testkit

import (
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
)

// MetricsPage is an instance serving a Prometheus text page, which the test changes, at the
// given paths.
type MetricsPage struct {
	mu   sync.Mutex
	text string
	srv  *httptest.Server
}

// NewMetricsPage serves text at paths until the test ends; other paths are not found.
func NewMetricsPage(t testing.TB, text string, paths ...string) *MetricsPage {
	p := &MetricsPage{text: text}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !slices.Contains(paths, r.URL.Path) {
			http.NotFound(w, r)
			return
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		io.WriteString(w, p.text)
	}))
	t.Cleanup(p.srv.Close)
	return p
}

// Set changes the page.
func (p *MetricsPage) Set(text string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.text = text
}

// Addr is the instance's host:port.
func (p *MetricsPage) Addr() string { return strings.TrimPrefix(p.srv.URL, "http://") }
