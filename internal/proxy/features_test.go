package proxy

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/websocket"
	"ramp.dev/ramp/test/testkit"
)

func TestWebSocketEcho(t *testing.T) {
	up := httptest.NewServer(websocket.Handler(func(ws *websocket.Conn) { io.Copy(ws, ws) }))
	t.Cleanup(up.Close)
	// An idle timeout must not break an upgraded connection.
	p := New("chat-api", Options{Logger: quietLogger()})
	p.SetSettings(Settings{IdleTimeout: time.Second, FirstByteTimeout: time.Second, H2C: true})
	p.SetTable(Table{Pools: []Pool{{Revision: 1, Weight: 100, Backends: []Backend{{ID: "ws", Addr: up.Listener.Addr().String()}}}}})
	f := serve(t, p)
	ws, err := websocket.Dial("ws"+strings.TrimPrefix(f.url, "http")+"/chat", "", f.url)
	if err != nil {
		t.Fatalf("dial through the proxy: %v", err)
	}
	defer ws.Close()
	for i := range 3 {
		msg := fmt.Sprintf("token %d", i)
		if err := websocket.Message.Send(ws, msg); err != nil {
			t.Fatal(err)
		}
		var got string
		ws.SetReadDeadline(time.Now().Add(5 * time.Second))
		if err := websocket.Message.Receive(ws, &got); err != nil || got != msg {
			t.Fatalf("echo %d: %q %v, want %q", i, got, err, msg)
		}
	}
}

func TestCookieRoutes(t *testing.T) {
	stable, canary := upstream(t, "stable", nil), upstream(t, "canary", nil)
	pools := []Pool{
		{Revision: 1, Weight: 100, Backends: []Backend{stable}},
		{Revision: 2, Weight: 0, Backends: []Backend{canary}},
	}
	tests := []struct {
		name   string
		match  Match
		cookie string
		want   string
	}{
		{"exact", Match{Cookie: "beta", Exact: "yes"}, "a=1; beta=yes", "canary"},
		{"exact miss", Match{Cookie: "beta", Exact: "yes"}, "beta=no", "stable"},
		{"no cookie", Match{Cookie: "beta", Exact: "yes"}, "", "stable"},
		{"name is case sensitive", Match{Cookie: "beta", Exact: "yes"}, "Beta=yes", "stable"},
		{"prefix", Match{Cookie: "group", Prefix: "int"}, "group=internal", "canary"},
		{"regex", Match{Cookie: "group", Regex: mustRegexp(`^(qa|internal)$`)}, "x=y; group=qa", "canary"},
		{"a header of the same name is not a cookie", Match{Cookie: "beta", Exact: "yes"}, "", "stable"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := New("chat-api", Options{Logger: quietLogger()})
			p.SetTable(Table{Pools: pools, HeaderRoutes: []HeaderRoute{{Match: []Match{tc.match}, Revision: 2}}})
			f := serve(t, p)
			hdr := []string{"Beta", "yes"}
			if tc.cookie != "" {
				hdr = append(hdr, "Cookie", tc.cookie)
			}
			if _, body, _ := f.get(t, "/", hdr...); body != tc.want {
				t.Errorf("got %q, want %q", body, tc.want)
			}
		})
	}
}

func TestTrustedSources(t *testing.T) {
	stable, canary := upstream(t, "stable", nil), upstream(t, "canary", nil)
	tests := []struct {
		name    string
		trusted []string
		want    string
	}{
		{"no list trusts everyone", nil, "canary"},
		{"loopback trusted", []string{"10.0.0.0/8", "127.0.0.1/32"}, "canary"},
		{"untrusted header is ignored", []string{"10.0.0.0/8"}, "stable"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var prefixes []netip.Prefix
			for _, s := range tc.trusted {
				prefixes = append(prefixes, netip.MustParsePrefix(s))
			}
			p := New("chat-api", Options{Logger: quietLogger()})
			p.SetTable(Table{
				Pools: []Pool{
					{Revision: 1, Weight: 100, Backends: []Backend{stable}},
					{Revision: 2, Weight: 0, Backends: []Backend{canary}},
				},
				HeaderRoutes:   []HeaderRoute{{Match: []Match{{Header: "x-version", Exact: "canary"}}, Revision: 2}},
				TrustedSources: prefixes,
			})
			f := serve(t, p)
			for range 10 {
				// X-Forwarded-For does not make a client trusted.
				if _, body, _ := f.get(t, "/", "X-Version", "canary", "X-Forwarded-For", "10.1.2.3"); body != tc.want {
					t.Fatalf("got %q, want %q", body, tc.want)
				}
			}
		})
	}
}

func stickyTable2(stable, canary Backend, w int32, s *Sticky) Table {
	return Table{Pools: []Pool{
		{Revision: 1, Role: "stable", Weight: 100 - w, Backends: []Backend{stable}},
		{Revision: 2, Role: "canary", Weight: w, Backends: []Backend{canary}},
	}, Sticky: s}
}

func TestStickyHeaderFollowsWeight(t *testing.T) {
	stable, canary := upstream(t, "stable", nil), upstream(t, "canary", nil)
	sticky := &Sticky{Header: "x-user-id"}
	p := New("chat-api", Options{Logger: quietLogger()})
	f := serve(t, p)
	const users = 200
	prev := map[int]string{}
	for _, w := range []int32{0, 10, 25, 50, 100} {
		p.SetTable(stickyTable2(stable, canary, w, sticky))
		onCanary := 0
		for u := range users {
			var first string
			for i := range 2 { // a user stays on one version for every request
				_, body, _ := f.get(t, "/", "X-User-Id", fmt.Sprintf("user-%d", u))
				if i == 0 {
					first = body
				} else if body != first {
					t.Fatalf("weight %d: user %d went to %s then %s", w, u, first, body)
				}
			}
			if prev[u] == "canary" && first != "canary" {
				t.Fatalf("weight %d: user %d moved back from the canary to %s", w, u, first)
			}
			prev[u] = first
			if first == "canary" {
				onCanary++
			}
		}
		want := int(w) * users / 100
		if d := onCanary - want; d > users/10 || d < -users/10 {
			t.Errorf("weight %d: %d of %d users on the canary, want about %d", w, onCanary, users, want)
		}
	}
}

func TestStickyCookie(t *testing.T) {
	stable, canary := upstream(t, "stable", nil), upstream(t, "canary", nil)
	sticky := &Sticky{Header: "x-user-id", Cookie: "ramp-bucket", CookieMaxAge: time.Hour}
	p := New("chat-api", Options{Logger: quietLogger()})
	p.SetTable(stickyTable2(stable, canary, 20, sticky))
	f := serve(t, p)
	const users = 100
	jars := make([]*http.Client, users)
	got := make([]string, users)
	for u := range users {
		jar, _ := cookiejar.New(nil)
		jars[u] = &http.Client{Jar: jar, Transport: f.client.Transport}
		resp, err := jars[u].Get(f.url + "/")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got[u] = string(b)
		c := resp.Cookies()
		if len(c) != 1 || c[0].Name != "ramp-bucket" || c[0].MaxAge != 3600 || !c[0].HttpOnly {
			t.Fatalf("first answer set cookies %v, want one ramp-bucket cookie", c)
		}
	}
	for _, w := range []int32{20, 60} {
		p.SetTable(stickyTable2(stable, canary, w, sticky))
		for u := range users {
			resp, err := jars[u].Get(f.url + "/")
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if len(resp.Cookies()) != 0 {
				t.Fatalf("cookie set again for a user who has one")
			}
			if got[u] == "canary" && string(b) != "canary" || w == 20 && string(b) != got[u] {
				t.Fatalf("weight %d: user %d went from %s to %s", w, u, got[u], b)
			}
			got[u] = string(b)
		}
	}
	// A header, when present, wins over the cookie: two requests with one user id and two
	// different cookies land on one version.
	_, a, _ := f.get(t, "/", "X-User-Id", "alice", "Cookie", "ramp-bucket=0")
	_, b, _ := f.get(t, "/", "X-User-Id", "alice", "Cookie", "ramp-bucket=99")
	if a != b {
		t.Errorf("user alice went to %s and %s", a, b)
	}
	// A forged out-of-range bucket gets a fresh one.
	req, _ := http.NewRequest(http.MethodGet, f.url+"/", nil)
	req.Header.Set("Cookie", "ramp-bucket=1000")
	resp, err := f.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if c := resp.Cookies(); len(c) != 1 {
		t.Errorf("bad bucket cookie: set %v, want a new cookie", c)
	}
}

func TestMirrorToHungCanary(t *testing.T) {
	hung := make(chan struct{})
	entered := make(chan struct{}, 100)
	var mu sync.Mutex
	var seen []http.Header
	canary := upstream(t, "canary", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Clone())
		mu.Unlock()
		entered <- struct{}{}
		select {
		case <-hung:
		case <-r.Context().Done():
		}
	})
	stable := upstream(t, "stable", nil)
	t.Cleanup(func() { close(hung) })
	p := New("chat-api", Options{Logger: quietLogger()})
	p.SetTable(Table{Pools: []Pool{
		{Revision: 1, Role: "stable", Weight: 100, Backends: []Backend{stable}},
		{Revision: 2, Role: "canary", Weight: 0, Backends: []Backend{canary}},
	}, Mirror: &Mirror{Revision: 2, Percent: 100, MaxConcurrent: 2, MaxBodyBytes: 16}})
	f := serve(t, p)
	const n = 20
	for i := range n {
		start := time.Now()
		code, body, _ := f.get(t, "/", "X-Request-Id", fmt.Sprintf("req-%d", i))
		if code != http.StatusOK || body != "stable" {
			t.Fatalf("request %d: %d %q, want 200 from stable", i, code, body)
		}
		if d := time.Since(start); d > time.Second {
			t.Fatalf("request %d took %v while its mirror hangs", i, d)
		}
	}
	waitFor(t, 5*time.Second, "two copies at the canary", func() bool { return len(entered) >= 2 })
	if got := p.MirrorInFlight(); got != 2 {
		t.Errorf("mirror copies in flight = %d, want the limit 2", got)
	}
	if got := p.MirrorDropped(); got != n-2 {
		t.Errorf("mirror copies dropped = %d, want %d", got, n-2)
	}
	// A body over the copy limit is not copied; the real request carries it whole.
	before := p.MirrorDropped()
	resp, err := f.client.Post(f.url+"/", "text/plain", strings.NewReader(strings.Repeat("x", 17)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Body") != strings.Repeat("x", 17) {
		t.Errorf("real request with a large body: %d", resp.StatusCode)
	}
	if p.MirrorDropped() != before+1 {
		t.Errorf("large body: dropped %d, want %d", p.MirrorDropped(), before+1)
	}
	mu.Lock()
	defer mu.Unlock()
	if h := seen[0]; h.Get(MirrorHeader) != "1" || !strings.HasPrefix(h.Get(RequestIDHeader), "req-") {
		t.Errorf("mirrored copy headers %v, want %s and the request id", h, MirrorHeader)
	}
	if s := p.Stats(2, time.Now().Add(-time.Minute)); s.Requests != 0 {
		t.Errorf("copies counted as real canary requests: %d", s.Requests)
	}
}

func TestMirrorMeasured(t *testing.T) {
	canary := upstream(t, "canary", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if string(b) != "prompt" {
			http.Error(w, "wrong body "+string(b), http.StatusBadRequest)
			return
		}
		http.Error(w, "canary broke", http.StatusInternalServerError)
	})
	stable := upstream(t, "stable", nil)
	p := New("chat-api", Options{Logger: quietLogger()})
	p.SetTable(Table{Pools: []Pool{
		{Revision: 1, Role: "stable", Weight: 100, Backends: []Backend{stable}},
		{Revision: 2, Role: "canary", Weight: 0, Backends: []Backend{canary}},
	}, Mirror: &Mirror{Revision: 2, Percent: 50}})
	f := serve(t, p)
	since := time.Now()
	const n = 200
	for range n {
		resp, err := f.client.Post(f.url+"/", "text/plain", strings.NewReader("prompt"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Body") != "prompt" {
			t.Fatalf("client got %d: a failing mirror must not touch the real answer", resp.StatusCode)
		}
	}
	waitFor(t, 5*time.Second, "copies to finish", func() bool { return p.MirrorInFlight() == 0 })
	m := p.MirrorStats(2, since)
	if m.Requests < n/4 || m.Requests > n*3/4 || m.Errors5xx != m.Requests {
		t.Errorf("mirror stats %d requests %d 5xx, want about %d, all 5xx", m.Requests, m.Errors5xx, n/2)
	}
	if s := statsOf(t, p, 1, since, n); s.Requests != n || s.Errors != 0 {
		t.Errorf("stable stats %+v, want %d clean requests", s, n)
	}
}

func TestH2CUpstream(t *testing.T) {
	s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s", r.Proto)
	}))
	s.Config.Protocols = new(http.Protocols)
	s.Config.Protocols.SetUnencryptedHTTP2(true)
	s.Config.Protocols.SetHTTP1(true)
	s.Start()
	t.Cleanup(s.Close)
	p := New("chat-api", Options{Logger: quietLogger()})
	p.SetTable(Table{Pools: []Pool{{Revision: 1, Weight: 100, Backends: []Backend{{ID: "a", Addr: s.Listener.Addr().String()}}}}})
	f := serve(t, p)
	for _, tc := range []struct {
		h2c  bool
		want string
	}{{false, "HTTP/1.1"}, {true, "HTTP/2.0"}, {false, "HTTP/1.1"}} {
		p.SetSettings(Settings{H2C: tc.h2c})
		if code, body, _ := f.get(t, "/"); code != http.StatusOK || body != tc.want {
			t.Errorf("h2c=%v: upstream saw %d %q, want %q", tc.h2c, code, body, tc.want)
		}
	}
}

func TestTimeoutsAndFailures(t *testing.T) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	up := upstream(t, "a", func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/hung":
			select {
			case <-release:
			case <-r.Context().Done():
			}
		case "/stall": // headers and one token, then silence
			w.WriteHeader(http.StatusOK)
			io.WriteString(w, "tok\n")
			w.(http.Flusher).Flush()
			select {
			case <-release:
			case <-r.Context().Done():
			}
		case "/slow-stream": // a token every 30ms for 300ms: slow but never idle for long
			for range 10 {
				io.WriteString(w, "tok\n")
				w.(http.Flusher).Flush()
				time.Sleep(30 * time.Millisecond) // the instance's pace is what is tested
			}
		case "/reset":
			resetConn(w)
		default:
			io.WriteString(w, "ok")
		}
	})
	tests := []struct {
		name     string
		settings Settings
		path     string
		want     int
		failed   bool // counted as an upstream failure
		bodyCut  bool
	}{
		{"first byte timeout is 504", Settings{FirstByteTimeout: 100 * time.Millisecond}, "/hung", 504, true, false},
		{"fast answer within first byte timeout", Settings{FirstByteTimeout: 2 * time.Second}, "/", 200, false, false},
		{"idle timeout cuts a stalled stream", Settings{IdleTimeout: 100 * time.Millisecond}, "/stall", 200, true, true},
		{"slow stream within idle timeout", Settings{IdleTimeout: 250 * time.Millisecond, FirstByteTimeout: 2 * time.Second}, "/slow-stream", 200, false, false},
		{"reset is 502", Settings{}, "/reset", 502, true, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := New("chat-api", Options{Logger: quietLogger()})
			p.SetSettings(tc.settings)
			p.SetTable(Table{Pools: []Pool{{Revision: 7, Weight: 100, Backends: []Backend{up}}}})
			f := serve(t, p)
			since := time.Now()
			f.client.Timeout = 10 * time.Second // fail, not hang, when a timeout does not fire
			resp, err := f.client.Get(f.url + tc.path)
			if err != nil {
				t.Fatal(err)
			}
			_, err = io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.want || (err != nil) != tc.bodyCut {
				t.Fatalf("got %d, body error %v; want %d, cut %v", resp.StatusCode, err, tc.want, tc.bodyCut)
			}
			s := statsOf(t, p, 7, since, 1)
			if (s.Errors == 1) != tc.failed {
				t.Errorf("errors = %d, want failure %v", s.Errors, tc.failed)
			}
		})
	}
	t.Run("connect timeout", func(t *testing.T) {
		p := New("chat-api", Options{Logger: quietLogger()})
		p.SetSettings(Settings{ConnectTimeout: time.Second})
		if d := p.Settings().ConnectTimeout; d != time.Second {
			t.Errorf("connect timeout %v", d)
		}
	})
}

func TestRequestID(t *testing.T) {
	seen := make(chan string, 1)
	up := upstream(t, "a", func(w http.ResponseWriter, r *http.Request) {
		seen <- r.Header.Get(RequestIDHeader)
		w.Header().Set(RequestIDHeader, "from-instance")
	})
	p := New("chat-api", Options{Logger: quietLogger()})
	p.SetTable(Table{Pools: []Pool{{Revision: 1, Weight: 100, Backends: []Backend{up}}}})
	f := serve(t, p)
	ids := map[string]bool{}
	for _, tc := range []struct{ sent, want string }{
		{"abc-123", "abc-123"},
		{"", ""},
		{"has space", ""},
		{strings.Repeat("x", 129), ""},
		{"", ""},
	} {
		req, _ := http.NewRequest(http.MethodGet, f.url+"/", nil)
		if tc.sent != "" {
			req.Header.Set(RequestIDHeader, tc.sent)
		}
		resp, err := f.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		got, upstreamGot := resp.Header.Get(RequestIDHeader), <-seen
		if got != upstreamGot || got == "" || (tc.want != "" && got != tc.want) || (tc.want == "" && len(got) != 32) {
			t.Errorf("sent %q: client got %q, instance got %q, want %q or a fresh id", tc.sent, got, upstreamGot, tc.want)
		}
		if tc.want == "" {
			if ids[got] {
				t.Errorf("id %s given twice", got)
			}
			ids[got] = true
		}
	}
}

func TestRequestLimits(t *testing.T) {
	up := upstream(t, "a", nil)
	p := New("chat-api", Options{Logger: quietLogger()})
	p.SetSettings(Settings{MaxRequestBodyBytes: 1000})
	p.SetTable(Table{Pools: []Pool{{Revision: 1, Weight: 100, Backends: []Backend{up}}}})
	srv := NewServer(p, ServerConfig{MaxHeaderBytes: 8 << 10, Logger: quietLogger()})
	ln := serveLocal(t, srv)
	url := "http://" + ln.Addr().String() + "/"
	tests := []struct {
		name string
		body io.Reader
		hdr  string
		want int
	}{
		{"small body", strings.NewReader(strings.Repeat("x", 1000)), "", 200},
		{"declared body too large", strings.NewReader(strings.Repeat("x", 1001)), "", 413},
		{"chunked body too large", io.MultiReader(strings.NewReader(strings.Repeat("x", 5000))), "", 413},
		{"chunked body small", io.MultiReader(strings.NewReader("x")), "", 200},
		{"headers too large", nil, strings.Repeat("h", 20<<10), 431},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, url, tc.body)
			if tc.hdr != "" {
				req.Header.Set("X-Big", tc.hdr)
			}
			b := doWant(t, &http.Client{Transport: &http.Transport{}}, req, tc.want)
			if tc.want == 413 && !strings.Contains(string(b), "larger than 1000 bytes") {
				t.Errorf("413 body %q does not say the limit", b)
			}
		})
	}
}

// writeCert writes a self-signed certificate for 127.0.0.1 with the given serial.
func writeCert(t *testing.T, dir string, serial int64) (certFile, keyFile string, cert *x509.Certificate) {
	t.Helper()
	certFile, keyFile, cert = testkit.SelfSigned(t, dir, serial, "ramp test")
	// Make sure the stamp changes even on a coarse file system clock.
	mod := time.Now().Add(time.Duration(serial) * time.Second)
	os.Chtimes(certFile, mod, mod)
	os.Chtimes(keyFile, mod, mod)
	return certFile, keyFile, cert
}

func TestTLSHTTP2AndReload(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, cert1 := writeCert(t, dir, 1)
	up := upstream(t, "a", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprintf(w, "data: %s\n\n", r.Header.Get("X-Forwarded-Proto"))
	})
	p := New("chat-api", Options{Logger: quietLogger()})
	p.SetTable(Table{Pools: []Pool{{Revision: 1, Weight: 100, Backends: []Backend{up}}}})
	cr, err := NewCertReloader(certFile, keyFile, quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewCertReloader(filepath.Join(dir, "missing"), keyFile, nil); err == nil {
		t.Error("missing certificate file loaded")
	}
	srv := NewServer(p, ServerConfig{TLS: cr, Logger: quietLogger()})
	ln := serveLocal(t, srv)
	url := "https://" + ln.Addr().String() + "/"

	// get makes a new connection trusting only want, and checks it gets HTTP/2 and want.
	get := func(want *x509.Certificate, proto string) error {
		pool := x509.NewCertPool()
		pool.AddCert(want)
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}
		defer tr.CloseIdleConnections()
		if proto == "HTTP/1.1" {
			tr.TLSClientConfig.NextProtos = []string{"http/1.1"}
			tr.ForceAttemptHTTP2 = false
		}
		resp, err := (&http.Client{Transport: tr}).Get(url)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		line, _ := bufio.NewReader(resp.Body).ReadString('\n')
		if resp.Proto != proto || line != "data: https\n" || resp.TLS.PeerCertificates[0].SerialNumber.Cmp(want.SerialNumber) != 0 {
			return fmt.Errorf("got %s %q serial %v, want %s, https, serial %v", resp.Proto, line,
				resp.TLS.PeerCertificates[0].SerialNumber, proto, want.SerialNumber)
		}
		return nil
	}
	if err := get(cert1, "HTTP/2.0"); err != nil {
		t.Fatal(err)
	}
	if err := get(cert1, "HTTP/1.1"); err != nil {
		t.Fatal(err)
	}
	// A half-written pair (a new key with the old certificate) keeps the old certificate.
	os.WriteFile(keyFile, []byte("garbage"), 0o600)
	if err := get(cert1, "HTTP/2.0"); err != nil {
		t.Fatalf("broken pair: %v", err)
	}
	_, _, cert2 := writeCert(t, dir, 2)
	if err := get(cert2, "HTTP/2.0"); err != nil {
		t.Fatalf("after the files changed: %v", err)
	}
}

func mustRegexp(s string) *regexp.Regexp { return regexp.MustCompile(s) }
