package proxy

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
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

// rawUpstream is an instance that answers every request with the same small JSON, without
// allocating: the server benchmarks' allocations are then the proxy's and its server's.
func rawUpstream(b *testing.B) string {
	b.Helper()
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nDate: Fri, 27 Nov 2026 09:00:00 GMT\r\nContent-Length: 11\r\n\r\n{\"ok\":true}")
	return serveConns(b, func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			if err := skipHead(br); err != nil {
				return
			}
			if _, err := c.Write(resp); err != nil {
				return
			}
		}
	})
}

// skipHead reads a message head and returns its Content-Length (0 when none).
func skipHead(br *bufio.Reader) error {
	_, err := readHead(br)
	return err
}

func readHead(br *bufio.Reader) (int, error) {
	n := 0
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return 0, err
		}
		if len(line) <= 2 {
			return n, nil
		}
		if len(line) > 16 && (line[0] == 'C' || line[0] == 'c') && strings.EqualFold(string(line[:15]), "Content-Length:") {
			n, _ = strconv.Atoi(strings.TrimSpace(string(line[15:])))
		}
	}
}

// benchServer serves a proxy like benchProxy's (to two raw instances) with NewServer.
func benchServer(b *testing.B, s Settings) string {
	b.Helper()
	p := New("bench", Options{Logger: quietLogger()})
	b.Cleanup(p.Close)
	p.SetSettings(s)
	p.SetTable(Table{
		Pools: []Pool{
			{Revision: 1, Role: "stable", Weight: 90, Backends: []Backend{{ID: "s", Addr: rawUpstream(b)}}},
			{Revision: 2, Role: "canary", Weight: 10, Backends: []Backend{{ID: "c", Addr: rawUpstream(b)}}},
		},
		HeaderRoutes: []HeaderRoute{{Name: "h", Match: []Match{{Header: "x-version", Exact: "canary"}}, Revision: 2}},
	})
	srv := NewServer(p, ServerConfig{Logger: quietLogger()})
	ln := serveLocal(b, srv)
	return ln.Addr().String()
}

const benchRequest = "GET /v1/chat?message=hi HTTP/1.1\r\nHost: rollout.local\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n"

// benchClient sends one keep-alive request at a time on its own connection.
func benchClient(b *testing.B, addr string) func() {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	br := bufio.NewReader(c)
	req := []byte(benchRequest)
	return func() {
		if _, err := c.Write(req); err != nil {
			b.Fatal(err)
		}
		n, err := readHead(br)
		if err == nil {
			_, err = br.Discard(n)
		}
		if err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkServer is one GET through the proxy's server (NewServer, a real client
// connection kept alive) and the 90/10 split to loopback instances: "fast" is the fast
// server, "nethttp" net/http's server (DisableFastServer).
func BenchmarkServer(b *testing.B) {
	for _, tc := range []struct {
		name string
		s    Settings
	}{{"fast", Settings{}}, {"nethttp", Settings{DisableFastServer: true}}} {
		b.Run(tc.name, func(b *testing.B) {
			do := benchClient(b, benchServer(b, tc.s))
			b.ReportAllocs()
			for b.Loop() {
				do()
			}
		})
		b.Run(tc.name+"-parallel", func(b *testing.B) {
			addr := benchServer(b, tc.s)
			b.ReportAllocs()
			b.SetParallelism(8)
			b.RunParallel(func(pb *testing.PB) {
				do := benchClient(b, addr)
				for pb.Next() {
					do()
				}
			})
		})
	}
}
