package proxy

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

// The request path's cost without a client: ServeHTTP is called directly with a minimal
// ResponseWriter, so ns/op and allocs/op are the proxy's own (plus net/http's client side
// and a real loopback upstream). The side-by-side benchmark against nginx and HAProxy is
// bench/proxy.

// discardWriter is the cheapest http.ResponseWriter.
type discardWriter struct {
	h    http.Header
	code int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *discardWriter) WriteHeader(code int)        { w.code = code }
func (w *discardWriter) Flush()                      {}

func benchProxy(b *testing.B) (*Proxy, *http.Request) {
	b.Helper()
	body := []byte(`{"ok":true}`)
	h := func(w http.ResponseWriter, r *http.Request) { w.Write(body) }
	s1, s2 := httptest.NewServer(http.HandlerFunc(h)), httptest.NewServer(http.HandlerFunc(h))
	b.Cleanup(s1.Close)
	b.Cleanup(s2.Close)
	p := New("bench", Options{Logger: quietLogger()})
	b.Cleanup(p.Close)
	p.SetTable(Table{
		Pools: []Pool{
			{Revision: 1, Role: "stable", Weight: 90, Backends: []Backend{{ID: "s", Addr: s1.Listener.Addr().String()}}},
			{Revision: 2, Role: "canary", Weight: 10, Backends: []Backend{{ID: "c", Addr: s2.Listener.Addr().String()}}},
		},
		HeaderRoutes: []HeaderRoute{{Name: "h", Match: []Match{{Header: "x-version", Exact: "canary"}}, Revision: 2}},
	})
	r := httptest.NewRequest(http.MethodGet, "http://rollout.local/v1/chat?message=hi", nil)
	r.RemoteAddr = "127.0.0.1:40000"
	r.Header.Set("User-Agent", "bench")
	r.Header.Set("Accept", "*/*")
	return p, r
}

// BenchmarkServeHTTP is one proxied GET through the 90/10 split to a loopback upstream.
func BenchmarkServeHTTP(b *testing.B) {
	p, r := benchProxy(b)
	w := &discardWriter{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		clear(w.h)
		w.code = 0
		p.ServeHTTP(w, r)
	}
	if w.code != 0 && w.code != http.StatusOK {
		b.Fatalf("status %d", w.code)
	}
}

// BenchmarkServeHTTPParallel is the same with concurrent requests (GOMAXPROCS goroutines).
func BenchmarkServeHTTPParallel(b *testing.B) {
	p, r := benchProxy(b)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		w := &discardWriter{h: http.Header{}}
		for pb.Next() {
			clear(w.h)
			p.ServeHTTP(w, r)
		}
	})
}

// BenchmarkRoute is the choice of an instance alone: the header routes (no match) and the
// weighted pick, then the in-flight release.
func BenchmarkRoute(b *testing.B) {
	p, r := benchProxy(b)
	b.ReportAllocs()
	for b.Loop() {
		st := reqState{tbl: p.table.Load()}
		pl, t, ok := p.route(&st, r)
		if !ok {
			b.Fatal("no route")
		}
		t.b.done()
		_ = pl
	}
}

// BenchmarkFinish is recording one finished request (rolling window and Prometheus).
func BenchmarkFinish(b *testing.B) {
	p, _ := benchProxy(b)
	tbl := p.table.Load()
	st := &reqState{tbl: tbl, pool: tbl.pools[0], start: p.now(), status: 200, gotHeaders: true}
	b.ReportAllocs()
	for b.Loop() {
		p.finish(st)
	}
}

var _ io.Writer = (*discardWriter)(nil)
