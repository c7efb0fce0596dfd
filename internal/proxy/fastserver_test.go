package proxy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"ramp.dev/ramp/internal/proxy/h1"
)

// diffUpstream answers the differential test's requests.
func diffUpstream(t *testing.T) Backend {
	t.Helper()
	return upstream(t, "u", func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/echo":
			b, _ := io.ReadAll(r.Body)
			w.Header().Set("X-Got", fmt.Sprintf("%s %s len=%d te=%v host=%s xff=%s xfh=%s id=%s conn=%q secret=%q cc=%q",
				r.Method, r.RequestURI, r.ContentLength, r.TransferEncoding, r.Host, r.Header.Get("X-Forwarded-For"),
				r.Header.Get("X-Forwarded-Host"), r.Header.Get("X-Request-Id"), r.Header.Values("Connection"),
				r.Header.Get("X-Secret"), r.Header.Get("Cache-Control")))
			w.Write(b)
		case "/sniff": // no Content-Type: the proxy's server sniffs one
			w.Header()["Content-Type"] = nil
			io.WriteString(w, "<html><body>hi</body></html>")
		case "/early":
			w.Header().Set("Link", "</style.css>; rel=preload")
			w.WriteHeader(http.StatusEarlyHints)
			io.WriteString(w, "after hints")
		case "/close":
			w.Header().Set("Connection", "close")
			io.WriteString(w, "closing")
		case "/big":
			for range 20 {
				w.Write(bytes.Repeat([]byte("y"), 5000))
				w.(http.Flusher).Flush()
			}
		case "/sse":
			w.Header().Set("Content-Type", "text/event-stream")
			w.Header().Set("Content-Length", "24")
			io.WriteString(w, "data: one\n\n")
			w.(http.Flusher).Flush()
			io.WriteString(w, "data: two\n\n\n")
		case "/trailer":
			w.Header().Set("Trailer", "X-Sum")
			io.WriteString(w, "body")
			w.Header().Set("X-Sum", "42")
			w.Header().Set(http.TrailerPrefix+"X-Late", "7")
		case "/nocontent":
			w.WriteHeader(http.StatusNoContent)
		case "/notmodified":
			w.Header().Set("ETag", `"v1"`)
			w.WriteHeader(http.StatusNotModified)
		case "/500":
			http.Error(w, "boom", http.StatusInternalServerError)
		case "/empty":
			w.Header().Set("Content-Length", "0")
		case "/cut": // declares more than it sends
			w.Header().Set("Content-Length", "100")
			io.WriteString(w, "short")
			w.(http.Flusher).Flush()
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				conn.Close()
			}
		default:
			io.WriteString(w, "ok "+r.URL.RequestURI())
		}
	})
}

// rawExchange sends raw on a new connection to addr and reads up to n answers (fewer when
// the server closes); it returns what it read and whether the server then closed.
func rawExchange(t *testing.T, addr, raw, method string, n int, closeWrite bool) (out string, closed bool, local string) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Error(err)
		return
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Error(err)
		return
	}
	if closeWrite {
		c.(*net.TCPConn).CloseWrite()
	}
	// The answers' heads as sent, their bodies decoded (chunk sizes follow the reads, which
	// vary from run to run) and their trailers.
	var got, b strings.Builder
	br := bufio.NewReader(io.TeeReader(c, &got))
	head := func(from int) int {
		end := got.Len() - br.Buffered()
		b.WriteString(got.String()[from:end])
		return end
	}
	pos := 0
	for i := 0; i < n; i++ {
		resp, err := http.ReadResponse(br, &http.Request{Method: method})
		if err != nil {
			break
		}
		pos = head(pos)
		body, err := io.ReadAll(resp.Body)
		fmt.Fprintf(&b, "<body %q err=%v trailer=%v>\n", body, err, resp.Trailer)
		pos = got.Len() - br.Buffered()
		if resp.StatusCode < 200 {
			i-- // informational: the answer follows
		}
	}
	c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	_, err = br.ReadByte()
	closed = err != nil && !isTimeout(err)
	if err == nil {
		b.WriteString("<more>")
	}
	return b.String(), closed, c.LocalAddr().String()
}

var (
	dateLine = regexp.MustCompile(`(?m)^Date: .*\r$`)
	idLine   = regexp.MustCompile(`[0-9a-f]{32}`)
)

func normalize(s string) string {
	s = dateLine.ReplaceAllString(s, "Date: X\r")
	return idLine.ReplaceAllString(s, "ID")
}

// TestFastServerMatchesNetHTTP sends the same bytes to a proxy served by the fast server and
// to one served by net/http alone: the answers must be the same, byte for byte (but for
// dates and generated request ids), and so must the connection's fate.
func TestFastServerMatchesNetHTTP(t *testing.T) {
	b := diffUpstream(t)
	addrs := map[bool]string{}
	var servedFast sync.Map // client addresses the fast server answered
	for _, off := range []bool{false, true} {
		p := New("diff", Options{Logger: quietLogger()})
		t.Cleanup(p.Close)
		p.SetSettings(Settings{DisableFastServer: off, MaxRequestBodyBytes: 1000})
		p.SetTable(Table{Pools: []Pool{{Revision: 1, Weight: 100, Backends: []Backend{b}}}})
		srv := NewServer(p, ServerConfig{MaxHeaderBytes: 4 << 10, Logger: quietLogger()})
		srv.fast.OnServe = func(addr string) { servedFast.Store(addr, true) }
		ln := serveLocal(t, srv)
		addrs[off] = ln.Addr().String()
	}
	get := func(path string, hdr ...string) string {
		return "GET " + path + " HTTP/1.1\r\nHost: example.test\r\n" + strings.Join(hdr, "") + "\r\n"
	}
	tests := []struct {
		name string
		raw  string
		n    int  // answers expected
		fast bool // the fast server must answer it itself
	}{
		{"plain GET", get("/ok?x=1"), 1, true},
		{"HEAD", "HEAD /big HTTP/1.1\r\nHost: h\r\n\r\n", 1, true},
		{"HEAD of short", "HEAD /ok HTTP/1.1\r\nHost: h\r\n\r\n", 1, true},
		{"POST with length", "POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello", 1, true},
		{"POST chunked", "POST /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n3;ext=1\r\nabc\r\n0\r\n\r\n", 1, true},
		{"POST chunked with trailer", "POST /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-T: 1\r\n\r\n", 1, true},
		{"POST empty", "POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n", 1, true},
		{"POST body over the limit", "POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 2000\r\n\r\n" + strings.Repeat("z", 2000), 1, true},
		{"chunked body over the limit", "POST /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n7d0\r\n" + strings.Repeat("z", 2000) + "\r\n0\r\n\r\n", 1, true},
		{"body cut short", "POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 50\r\n\r\nonly this", 1, true},
		{"bad chunk", "POST /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n", 1, true},
		{"Connection: close", get("/echo", "Connection: close\r\n"), 1, true},
		{"hop-by-hop", get("/echo", "Connection: keep-alive, X-Secret\r\n", "X-Secret: s\r\n", "X-Forwarded-For: 6.6.6.6\r\n"), 1, true},
		{"pipelined", get("/ok?1") + get("/ok?2") + "POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nhi" + get("/ok?3"), 4, true},
		{"lower-case names", "GET /echo HTTP/1.1\r\nhost: h\r\nx-request-id: given-id\r\npragma: no-cache\r\n\r\n", 1, true},
		{"request id kept", get("/echo", "X-Request-Id: abc-123\r\n"), 1, true},
		{"invalid request id replaced", get("/echo", "X-Request-Id: \x80\r\n"), 1, true},
		{"sniffed type", get("/sniff"), 1, true},
		{"early hints", get("/early"), 1, true},
		{"upstream closes", get("/close") + get("/ok"), 2, true},
		{"flushed body", get("/big"), 1, true},
		{"event stream", get("/sse"), 1, true},
		{"trailers", get("/trailer"), 1, true},
		{"204", get("/nocontent"), 1, true},
		{"304", get("/notmodified"), 1, true},
		{"500", get("/500"), 1, true},
		{"empty", get("/empty"), 1, true},
		{"answer cut", get("/cut"), 1, true},
		{"odd target", get("/a/%2F/b;c=d:e@f!$&'()*+,?q=%41&r=/?"), 1, true},
		{"GET with a body", "GET /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc", 1, true},
		// Handed to net/http.
		{"no Host", "GET /ok HTTP/1.1\r\n\r\n", 1, false},
		{"two Hosts", "GET /ok HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 1, false},
		{"bad Host", "GET /ok HTTP/1.1\r\nHost: a b\r\n\r\n", 1, false},
		{"HTTP/1.0", "GET /ok HTTP/1.0\r\n\r\n", 1, false},
		{"HTTP/1.0 keep-alive", "GET /ok HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", 1, false},
		{"absolute target", "GET http://h/ok HTTP/1.1\r\nHost: x\r\n\r\n", 1, false},
		{"asterisk", "OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n", 1, false},
		{"Expect", "POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\nhi", 1, false},
		{"bad Expect", "POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\nExpect: something\r\n\r\nhi", 1, false},
		{"bad length", "POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 1x\r\n\r\nhi", 1, false},
		{"two lengths", "POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nhi", 1, false},
		{"length and chunked", "POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n", 1, false},
		{"unknown coding", "POST /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n", 1, false},
		{"space in target", "GET /a b HTTP/1.1\r\nHost: h\r\n\r\n", 1, false},
		{"bare LF", "GET /ok HTTP/1.1\nHost: h\n\n", 1, false},
		{"folded header", get("/echo", "X-A: 1\r\n", " continued\r\n"), 1, false},
		{"bad header name", get("/echo", "X A: 1\r\n"), 1, false},
		{"control in value", get("/echo", "X-A: 1\x01\r\n"), 1, false},
		{"header over the limit", get("/ok", "X-Big: "+strings.Repeat("b", 9000)+"\r\n"), 1, false},
		{"TE", get("/echo", "TE: trailers\r\n"), 1, false},
		{"Upgrade", get("/echo", "Connection: Upgrade\r\n", "Upgrade: websocket\r\n"), 1, false},
		{"h2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 1, false},
		{"garbage", "hello\r\n\r\n", 1, false},
		{"cut head", "GET /ok HTTP/1.1\r\nHost: h\r\n", 1, false},
		{"plain then handed", get("/ok?1") + "GET /ok HTTP/1.0\r\n\r\n", 2, true},
	}
	// The answers' request method, when not GET; requests cut short, after which the client
	// half-closes the connection.
	method := map[string]string{"HEAD": "HEAD", "HEAD of short": "HEAD"}
	cut := map[string]bool{"body cut short": true, "cut head": true}
	res := exchangeAll(t, len(tests), func(i int, off bool) exchanged {
		out, closed, local := rawExchange(t, addrs[off], tests[i].raw, method[tests[i].name], tests[i].n, cut[tests[i].name])
		return exchanged{out, closed, local}
	})
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, want := res[i][0], res[i][1]
			if normalize(got.out) != normalize(want.out) {
				t.Errorf("fast server answered\n%s\nnet/http answered\n%s", got.out, want.out)
			}
			if got.closed != want.closed {
				t.Errorf("connection closed: fast server %v, net/http %v", got.closed, want.closed)
			}
			if _, served := servedFast.Load(got.local); served != tc.fast {
				t.Errorf("served by the fast server: %v, want %v", served, tc.fast)
			}
		})
	}
}

type exchanged struct {
	out    string
	closed bool
	local  string
}

// exchangeAll runs do for n cases on both servers (fast, then net/http) at once.
func exchangeAll(t *testing.T, n int, do func(i int, off bool) exchanged) [][2]exchanged {
	res := make([][2]exchanged, n)
	var wg sync.WaitGroup
	for i := range n {
		for j, off := range []bool{false, true} {
			wg.Go(func() { res[i][j] = do(i, off) })
		}
	}
	wg.Wait()
	return res
}

// TestFastServerClientGone: a client that hangs up while its instance thinks is counted as
// gone (499), and the instance's connection is closed, as with net/http's server.
func TestFastServerClientGone(t *testing.T) {
	var aborted atomic.Int64
	release := make(chan struct{})
	b := upstream(t, "slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
			aborted.Add(1)
		case <-release:
		}
	})
	t.Cleanup(func() { close(release) }) // before the instance's Close, which waits for it
	p := New("gone", Options{Logger: quietLogger()})
	t.Cleanup(p.Close)
	p.SetTable(Table{Pools: []Pool{{Revision: 1, Weight: 100, Backends: []Backend{b}}}})
	f := serve(t, p)
	since := time.Now()
	addr := strings.TrimPrefix(f.url, "http://")
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(c, "GET /slow HTTP/1.1\r\nHost: h\r\n\r\n")
	waitFor(t, 5*time.Second, "the request in flight", func() bool { return p.InFlight("slow") == 1 })
	c.Close()
	waitFor(t, 5*time.Second, "the instance's request cancelled", func() bool { return aborted.Load() == 1 })
	s := statsOf(t, p, 1, since, 1)
	if s.Errors != 0 || s.Requests != 1 {
		t.Errorf("stats %+v: want one request, not an error", s)
	}
	if p.InFlight("slow") != 0 {
		t.Error("request still in flight")
	}
}

// TestFastServerShutdown: Shutdown waits for a request in flight on the fast server, which
// gets its answer with Connection: close; idle connections are closed at once.
func TestFastServerShutdown(t *testing.T) {
	release := make(chan struct{})
	b := upstream(t, "a", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			<-release
		}
		io.WriteString(w, "done")
	})
	p := New("shut", Options{Logger: quietLogger()})
	t.Cleanup(p.Close)
	p.SetTable(Table{Pools: []Pool{{Revision: 1, Weight: 100, Backends: []Backend{b}}}})
	srv := NewServer(p, ServerConfig{Logger: quietLogger()})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- Serve(srv, ln) }()
	addr := ln.Addr().String()

	idle, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	if got, _ := rawOne(t, idle, "GET /ok HTTP/1.1\r\nHost: h\r\n\r\n"); got.StatusCode != 200 {
		t.Fatalf("status %d", got.StatusCode)
	}
	busy, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	io.WriteString(busy, "GET /slow HTTP/1.1\r\nHost: h\r\n\r\n")
	waitFor(t, 5*time.Second, "the slow request in flight", func() bool { return p.InFlight("a") == 1 })

	done := make(chan error, 1)
	go func() { done <- srv.Shutdown(context.Background()) }()
	// The idle connection is closed; the busy one is not, and Shutdown waits.
	idle.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := idle.Read(make([]byte, 1)); err == nil || isTimeout(err) {
		t.Errorf("idle connection not closed: %v", err)
	}
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned with a request in flight: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	if _, err := net.Dial("tcp", addr); err == nil {
		t.Error("the listener still accepts")
	}
	close(release)
	resp, err := http.ReadResponse(bufio.NewReader(busy), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	if string(body) != "done" || !resp.Close {
		t.Errorf("got %q, close %v: want the answer with Connection: close", body, resp.Close)
	}
	if err := <-done; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		t.Errorf("Serve returned %v", err)
	}
}

func rawOne(t *testing.T, c net.Conn, raw string) (*http.Response, []byte) {
	t.Helper()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	defer c.SetDeadline(time.Time{})
	io.WriteString(c, raw)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// TestFastServerOff: with DisableFastServer the proxy's own tests pass on net/http's
// server too; here, one request of each kind is enough to see that nothing reaches the
// fast server.
func TestFastServerOff(t *testing.T) {
	u := newFastUpstream(t)
	p := New("off", Options{Logger: quietLogger()})
	t.Cleanup(p.Close)
	p.SetSettings(Settings{DisableFastServer: true})
	p.SetTable(Table{Pools: []Pool{{Revision: 3, Weight: 100, Backends: []Backend{u.backend()}}}})
	srv := NewServer(p, ServerConfig{Logger: quietLogger()})
	ln := serveLocal(t, srv)
	for _, path := range []string{"/ok", "/chunked", "/cl"} {
		resp, err := http.Get("http://" + ln.Addr().String() + path)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get(RevisionHeader) != "3" {
			t.Errorf("%s: %d rev %q", path, resp.StatusCode, resp.Header.Get(RevisionHeader))
		}
	}
	if n := srv.fast.Served(); n != 0 {
		t.Errorf("the fast server served %d requests with DisableFastServer", n)
	}
}

var _ = httptest.NewRecorder

// rawAnswers are canned answers of an instance, by path; those listed in rawCloses are
// followed by the end of the connection.
var rawAnswers = map[string]string{
	"/lower":     "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\nx-request-id: theirs\r\n\r\nhi",
	"/connclose": "HTTP/1.1 200 OK\r\nConnection: close, X-Foo\r\nX-Foo: 1\r\nContent-Length: 2\r\n\r\nhi",
	"/listed":    "HTTP/1.1 200 OK\r\nConnection: X-Foo\r\nX-Foo: 1\r\nX-Bar: 2\r\nKeep-Alive: timeout=5\r\nContent-Length: 2\r\n\r\nhi",
	"/eof":       "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end",
	"/http10":    "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nhi",
	"/trailer":   "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\nX-T: 1\r\n\r\n",
	"/announced": "HTTP/1.1 200 OK\r\nTrailer: X-T\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\nX-T: 1\r\n\r\n",
	"/dupcl":     "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nhi",
	"/badcl":     "HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\nhi",
	"/short":     "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhi",
	"/hints":     "HTTP/1.1 103 Early Hints\r\nLink: <x>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi",
	"/sniff":     "HTTP/1.1 200 OK\r\nContent-Length: 15\r\n\r\n<html>hi</html>",
	"/fold":      "HTTP/1.1 200 OK\r\nX: a\r\n b\r\nContent-Length: 2\r\n\r\nhi",
	"/reason":    "HTTP/1.1 299 Whatever Reason\r\nContent-Length: 2\r\n\r\nhi",
	"/clte":      "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n",
	"/bighead":   "HTTP/1.1 200 OK\r\nX-Big: " + strings.Repeat("b", 6000) + "\r\nContent-Length: 2\r\n\r\nhi",
	"/204cl":     "HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n",
	"/cookies":   "HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nContent-Length: 0\r\n\r\n",
	"/lf":        "HTTP/1.1 200 OK\nContent-Length: 2\n\nhi",
	"/garbage":   "HELLO\r\n\r\n",
	"/101":       "HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: Upgrade\r\n\r\n",
	"/chunkbig":  "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + strings.Repeat("400\r\n"+strings.Repeat("c", 1024)+"\r\n", 40) + "0\r\n\r\n",
}

var rawCloses = map[string]bool{"/eof": true, "/short": true, "/http10": true, "/badcl": true, "/garbage": true, "/101": true}

func rawInstance(t *testing.T) Backend {
	t.Helper()
	addr := serveRequests(t, func(c net.Conn, req *http.Request) bool {
		io.Copy(io.Discard, req.Body)
		answer := rawAnswers[req.URL.Path]
		if req.Method == http.MethodHead { // the heads alone
			heads := 1
			if req.URL.Path == "/hints" {
				heads = 2
			}
			end := 0
			for range heads {
				end += h1.HeadEnd([]byte(answer[end:]))
			}
			answer = answer[:end]
		}
		io.WriteString(c, answer)
		return !rawCloses[req.URL.Path]
	})
	return Backend{ID: "raw", Addr: addr}
}

// TestFastServerMatchesNetHTTPOnOddAnswers: the same, for answers of every kind an instance
// may send (the fast server parses them itself or leaves them to http.ReadResponse).
func TestFastServerMatchesNetHTTPOnOddAnswers(t *testing.T) {
	b := rawInstance(t)
	addrs := map[bool]string{}
	for _, off := range []bool{false, true} {
		p := New("odd", Options{Logger: quietLogger()})
		t.Cleanup(p.Close)
		p.SetSettings(Settings{DisableFastServer: off})
		p.SetTable(Table{Pools: []Pool{{Revision: 1, Weight: 100, Backends: []Backend{b}}}})
		srv := NewServer(p, ServerConfig{Logger: quietLogger()})
		ln := serveLocal(t, srv)
		addrs[off] = ln.Addr().String()
	}
	type odd struct{ method, path string }
	var cases []odd
	for path := range rawAnswers {
		cases = append(cases, odd{"GET", path}, odd{"HEAD", path})
	}
	res := exchangeAll(t, len(cases), func(i int, off bool) exchanged {
		raw := cases[i].method + " " + cases[i].path + " HTTP/1.1\r\nHost: h\r\n\r\n"
		out, closed, local := rawExchange(t, addrs[off], raw, cases[i].method, 1, false)
		return exchanged{out, closed, local}
	})
	for i, tc := range cases {
		t.Run(tc.method+tc.path, func(t *testing.T) {
			got, want := res[i][0], res[i][1]
			if normalize(got.out) != normalize(want.out) {
				t.Errorf("fast server answered\n%s\nnet/http answered\n%s", got.out, want.out)
			}
			if got.closed != want.closed {
				t.Errorf("connection closed: fast server %v, net/http %v", got.closed, want.closed)
			}
		})
	}
}

// TestFastServerClientGoneAfterQuickRequest: the hang-up watcher's timer, left set by a quick
// request, still watches the next one on the connection (it fires early for that one and
// sets itself again for the rest of its delay).
func TestFastServerClientGoneAfterQuickRequest(t *testing.T) {
	var aborted atomic.Int64
	release := make(chan struct{})
	b := upstream(t, "slow", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/quick" {
			return
		}
		select {
		case <-r.Context().Done():
			aborted.Add(1)
		case <-release:
		}
	})
	t.Cleanup(func() { close(release) })
	p := New("gone", Options{Logger: quietLogger()})
	t.Cleanup(p.Close)
	p.SetTable(Table{Pools: []Pool{{Revision: 1, Weight: 100, Backends: []Backend{b}}}})
	f := serve(t, p)
	c, err := net.Dial("tcp", strings.TrimPrefix(f.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	for range 3 { // quick ones, each well within the watcher's delay
		io.WriteString(c, "GET /quick HTTP/1.1\r\nHost: h\r\n\r\n")
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	io.WriteString(c, "GET /slow HTTP/1.1\r\nHost: h\r\n\r\n")
	waitFor(t, 5*time.Second, "the request in flight", func() bool { return p.InFlight("slow") == 1 })
	c.Close()
	waitFor(t, 5*time.Second, "the instance's request cancelled", func() bool { return aborted.Load() == 1 })
}

// TestFastServerMergesAnswerHeaders: headers the proxy set on the response (the sticky
// cookie, the request id) come before the instance's values of the same name, and the
// instance's request id gives way to the proxy's, on both servers.
func TestFastServerMergesAnswerHeaders(t *testing.T) {
	b := rawInstance(t)
	for _, off := range []bool{false, true} {
		p := New("merge", Options{Logger: quietLogger()})
		t.Cleanup(p.Close)
		p.SetSettings(Settings{DisableFastServer: off})
		p.SetTable(Table{Pools: []Pool{{Revision: 1, Weight: 100, Backends: []Backend{b}}}, Sticky: &Sticky{Cookie: "bucket"}})
		srv := NewServer(p, ServerConfig{Logger: quietLogger()})
		ln := serveLocal(t, srv)
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		br := bufio.NewReader(c)
		for _, path := range []string{"/cookies", "/lower", "/cookies"} { // twice: storage reused
			io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: h\r\nX-Request-Id: mine\r\n\r\n")
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if got := resp.Header.Values("X-Request-Id"); len(got) != 1 || got[0] != "mine" {
				t.Errorf("off %v %s: X-Request-Id %q, want [mine]", off, path, got)
			}
			got := resp.Header.Values("Set-Cookie")
			want := 1
			if path == "/cookies" {
				want = 3
			}
			if len(got) != want || !strings.HasPrefix(got[0], "bucket=") || want == 3 && (got[1] != "a=1" || got[2] != "b=2") {
				t.Errorf("off %v %s: Set-Cookie %q, want the bucket's then the instance's", off, path, got)
			}
			if got := resp.Header.Get(RevisionHeader); got != "1" {
				t.Errorf("off %v %s: %s %q", off, path, RevisionHeader, got)
			}
		}
	}
}

// wrapped is a middleware around a handler; optIn adds FastServable.
type wrapped struct {
	h     http.Handler
	calls atomic.Int64
}

func (m *wrapped) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	m.calls.Add(1)
	m.h.ServeHTTP(w, r)
}

type optIn struct{ *wrapped }

func (m optIn) FastEndpoint() FastEndpoint { return m.h.(FastServable).FastEndpoint() }

// TestFastServerOptIn checks that NewServer gives the fast server to any handler that opts
// in with FastServable (a Proxy, its preview, a middleware around either), and that one
// that does not is served by net/http, through its own ServeHTTP, with a warning.
func TestFastServerOptIn(t *testing.T) {
	u := newFastUpstream(t)
	p := New("optin", Options{Logger: quietLogger()})
	t.Cleanup(p.Close)
	p.SetTable(Table{Pools: []Pool{{Revision: 3, Weight: 100, Backends: []Backend{u.backend()}}}, Preview: 3})
	plain := &wrapped{h: p}
	preview := &wrapped{h: p.PreviewHandler()}
	for _, tc := range []struct {
		name      string
		h         http.Handler
		mw        *wrapped // the middleware, when there is one
		wantFast  bool
		wantCalls int64 // of the middleware's ServeHTTP
	}{
		{"proxy", p, nil, true, 0},
		{"preview", p.PreviewHandler(), nil, true, 0},
		{"wrapped proxy, opted in", optIn{plain}, plain, true, 0},
		{"wrapped preview, opted in", optIn{preview}, preview, true, 0},
		{"wrapped, not opted in", &wrapped{h: p}, nil, false, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mw := tc.mw
			if w, ok := tc.h.(*wrapped); ok {
				mw = w
			}
			var logged bytes.Buffer
			srv := NewServer(tc.h, ServerConfig{Logger: slog.New(slog.NewTextHandler(&logged, nil))})
			if (srv.fast != nil) != tc.wantFast {
				t.Fatalf("fast server: %v, want %v", srv.fast != nil, tc.wantFast)
			}
			// Turning the fast server off is never silent.
			if warned := strings.Contains(logged.String(), "fast server off"); warned == tc.wantFast {
				t.Errorf("warned that the fast server is off: %v, want %v (log %q)", warned, !tc.wantFast, logged.String())
			}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			go Serve(srv, ln)
			defer srv.Close()
			for range 3 {
				resp, err := http.Get("http://" + ln.Addr().String() + "/ok")
				if err != nil {
					t.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || resp.Header.Get(RevisionHeader) != "3" {
					t.Errorf("%d rev %q", resp.StatusCode, resp.Header.Get(RevisionHeader))
				}
			}
			if tc.wantFast {
				if n := srv.fast.Served(); n != 3 {
					t.Errorf("the fast server served %d requests, want 3", n)
				}
			}
			if mw != nil {
				if n := mw.calls.Load(); n != tc.wantCalls {
					t.Errorf("the middleware's ServeHTTP ran %d times, want %d", n, tc.wantCalls)
				}
			}
		})
	}
}
