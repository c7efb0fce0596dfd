package proxy

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// fastUpstream is an instance for the fast path's tests; conns counts the connections it
// accepted.
type fastUpstream struct {
	srv   *httptest.Server
	conns atomic.Int64
	hits  hitCounter
}

// hitCounter counts requests by path.
type hitCounter struct{ m [8]atomic.Int64 }

var fastPaths = map[string]int{"/reset": 0, "/echo": 1, "/ok": 2}

func (m *hitCounter) inc(path string) {
	if i, ok := fastPaths[path]; ok {
		m.m[i].Add(1)
	}
}
func (m *hitCounter) get(path string) int64 { return m.m[fastPaths[path]].Load() }

func newFastUpstream(t *testing.T) *fastUpstream {
	t.Helper()
	u := &fastUpstream{}
	big := bytes.Repeat([]byte("0123456789"), 10_000) // 100,000 bytes
	u.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.hits.inc(r.URL.Path)
		switch r.URL.Path {
		case "/echo": // the body back, and what the instance saw in headers
			b, err := io.ReadAll(r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			w.Header().Set("X-Got-Length", strconv.Itoa(len(b)))
			w.Header().Set("X-Got-Chunked", strconv.FormatBool(len(r.TransferEncoding) > 0))
			w.Header().Set("X-Got-Host", r.Host)
			w.Header().Set("X-Got-Secret", r.Header.Get("X-Secret"))
			w.Header().Set("X-Got-Forwarded", r.Header.Get("X-Forwarded-For")+"|"+r.Header.Get("X-Forwarded-Host")+"|"+r.Header.Get("X-Forwarded-Proto"))
			w.Header().Set("Content-Length", strconv.Itoa(len(b)))
			w.Write(b)
		case "/cl": // a known length, written in flushed pieces
			w.Header().Set("Content-Length", strconv.Itoa(len(big)))
			for i := 0; i < len(big); i += 10_000 {
				w.Write(big[i : i+10_000])
				w.(http.Flusher).Flush()
			}
		case "/chunked":
			for i := range 5 {
				fmt.Fprintf(w, "piece %d\n", i)
				w.(http.Flusher).Flush()
			}
		case "/nocontent":
			w.WriteHeader(http.StatusNoContent)
		case "/notmodified":
			w.Header().Set("ETag", `"v1"`)
			w.WriteHeader(http.StatusNotModified)
		case "/trailer":
			w.Header().Set("Trailer", "X-Sum")
			io.WriteString(w, "body")
			w.Header().Set("X-Sum", "42")
		case "/reset": // the request arrives, then the connection is reset
			resetConn(w)
		default:
			io.WriteString(w, "ok")
		}
	}))
	u.srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			u.conns.Add(1)
		}
	}
	u.srv.Start()
	t.Cleanup(u.srv.Close)
	return u
}

func (u *fastUpstream) backend() Backend {
	return Backend{ID: "a", Addr: u.srv.Listener.Addr().String()}
}

func fastProxy(t *testing.T, u *fastUpstream, s Settings) (*Proxy, front) {
	t.Helper()
	p := New("chat-api", Options{Logger: quietLogger()})
	p.SetSettings(s)
	p.SetTable(Table{Pools: []Pool{{Revision: 3, Weight: 100, Backends: []Backend{u.backend()}}}})
	t.Cleanup(p.Close)
	return p, serve(t, p)
}

// idleConns is the number of the fast path's idle connections to addr.
func idleConns(p *Proxy, addr string) int {
	fp := p.up.Load().fast
	if fp == nil {
		return -1
	}
	return fp.Idle(addr)
}

// TestFastPathBehaviour runs the same requests through the fast path and the ReverseProxy
// path: both must forward them alike.
func TestFastPathBehaviour(t *testing.T) {
	bigBody := bytes.Repeat([]byte("abcdefghij"), 500_000) // 5 MB: streamed, not buffered
	smallBody := bytes.Repeat([]byte("x"), 300_000)
	tests := []struct {
		name    string
		method  string
		path    string
		body    func() io.Reader // nil: no body
		hdr     map[string]string
		want    int
		check   func(t *testing.T, resp *http.Response, body []byte)
		wantLen int // -1: do not check
	}{
		{name: "content length streamed", method: "GET", path: "/cl", want: 200, wantLen: 100_000,
			check: func(t *testing.T, resp *http.Response, body []byte) {
				if resp.ContentLength != 100_000 {
					t.Errorf("content length %d, want 100000", resp.ContentLength)
				}
				if !bytes.Equal(body, bytes.Repeat([]byte("0123456789"), 10_000)) {
					t.Error("body differs")
				}
			}},
		{name: "HEAD keeps the length, sends no body", method: "HEAD", path: "/cl", want: 200, wantLen: 0,
			check: func(t *testing.T, resp *http.Response, _ []byte) {
				if resp.Header.Get("Content-Length") != "100000" {
					t.Errorf("Content-Length %q", resp.Header.Get("Content-Length"))
				}
			}},
		{name: "204", method: "GET", path: "/nocontent", want: 204, wantLen: 0},
		{name: "304", method: "GET", path: "/notmodified", want: 304, wantLen: 0,
			check: func(t *testing.T, resp *http.Response, _ []byte) {
				if resp.Header.Get("ETag") != `"v1"` {
					t.Errorf("ETag %q", resp.Header.Get("ETag"))
				}
			}},
		{name: "chunked response", method: "GET", path: "/chunked", want: 200, wantLen: -1,
			check: func(t *testing.T, resp *http.Response, body []byte) {
				if want := "piece 0\npiece 1\npiece 2\npiece 3\npiece 4\n"; string(body) != want {
					t.Errorf("body %q", body)
				}
				if resp.ContentLength != -1 {
					t.Errorf("content length %d, want chunked", resp.ContentLength)
				}
			}},
		{name: "large body of known length", method: "POST", path: "/echo", want: 200, wantLen: len(bigBody),
			body: func() io.Reader { return bytes.NewReader(bigBody) },
			check: func(t *testing.T, resp *http.Response, body []byte) {
				if sha256.Sum256(body) != sha256.Sum256(bigBody) {
					t.Error("echoed body differs")
				}
				if resp.Header.Get("X-Got-Chunked") != "false" {
					t.Error("known length sent chunked")
				}
			}},
		{name: "chunked request body", method: "POST", path: "/echo", want: 200, wantLen: len(smallBody),
			body: func() io.Reader { return io.MultiReader(bytes.NewReader(smallBody)) }, // hides the length
			check: func(t *testing.T, resp *http.Response, body []byte) {
				if !bytes.Equal(body, smallBody) {
					t.Error("echoed body differs")
				}
				if resp.Header.Get("X-Got-Chunked") != "true" {
					t.Error("unknown length not sent chunked")
				}
			}},
		{name: "empty POST", method: "POST", path: "/echo", want: 200, wantLen: 0},
		{name: "client asks to close", method: "GET", path: "/echo", want: 200, wantLen: 0,
			hdr: map[string]string{"Connection": "close"},
			check: func(t *testing.T, resp *http.Response, _ []byte) {
				if !resp.Close {
					t.Error("the proxy kept the client's connection open")
				}
			}},
		{name: "hop-by-hop headers removed, forwarded headers set", method: "GET", path: "/echo", want: 200, wantLen: 0,
			hdr: map[string]string{"Connection": "X-Secret", "X-Secret": "1", "X-Forwarded-For": "6.6.6.6"},
			check: func(t *testing.T, resp *http.Response, _ []byte) {
				if s := resp.Header.Get("X-Got-Secret"); s != "" {
					t.Errorf("instance got X-Secret %q", s)
				}
				if f := resp.Header.Get("X-Got-Forwarded"); !strings.HasPrefix(f, "127.0.0.1|127.0.0.1:") || !strings.HasSuffix(f, "|http") {
					t.Errorf("forwarded headers %q", f)
				}
				if h := resp.Header.Get("X-Got-Host"); !strings.HasPrefix(h, "127.0.0.1:") {
					t.Errorf("instance got Host %q", h)
				}
			}},
		{name: "response trailers", method: "GET", path: "/trailer", want: 200, wantLen: 4,
			check: func(t *testing.T, resp *http.Response, _ []byte) {
				if v := resp.Trailer.Get("X-Sum"); v != "42" {
					t.Errorf("trailer X-Sum %q", v)
				}
			}},
	}
	for _, path := range []struct {
		name string
		s    Settings
	}{{"fast", Settings{}}, {"reverseproxy", Settings{DisableFastPath: true}}} {
		t.Run(path.name, func(t *testing.T) {
			u := newFastUpstream(t)
			p, f := fastProxy(t, u, path.s)
			since := time.Now()
			for i, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					var body io.Reader
					if tc.body != nil {
						body = tc.body()
					}
					req, _ := http.NewRequest(tc.method, f.url+tc.path, body)
					for k, v := range tc.hdr {
						req.Header.Set(k, v)
					}
					resp, err := f.client.Do(req)
					if err != nil {
						t.Fatal(err)
					}
					b, err := io.ReadAll(resp.Body)
					resp.Body.Close()
					if err != nil {
						t.Fatalf("read body: %v", err)
					}
					if resp.StatusCode != tc.want || (tc.wantLen >= 0 && len(b) != tc.wantLen) {
						t.Fatalf("got %d with %d bytes, want %d with %d", resp.StatusCode, len(b), tc.want, tc.wantLen)
					}
					if resp.Header.Get(RevisionHeader) != "3" {
						t.Errorf("revision header %q", resp.Header.Get(RevisionHeader))
					}
					if tc.check != nil {
						tc.check(t, resp, b)
					}
					if s := statsOf(t, p, 3, since, int64(i+1)); s.Errors != 0 {
						t.Errorf("%d errors counted", s.Errors)
					}
				})
			}
			if path.s.DisableFastPath {
				return
			}
			// Every request above went through the fast path, on one connection it kept.
			if n := idleConns(p, u.backend().Addr); n != 1 {
				t.Errorf("%d idle fast-path connections, want 1", n)
			}
			if n := u.conns.Load(); n != 1 {
				t.Errorf("instance accepted %d connections, want 1 kept alive", n)
			}
		})
	}
}

func TestFastPathReusesConnections(t *testing.T) {
	u := newFastUpstream(t)
	p, f := fastProxy(t, u, Settings{})
	for range 20 {
		if code, body, _ := f.get(t, "/ok"); code != 200 || body != "ok" {
			t.Fatalf("got %d %q", code, body)
		}
	}
	if n := u.conns.Load(); n != 1 {
		t.Errorf("20 requests in a row took %d connections, want 1", n)
	}
	if n := idleConns(p, u.backend().Addr); n != 1 {
		t.Errorf("%d idle connections, want 1", n)
	}
	// SetTable without the instance closes its idle connections.
	p.SetTable(Table{})
	if n := idleConns(p, u.backend().Addr); n != 0 {
		t.Errorf("%d idle connections after the instance left, want 0", n)
	}
}

// TestFastPathStaleConnection: the instance closes an idle connection between two requests.
func TestFastPathStaleConnection(t *testing.T) {
	tests := []struct {
		name       string
		method     string
		path       string
		body       string
		waitForFIN bool // let the close reach the proxy before the request
		want       int
		wantHits   int64 // requests the instance saw on path
	}{
		{"GET on a closed connection is retried", "GET", "/ok", "", false, 200, 1},
		{"POST on a connection seen closed goes on a new one", "POST", "/echo", "hello", true, 200, 1},
		{"reset GET is retried once", "GET", "/reset", "", false, 502, 2},
		{"reset POST with a body is not retried", "POST", "/reset", "hello", false, 502, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u := newFastUpstream(t)
			p, f := fastProxy(t, u, Settings{})
			if code, _, _ := f.get(t, "/"); code != 200 {
				t.Fatalf("first request: %d", code)
			}
			addr := u.backend().Addr
			if n := idleConns(p, addr); n != 1 {
				t.Fatalf("%d idle connections, want 1", n)
			}
			if tc.path != "/reset" {
				u.srv.CloseClientConnections()
			}
			if tc.waitForFIN {
				fp := p.up.Load().fast
				waitFor(t, 5*time.Second, "the instance's close to reach the proxy", func() bool {
					return !fp.OldestIdleAlive(addr)
				})
			}
			since := time.Now()
			req, _ := http.NewRequest(tc.method, f.url+tc.path, strings.NewReader(tc.body))
			if tc.body == "" {
				req.Body = nil
			}
			b := doWant(t, f.client, req, tc.want)
			if tc.want == 200 && tc.body != "" && string(b) != tc.body {
				t.Errorf("echo %q, want %q", b, tc.body)
			}
			if n := u.hits.get(tc.path); n != tc.wantHits {
				t.Errorf("instance saw %d requests, want %d", n, tc.wantHits)
			}
			s := statsOf(t, p, 3, since, 1)
			if failed := tc.want != 200; (s.Errors == 1) != failed {
				t.Errorf("%d errors counted, want failure %v", s.Errors, failed)
			}
		})
	}
}

func TestFastPathSettings(t *testing.T) {
	u := newFastUpstream(t)
	p, f := fastProxy(t, u, Settings{})
	f.get(t, "/ok")
	if n := idleConns(p, u.backend().Addr); n != 1 {
		t.Fatalf("%d idle fast-path connections, want 1", n)
	}
	p.SetSettings(Settings{DisableFastPath: true})
	if code, _, _ := f.get(t, "/ok"); code != 200 {
		t.Fatalf("got %d", code)
	}
	if n := idleConns(p, u.backend().Addr); n != -1 {
		t.Errorf("fast path still on after DisableFastPath")
	}
	p.SetSettings(Settings{H2C: true})
	if p.up.Load().fast != nil {
		t.Errorf("fast path on for h2c upstreams")
	}
}
