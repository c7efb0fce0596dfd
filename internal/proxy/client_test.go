package proxy

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// bothServers runs f once on the fast server and once on net/http's (DisableFastServer):
// each gets a proxy p with settings s and its own listener built by NewServer with c.
func bothServers(t *testing.T, s Settings, c ServerConfig, f func(t *testing.T, p *Proxy, srv *Server, addr string)) {
	for _, name := range []string{"fast", "nethttp"} {
		t.Run(name, func(t *testing.T) {
			p := New("client", Options{Logger: quietLogger()})
			t.Cleanup(p.Close)
			s := s
			s.DisableFastServer = name == "nethttp"
			p.SetSettings(s)
			if c.Logger == nil {
				c.Logger = quietLogger()
			}
			srv := NewServer(p, c)
			ln := serveLocal(t, srv)
			f(t, p, srv, ln.Addr().String())
		})
	}
}

// TestRoutingIgnoresHopByHopHeaders: a header that the request's Connection header names
// (or a standard hop-by-hop one) never reaches the instance, so it steers neither a header
// route, a cookie route nor stickiness.
func TestRoutingIgnoresHopByHopHeaders(t *testing.T) {
	stable, canary := upstream(t, "stable", nil), upstream(t, "canary", nil)
	pools := []Pool{
		{Revision: 1, Role: "stable", Weight: 100, Backends: []Backend{stable}},
		{Revision: 2, Role: "canary", Weight: 0, Backends: []Backend{canary}},
	}
	routes := []HeaderRoute{
		{Match: []Match{{Header: "x-version", Exact: "canary"}}, Revision: 2},
		{Match: []Match{{Cookie: "beta", Exact: "yes"}}, Revision: 2},
		{Match: []Match{{Header: "proxy-authorization", Exact: "canary"}}, Revision: 2},
		{Match: []Match{{Header: "keep-alive", Prefix: "c"}}, Revision: 2},
	}
	tests := []struct{ name, head, want string }{
		{"header", "X-Version: canary\r\n", "canary"},
		{"header with Connection: keep-alive", "Connection: keep-alive\r\nX-Version: canary\r\n", "canary"},
		{"header named by Connection", "Connection: x-version\r\nX-Version: canary\r\n", "stable"},
		{"header named by Connection among others", "Connection: keep-alive, X-VERSION\r\nX-Version: canary\r\n", "stable"},
		{"header named by a second Connection line", "Connection: keep-alive\r\nConnection: x-version\r\nX-Version: canary\r\n", "stable"},
		{"cookie", "Cookie: beta=yes\r\n", "canary"},
		{"cookie named by Connection", "Connection: cookie\r\nCookie: beta=yes\r\n", "stable"},
		{"hop-by-hop header", "Proxy-Authorization: canary\r\n", "stable"},
		{"hop-by-hop Keep-Alive", "Keep-Alive: canary\r\n", "stable"},
	}
	bothServers(t, Settings{}, ServerConfig{}, func(t *testing.T, p *Proxy, srv *Server, addr string) {
		p.SetTable(Table{Pools: pools, HeaderRoutes: routes})
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		for _, tc := range tests {
			resp, body := rawOne(t, c, "GET / HTTP/1.1\r\nHost: x\r\n"+tc.head+"\r\n")
			if string(body) != tc.want {
				t.Errorf("%s: answered by %q (status %d), want %q", tc.name, body, resp.StatusCode, tc.want)
			}
		}
	})
}

// TestStickinessIgnoresHopByHopHeaders: a sticky header or cookie that the Connection
// header names counts as absent: the proxy picks a fresh bucket and sets the cookie.
func TestStickinessIgnoresHopByHopHeaders(t *testing.T) {
	stable, canary := upstream(t, "stable", nil), upstream(t, "canary", nil)
	sticky := &Sticky{Header: "x-user-id", Cookie: "ramp-bucket"}
	bothServers(t, Settings{}, ServerConfig{}, func(t *testing.T, p *Proxy, srv *Server, addr string) {
		p.SetTable(stickyTable2(stable, canary, 50, sticky))
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		for _, tc := range []struct {
			name, head string
			fresh      bool
		}{
			{"header", "X-User-Id: alice\r\n", false},
			{"header named by Connection", "Connection: X-User-Id\r\nX-User-Id: alice\r\n", true},
			{"cookie", "Cookie: ramp-bucket=7\r\n", false},
			{"cookie named by Connection", "Connection: cookie\r\nCookie: ramp-bucket=7\r\n", true},
		} {
			resp, _ := rawOne(t, c, "GET / HTTP/1.1\r\nHost: x\r\n"+tc.head+"\r\n")
			if got := len(resp.Cookies()) == 1; got != tc.fresh {
				t.Errorf("%s: a fresh bucket's cookie set: %v, want %v (Set-Cookie %q)", tc.name, got, tc.fresh, resp.Header["Set-Cookie"])
			}
		}
	})
}

// closedWithin reads c until it ends (EOF or an error other than a timeout) and returns how
// long after start that was; it fails the test when c is still open after limit.
func closedWithin(t *testing.T, c net.Conn, start time.Time, limit time.Duration) time.Duration {
	t.Helper()
	c.SetReadDeadline(start.Add(limit))
	buf := make([]byte, 64<<10)
	for {
		_, err := c.Read(buf)
		if err == nil {
			continue
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("the connection is still open %v after the start", limit)
		}
		return time.Since(start)
	}
}

// TestHeaderTimeoutSurvivesHandOff: a client that drips a request head past the fast
// server's 8 KiB buffer (so that the connection goes to net/http) is still cut when the
// header timeout that started with the head's first byte runs out, not a timeout later.
func TestHeaderTimeoutSurvivesHandOff(t *testing.T) {
	const timeout = time.Second
	bothServers(t, Settings{}, ServerConfig{HeaderTimeout: timeout}, func(t *testing.T, p *Proxy, srv *Server, addr string) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		start := time.Now()
		stop := make(chan struct{})
		defer close(stop)
		go func() {
			// 7.5 KiB at once, then, from 0.7 s on, 100 bytes every 10 ms: past 8 KiB at
			// about 0.75 s (late in the timeout, so that a fresh timeout at the hand-off
			// would show), whatever ticks a loaded machine drops.
			if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n"); err != nil {
				return
			}
			line := "X-Pad: " + strings.Repeat("a", 91) + "\r\n"
			if _, err := io.WriteString(c, strings.Repeat(line, 75)); err != nil {
				return
			}
			select {
			case <-stop:
				return
			case <-time.After(700 * time.Millisecond):
			}
			tick := time.NewTicker(10 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				if _, err := io.WriteString(c, line); err != nil {
					return
				}
			}
		}()
		took := closedWithin(t, c, start, 5*time.Second)
		if took > timeout*3/2 {
			t.Errorf("the connection was closed %v after the head's first byte; the header timeout is %v", took, timeout)
		}
		if took < timeout*7/8 {
			t.Errorf("the connection was closed after %v, before the header timeout (%v)", took, timeout)
		}
		if srv.fast.HandedOff() != 1 {
			t.Errorf("%d connections handed to net/http, want 1 (the head crossed 8 KiB)", srv.fast.HandedOff())
		}
	})
}

// TestIdleTimeout: a kept-alive connection that brings no further request is closed after
// the idle timeout (from the end of its last answer).
func TestIdleTimeout(t *testing.T) {
	const idle = 400 * time.Millisecond
	u := upstream(t, "stable", nil)
	bothServers(t, Settings{}, ServerConfig{IdleTimeout: idle}, func(t *testing.T, p *Proxy, srv *Server, addr string) {
		p.SetTable(Table{Pools: []Pool{{Revision: 1, Weight: 100, Backends: []Backend{u}}}})
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		for range 5 {
			if resp, body := rawOne(t, c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); string(body) != "stable" {
				t.Fatalf("answer %d %q", resp.StatusCode, body)
			}
		}
		took := closedWithin(t, c, time.Now(), 5*time.Second)
		if took > idle*3/2 || took < idle*3/4 {
			t.Errorf("the idle connection was closed after %v; the idle timeout is %v", took, idle)
		}
	})
}

// TestWriteTimeoutReleasesStalledClient: a client that stops reading an endless answer is
// disconnected once a write to it makes no progress for the write timeout, and the
// instance's connection is released (its handler sees the request end).
func TestWriteTimeoutReleasesStalledClient(t *testing.T) {
	const wt = 500 * time.Millisecond
	var mu sync.Mutex
	ended := map[string]chan struct{}{}
	u := upstream(t, "stream", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		done := ended[r.URL.Path]
		mu.Unlock()
		defer close(done)
		streamForever(w)
	})
	bothServers(t, Settings{}, ServerConfig{WriteTimeout: wt}, func(t *testing.T, p *Proxy, srv *Server, addr string) {
		p.SetTable(Table{Pools: []Pool{{Revision: 1, Weight: 100, Backends: []Backend{u}}}})
		path := "/" + t.Name()
		done := make(chan struct{})
		mu.Lock()
		ended[path] = done
		mu.Unlock()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: x\r\n\r\n")
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		// The client reads no more.
		waitReleased(t, done)
		closedWithin(t, c, time.Now(), 5*time.Second)
	})
}

// TestStreamOutlivesClientTimeouts: an SSE answer that sends an event every 350 ms, for
// longer than both the idle and the write timeouts, and with gaps longer than both, reaches
// the client whole.
func TestStreamOutlivesClientTimeouts(t *testing.T) {
	const events = 6
	u := upstream(t, "sse", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		rc := http.NewResponseController(w)
		for i := range events {
			if i > 0 {
				time.Sleep(350 * time.Millisecond) // the stream's own pace
			}
			fmt.Fprintf(w, "data: %d\n\n", i)
			if rc.Flush() != nil {
				return
			}
		}
		io.WriteString(w, "data: done\n\n")
	})
	c := ServerConfig{IdleTimeout: 300 * time.Millisecond, WriteTimeout: 300 * time.Millisecond}
	check := func(t *testing.T, client *http.Client, url string) {
		start := time.Now()
		resp, err := client.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("the stream was cut after %v: %v (read %q)", time.Since(start), err, b)
		}
		var want strings.Builder
		for i := range events {
			fmt.Fprintf(&want, "data: %d\n\n", i)
		}
		want.WriteString("data: done\n\n")
		if string(b) != want.String() {
			t.Errorf("the stream ended after %v with %q", time.Since(start), b)
		}
	}
	bothServers(t, Settings{}, c, func(t *testing.T, p *Proxy, srv *Server, addr string) {
		p.SetTable(Table{Pools: []Pool{{Revision: 1, Weight: 100, Backends: []Backend{u}}}})
		check(t, http.DefaultClient, "http://"+addr+"/")
	})
	t.Run("tls", func(t *testing.T) {
		addr, roots := serveTLS(t, u, c)
		for _, h2 := range []bool{true, false} {
			tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, ForceAttemptHTTP2: h2}
			if !h2 {
				tr.TLSClientConfig.NextProtos = []string{"http/1.1"}
			}
			t.Cleanup(tr.CloseIdleConnections)
			check(t, &http.Client{Transport: tr}, "https://"+addr+"/")
		}
	})
}

// TestWriteTimeoutResetsStalledHTTP2Stream: over TLS and HTTP/2, a client that stops reading
// one stream (its flow control window runs out while the connection stays alive) has that
// stream reset after the write timeout, and the instance's connection is released.
func TestWriteTimeoutResetsStalledHTTP2Stream(t *testing.T) {
	const wt = 500 * time.Millisecond
	done := make(chan struct{})
	u := upstream(t, "stream", func(w http.ResponseWriter, r *http.Request) {
		defer close(done)
		streamForever(w)
	})
	addr, roots := serveTLS(t, u, ServerConfig{WriteTimeout: wt})
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, ForceAttemptHTTP2: true}
	t.Cleanup(tr.CloseIdleConnections)
	resp, err := (&http.Client{Transport: tr}).Get("https://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.ProtoMajor != 2 {
		t.Fatalf("%s, want HTTP/2", resp.Proto)
	}
	// The client reads no more of this stream.
	waitReleased(t, done)
	if _, err := io.Copy(io.Discard, resp.Body); err == nil {
		t.Error("the stalled stream ended without an error")
	}
}

// waitReleased waits for done: the instance's handler has returned once the client stopped
// reading its answer.
func waitReleased(t *testing.T, done <-chan struct{}) {
	t.Helper()
	start := time.Now()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the instance's answer is still being sent 10 s after the client stopped reading")
	}
	t.Logf("instance released %v after the client stopped reading", time.Since(start))
}

// streamForever writes 32 KiB chunks to w, each flushed, until a write or flush fails.
func streamForever(w http.ResponseWriter) {
	buf := bytes.Repeat([]byte("x"), 32<<10)
	rc := http.NewResponseController(w)
	for {
		if _, err := w.Write(buf); err != nil {
			return
		}
		if rc.Flush() != nil {
			return
		}
	}
}

// serveTLS serves a proxy to u over TLS with c and a fresh self-signed certificate, and
// returns its address and the roots that trust it.
func serveTLS(t *testing.T, u Backend, c ServerConfig) (addr string, roots *x509.CertPool) {
	t.Helper()
	certFile, keyFile, cert := writeCert(t, t.TempDir(), 1)
	cr, err := NewCertReloader(certFile, keyFile, quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	p := New("client", Options{Logger: quietLogger()})
	t.Cleanup(p.Close)
	p.SetTable(Table{Pools: []Pool{{Revision: 1, Weight: 100, Backends: []Backend{u}}}})
	c.TLS, c.Logger = cr, quietLogger()
	ln := serveLocal(t, NewServer(p, c))
	roots = x509.NewCertPool()
	roots.AddCert(cert)
	return ln.Addr().String(), roots
}
