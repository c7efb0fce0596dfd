package proxy

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// An instance may send any bytes: more than the answer it framed, a body after HEAD, 204 or
// 304, a second answer nobody asked for. Whatever it sends, no client may be given the
// answer to another client's request. These tests run a raw TCP instance that answers every
// request with a script of bytes in which @ID@ is replaced by the request's id, and send
// several clients in sequence through ramp (fast server, net/http server with the fast path,
// ReverseProxy path) and through httputil.ReverseProxy.

// scriptInstance is a raw instance: for each request it reads on a connection it writes
// script with @ID@ replaced by the request's id (the last path segment). A script that ends
// in @CLOSE@ is written without it, and the instance then closes the connection.
type scriptInstance struct {
	ln net.Listener

	mu    sync.Mutex
	conns []net.Conn // accepted, in order
}

func (si *scriptInstance) accepted() int {
	si.mu.Lock()
	defer si.mu.Unlock()
	return len(si.conns)
}

// sendLate writes b on the newest connection (the one just answered), as an instance that
// sends something unasked while the connection is idle. On loopback the bytes are in the
// proxy's socket when Write returns.
func (si *scriptInstance) sendLate(b []byte) {
	si.mu.Lock()
	c := si.conns[len(si.conns)-1]
	si.mu.Unlock()
	c.Write(b)
}

func newScriptInstance(t testing.TB, script, _ []byte) *scriptInstance {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	si := &scriptInstance{ln: ln}
	script, closes := bytes.CutSuffix(script, []byte("@CLOSE@"))
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer func() {
			si.mu.Lock()
			for _, c := range si.conns {
				c.Close()
			}
			si.mu.Unlock()
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			si.mu.Lock()
			si.conns = append(si.conns, c)
			si.mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					io.Copy(io.Discard, req.Body)
					id := req.URL.Path[strings.LastIndexByte(req.URL.Path, '/')+1:]
					if _, err := c.Write(bytes.ReplaceAll(script, []byte("@ID@"), []byte(id))); err != nil || closes {
						return
					}
				}
			}()
		}
	}()
	return si
}

// answer is what one client got: ok false for an error (a proxy's own 502/504, a broken
// connection, a cut body).
type answer struct {
	ok     bool
	status int
	head   string // the headers the client saw, "k: v" lines, sorted by the map's order
	body   string
	err    string
	// timeout: the error was a timeout (an answer that did not end, or a loaded machine).
	timeout bool
}

func (a answer) String() string {
	if !a.ok {
		return "error: " + a.err
	}
	return fmt.Sprintf("%d %q", a.status, a.body)
}

// proxyUnderTest is one way of forwarding to the instance.
type proxyUnderTest struct {
	name string
	url  string
	p    *Proxy // nil for ReverseProxy
	// ownError tells the proxy's own error answers from the instance's.
	ownError func(resp *http.Response, body string) bool
}

// diffTimeout is the proxies' first-byte and idle timeout (the clients wait twice as long):
// long enough not to fire on a loaded machine in tests, short when fuzzing, where inputs
// with answers that never end are common. A timeout is an error, which ramp may always
// answer, and a ReverseProxy timeout is not compared.
func diffTimeout() time.Duration {
	if f := flag.Lookup("test.fuzz"); f != nil && f.Value.String() != "" {
		return 100 * time.Millisecond
	}
	return 3 * time.Second
}

// rampUnderTest serves a ramp Proxy for the instance at addr with s (plus short timeouts).
func rampUnderTest(t testing.TB, name, addr string, s Settings) proxyUnderTest {
	t.Helper()
	p := New("diff", Options{Logger: quietLogger()})
	t.Cleanup(p.Close)
	s.FirstByteTimeout, s.IdleTimeout = diffTimeout(), diffTimeout()
	p.SetSettings(s)
	p.SetTable(Table{Pools: []Pool{{Revision: 1, Weight: 100, Backends: []Backend{{ID: "instance-under-test", Addr: addr}}}}})
	srv := NewServer(p, ServerConfig{Logger: quietLogger()})
	ln := serveLocal(t, srv)
	return proxyUnderTest{name: name, url: "http://" + ln.Addr().String(), p: p,
		ownError: func(resp *http.Response, body string) bool {
			return (resp.StatusCode == http.StatusBadGateway || resp.StatusCode == http.StatusGatewayTimeout) &&
				(body == "" || strings.HasPrefix(body, "upstream instance-under-test: "))
		}}
}

// reverseProxyUnderTest is net/http's ReverseProxy with the same timeout, on a new instance
// connection for every request: each client's reference answer is then the first answer
// the instance gives to that request alone. (With keep-alives, whether the Transport sees
// unasked bytes on an idle connection before it sends the next request there is a race of
// its own: it then answered 502 where ramp rightly answered, about once in a few hundred
// runs of the 304-with-a-body seed.)
func reverseProxyUnderTest(t testing.TB, addr string) proxyUnderTest {
	t.Helper()
	tr := &http.Transport{ResponseHeaderTimeout: diffTimeout(), DisableCompression: true, DisableKeepAlives: true}
	t.Cleanup(tr.CloseIdleConnections)
	u := &url.URL{Scheme: "http", Host: addr}
	rp := &httputil.ReverseProxy{
		Rewrite:   func(pr *httputil.ProxyRequest) { pr.SetURL(u) },
		Transport: tr,
		ErrorLog:  nil,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			w.Header().Set("X-Proxy-Error", "1")
			if isTimeout(err) {
				w.Header().Set("X-Proxy-Error", "timeout")
			}
			w.WriteHeader(http.StatusBadGateway)
		},
	}
	rp.ErrorLog = discardLog
	s := httptest.NewUnstartedServer(rp)
	s.Config.ErrorLog = discardLog
	s.Start()
	t.Cleanup(s.Close)
	return proxyUnderTest{name: "ReverseProxy", url: s.URL,
		ownError: func(resp *http.Response, _ string) bool { return resp.Header.Get("X-Proxy-Error") != "" }}
}

// discarded is ramp's ramp_upstream_connections_discarded_total for reason.
func (pt proxyUnderTest) discarded(reason string) float64 {
	var m dto.Metric
	pt.p.metrics.discarded.WithLabelValues("1", "", reason).(prometheus.Metric).Write(&m)
	return m.GetCounter().GetValue()
}

// ask sends one request on a new client connection and records the answer.
func ask(pt proxyUnderTest, method, id string) answer {
	req, _ := http.NewRequest(method, pt.url+"/r/"+id, nil)
	req.Header.Set("Cookie", "session="+id)
	c := &http.Client{Timeout: 2 * diffTimeout(), Transport: &http.Transport{DisableKeepAlives: true, DisableCompression: true}}
	resp, err := c.Do(req)
	if err != nil {
		return answer{err: err.Error(), timeout: isTimeout(err)}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return answer{err: "body: " + err.Error(), timeout: isTimeout(err)}
	}
	if pt.ownError(resp, string(b)) {
		return answer{err: fmt.Sprintf("the proxy answered %d", resp.StatusCode),
			timeout: resp.StatusCode == http.StatusGatewayTimeout || resp.Header.Get("X-Proxy-Error") == "timeout"}
	}
	var head strings.Builder
	for k, vv := range resp.Header {
		for _, v := range vv {
			fmt.Fprintf(&head, "%s: %s\n", k, v)
		}
	}
	return answer{ok: true, status: resp.StatusCode, head: head.String(), body: string(b)}
}

// diffIDs are the requests' ids: none is a substring of another.
var diffIDs = []string{"Qa1xQ", "Qb2yQ", "Qc3zQ", "Qd4wQ"}

// checkUpstreamBytes sends len(diffIDs) clients in sequence through each proxy to an
// instance answering with script (heads: bit i makes request i a HEAD) and fails when a
// client is given another request's answer, or ramp answers where ReverseProxy answers
// otherwise. It returns ramp's answers per proxy.
func checkUpstreamBytes(t *testing.T, script []byte, heads uint8) map[string][]answer {
	t.Helper()
	quietStdLog.Do(func() { log.SetOutput(io.Discard) }) // Transport logs unasked bytes there
	type run struct {
		pt      proxyUnderTest
		answers []answer
	}
	var runs []*run
	mk := func(pt func(addr string) proxyUnderTest) {
		si := newScriptInstance(t, script, nil) // one instance per proxy: no shared connections
		runs = append(runs, &run{pt: pt(si.ln.Addr().String())})
	}
	mk(func(a string) proxyUnderTest { return reverseProxyUnderTest(t, a) })
	mk(func(a string) proxyUnderTest { return rampUnderTest(t, "fast server", a, Settings{}) })
	mk(func(a string) proxyUnderTest {
		return rampUnderTest(t, "net/http server, fast path", a, Settings{DisableFastServer: true})
	})
	mk(func(a string) proxyUnderTest {
		return rampUnderTest(t, "ReverseProxy path", a, Settings{DisableFastPath: true})
	})
	var wg sync.WaitGroup
	for _, r := range runs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i, id := range diffIDs {
				m := http.MethodGet
				if heads&(1<<i) != 0 {
					m = http.MethodHead
				}
				r.answers = append(r.answers, ask(r.pt, m, id))
			}
		}()
	}
	wg.Wait()
	ref := runs[0]
	out := map[string][]answer{}
	for _, r := range runs {
		for i, a := range r.answers {
			if !a.ok {
				continue
			}
			for j, other := range diffIDs {
				if j != i && (strings.Contains(a.body, other) || strings.Contains(a.head, other)) {
					t.Errorf("%s: client %d (request %s) was given request %s's answer: %d %q\nheaders:\n%s\nscript %q",
						r.pt.name, i, diffIDs[i], other, a.status, a.body, a.head, script)
				}
			}
		}
		if r == ref {
			continue
		}
		out[r.pt.name] = r.answers
		for i, a := range r.answers {
			want := ref.answers[i]
			if want.timeout {
				continue // ReverseProxy gave up waiting: nothing to compare with
			}
			if a.ok && (!want.ok || a.status != want.status || a.body != want.body) {
				t.Errorf("%s: client %d got %v, ReverseProxy gave %v\nscript %q heads %b",
					r.pt.name, i, a, want, script, heads)
			}
		}
	}
	return out
}

// unaskedScripts are instances that send more than the answer they frame; the first answer
// is the real one, what follows must reach nobody.
var unaskedScripts = map[string]string{
	"second answer":        "HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n@ID@!!HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nsmuggled!",
	"garbage after answer": "HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n@ID@!!xyz",
	"204 with a body":      "HTTP/1.1 204 No Content\r\nX-Id: @ID@\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nsmuggled!",
	"304 with a body":      "HTTP/1.1 304 Not Modified\r\nX-Id: @ID@\r\n\r\n@ID@ body",
	"chunked then more":    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n7\r\n@ID@!!\r\n0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nsmuggled!",
	"early hints then two": "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n@ID@!!HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nsmuggled!",
	"close-delimited":      "HTTP/1.1 200 OK\r\n\r\n@ID@ until close@CLOSE@",
	"echo cookie twice":    "HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n@ID@!!HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n@ID@!!",
}

// TestUnaskedBytesReachNobody: each way an instance can send more than it framed, through
// every proxy: each client gets its own answer (or an error), never the next one's, and
// ramp counts and closes the connection.
func TestUnaskedBytesReachNobody(t *testing.T) {
	for name, script := range unaskedScripts {
		for _, heads := range []uint8{0, 0b0101} {
			t.Run(fmt.Sprintf("%s/heads=%04b", name, heads), func(t *testing.T) {
				t.Parallel()
				got := checkUpstreamBytes(t, []byte(script), heads)
				for proxy, answers := range got {
					for i, a := range answers {
						if !a.ok && heads&(1<<i) == 0 {
							t.Errorf("%s: client %d got an error, want its own answer: %s", proxy, i, a.err)
						}
						if a.ok && heads&(1<<i) == 0 && !strings.Contains(a.head+a.body, diffIDs[i]) {
							t.Errorf("%s: client %d got %v, not its own answer", proxy, i, a)
						}
					}
				}
			})
		}
	}
}

// TestHeadAnsweredWithBody: an instance that sends a body after a HEAD answer must not make
// the next request fail (it did, with 502) nor be given that body.
func TestHeadAnsweredWithBody(t *testing.T) {
	got := checkUpstreamBytes(t, []byte("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n@ID@"), 0b0001)
	for proxy, answers := range got {
		for i, a := range answers {
			if !a.ok || a.status != 200 {
				t.Errorf("%s: client %d got %v, want 200", proxy, i, a)
			}
			if i > 0 && a.body != diffIDs[i] {
				t.Errorf("%s: client %d got body %q, want %q", proxy, i, a.body, diffIDs[i])
			}
		}
	}
}

// TestUnaskedConnectionCounted: the fast path closes a connection that holds unasked bytes,
// whether they came with the answer or after the connection went idle, counts it, and never
// reuses it.
func TestUnaskedConnectionCounted(t *testing.T) {
	const (
		answer2  = "HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n@ID@!!"
		smuggled = "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nsmuggled!"
	)
	for _, tc := range []struct {
		name       string
		script     string
		late       string // sent once the connection is idle in ramp's pool
		fastServer bool
		discarded  bool
	}{
		{"with the answer, fast server", answer2 + smuggled, "", true, true},
		{"with the answer, net/http server", answer2 + smuggled, "", false, true},
		{"while idle", answer2, smuggled, true, true},
		{"nothing unasked", answer2, "", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			si := newScriptInstance(t, []byte(tc.script), nil)
			addr := si.ln.Addr().String()
			pt := rampUnderTest(t, "ramp", addr, Settings{DisableFastServer: !tc.fastServer})
			for i, id := range diffIDs[:3] {
				a := ask(pt, http.MethodGet, id)
				if !a.ok || a.body != id+"!!" {
					t.Fatalf("client %d got %v, want 200 %q", i, a, id+"!!")
				}
				if tc.late == "" {
					continue
				}
				waitFor(t, 5*time.Second, "the connection to be idle in the pool", func() bool { return idleConns(pt.p, addr) == 1 })
				si.sendLate([]byte(tc.late))
			}
			n := pt.discarded(reasonUnasked)
			if tc.discarded && n < 2 {
				t.Errorf("ramp_upstream_connections_discarded_total{reason=%q} = %v, want at least 2 (one per reused connection)", reasonUnasked, n)
			}
			if !tc.discarded && n != 0 {
				t.Errorf("ramp_upstream_connections_discarded_total = %v, want 0", n)
			}
			if tc.discarded && si.accepted() < 3 {
				t.Errorf("the instance saw %d connections for 3 requests: a connection with unasked bytes was reused", si.accepted())
			}
			if !tc.discarded && si.accepted() != 1 {
				t.Errorf("the instance saw %d connections for 3 requests, want 1 (reused)", si.accepted())
			}
		})
	}
}

var (
	discardLog  = log.New(io.Discard, "", 0)
	quietStdLog sync.Once
)

// FuzzUpstreamBytes: arbitrary bytes from an instance, several clients in sequence, through
// ramp's three paths and ReverseProxy: no client is ever given another request's answer,
// and where ramp answers, it answers as ReverseProxy does.
func FuzzUpstreamBytes(f *testing.F) {
	for _, s := range unaskedScripts {
		f.Add([]byte(s), uint8(0))
		f.Add([]byte(s), uint8(0b1010))
	}
	for path, s := range rawAnswers {
		s = strings.Replace(s, "hi", "@ID@", 1)
		if rawCloses[path] {
			s += "@CLOSE@"
		}
		f.Add([]byte(s), uint8(0))
	}
	f.Fuzz(func(t *testing.T, script []byte, heads uint8) {
		if len(script) > 16<<10 {
			return
		}
		checkUpstreamBytes(t, script, heads)
	})
}

// TestHugeAnswerHead: an instance whose answer head never ends (40 MiB of one header) gets
// its client a 502 that names the limit, on every path, without ramp reading it all into
// memory; a head under the limit but over the connection's buffer still passes.
func TestHugeAnswerHead(t *testing.T) {
	const huge = 40 << 20
	addr := serveRequests(t, func(c net.Conn, req *http.Request) bool {
		if req.URL.Path == "/big-but-fine" { // 20 KiB: over the 4 KiB buffer, under 64 KiB
			io.WriteString(c, "HTTP/1.1 200 OK\r\nX-Big: "+strings.Repeat("b", 20<<10)+"\r\nContent-Length: 2\r\n\r\nok")
			return true
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nX-Huge: ")
		chunk := bytes.Repeat([]byte("h"), 1<<20)
		for range huge / len(chunk) {
			if _, err := c.Write(chunk); err != nil {
				return false // ramp stopped reading and closed
			}
		}
		io.WriteString(c, "\r\nContent-Length: 2\r\n\r\nno")
		return true
	})
	for _, tc := range []struct {
		name string
		s    Settings
	}{
		{"fast server", Settings{}},
		{"net/http server, fast path", Settings{DisableFastServer: true}},
		{"ReverseProxy path", Settings{DisableFastPath: true}},
		{"limit set to 8 KiB", Settings{MaxResponseHeaderBytes: 8 << 10}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs bytes.Buffer
			var mu sync.Mutex
			p := New("huge", Options{Logger: slog.New(slog.NewTextHandler(lockedWriter{&mu, &logs}, nil))})
			t.Cleanup(p.Close)
			p.SetSettings(tc.s)
			p.SetTable(Table{Pools: []Pool{{Revision: 1, Weight: 100, Backends: []Backend{{ID: "huge-head", Addr: addr}}}}})
			f := serve(t, p)
			runtime.GC()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			code, body, _ := f.get(t, "/huge")
			runtime.ReadMemStats(&after)
			if code != http.StatusBadGateway {
				t.Fatalf("answer to a 40 MiB head: %d %q, want 502", code, body)
			}
			if grew := after.TotalAlloc - before.TotalAlloc; grew > 8<<20 {
				t.Errorf("ramp allocated %d MiB while refusing a 40 MiB head, want under 8", grew>>20)
			}
			limit := tc.s.MaxResponseHeaderBytes
			if limit == 0 {
				limit = DefaultMaxResponseHeaderBytes
			}
			mu.Lock()
			l := logs.String()
			mu.Unlock()
			if !strings.Contains(l, "maxResponseHeaderBytes") || !strings.Contains(l, strconv.Itoa(limit)) {
				t.Errorf("log does not name spec.proxy.maxResponseHeaderBytes (%d):\n%s", limit, l)
			}
			code, body, _ = f.get(t, "/big-but-fine")
			want := http.StatusOK
			if limit < 20<<10 {
				want = http.StatusBadGateway
			}
			if code != want {
				t.Errorf("answer with a 20 KiB head: %d %q, want %d", code, body, want)
			}
		})
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}
