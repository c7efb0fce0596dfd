package fast

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"ramp.dev/ramp/test/testkit"
)

// The package's two seams, without the proxy: the differential tests against net/http run
// through the proxy in package proxy.

// connHandlers makes ConnHandlers that answer "fast" while taking is set.
type connHandlers struct {
	taking atomic.Bool
	made   atomic.Int64 // ConnHandlers made
	served atomic.Int64 // requests served
}

func (c *connHandlers) newConn() ConnHandler {
	c.made.Add(1)
	return connHandler{c}
}

type connHandler struct{ c *connHandlers }

func (h connHandler) Take() bool { return h.c.taking.Load() }

func (h connHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.c.served.Add(1)
	if connOf(w) == nil {
		panic("the fast server's writer is not recognised")
	}
	io.WriteString(w, "fast "+r.URL.Path)
}

// TestServerConnHandler: one ConnHandler per connection serves its requests while it takes
// them; when it does not, the connection goes to net/http's server and stays there.
func TestServerConnHandler(t *testing.T) {
	ch := &connHandlers{}
	ch.taking.Store(true)
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "net/http "+r.URL.Path)
	})}
	fs := NewServer(ch.newConn, hs, 0)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- fs.Serve(ln) }()
	defer func() {
		fs.Close()
		hs.Close()
		select {
		case err := <-done:
			if !errors.Is(err, http.ErrServerClosed) {
				t.Errorf("Serve returned %v, want http.ErrServerClosed", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Serve did not return after Close")
		}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	get := func(path string) string {
		t.Helper()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return string(b)
	}
	for _, path := range []string{"/a", "/b", "/c"} {
		if got := get(path); got != "fast "+path {
			t.Errorf("GET %s: %q, want the ConnHandler's answer", path, got)
		}
	}
	ch.taking.Store(false)
	if got := get("/d"); got != "net/http /d" {
		t.Errorf("GET /d: %q, want net/http's answer", got)
	}
	ch.taking.Store(true)
	if got := get("/e"); got != "net/http /e" {
		t.Errorf("GET /e: %q, want net/http's answer (the connection stays with it)", got)
	}
	if n := ch.made.Load(); n != 1 {
		t.Errorf("%d ConnHandlers made for one connection, want 1", n)
	}
	if n, m := ch.served.Load(), fs.Served(); n != 3 || m != 3 {
		t.Errorf("ConnHandler served %d requests, the server counted %d; want 3", n, m)
	}
	if n := fs.HandedOff(); n != 1 {
		t.Errorf("%d connections handed off, want 1", n)
	}
}

// exchange is a fake Exchange: it moves the request to next when the first instance
// refuses, and records the calls.
type exchange struct {
	addr, next string
	calls      []string
}

func (x *exchange) Addr() string { return x.addr }

func (x *exchange) Retry(ctx context.Context, r *http.Request, err error, refused bool) (io.ReadCloser, error) {
	x.calls = append(x.calls, fmt.Sprintf("Retry refused=%v", refused))
	if !refused || x.next == "" {
		return nil, err
	}
	x.addr, x.next = x.next, ""
	return r.Body, nil
}

func (x *exchange) Failed(w http.ResponseWriter, r *http.Request, err error) {
	x.calls = append(x.calls, "Failed")
	w.WriteHeader(http.StatusBadGateway)
}

func (x *exchange) Unasked(n int) { x.calls = append(x.calls, fmt.Sprintf("Unasked %d", n)) }

func (x *exchange) Answered(status int, h http.Header) {
	x.calls = append(x.calls, fmt.Sprintf("Answered %d", status))
	h.Set("X-Proxy", "yes")
}

func (x *exchange) BodyBegun() { x.calls = append(x.calls, "BodyBegun") }

func (x *exchange) Broken(clientGone bool, err error) {
	x.calls = append(x.calls, fmt.Sprintf("Broken clientGone=%v", clientGone))
}

// TestForwardExchange: Forward asks the Exchange where to go, for the retry policy and to
// record the answer, and keeps the connection for the next request.
func TestForwardExchange(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Up", r.Host)
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, "hello "+r.URL.Path)
	}))
	defer up.Close()
	good := up.Listener.Addr().String()
	fp := NewPool(PoolConfig{Dialer: &net.Dialer{Timeout: 5 * time.Second}, MaxResponseHead: 64 << 10})
	defer fp.CloseIdle(true)

	for _, tc := range []struct {
		name       string
		addr, next string
		wantCode   int
		wantBody   string
		wantCalls  string
		wantIdle   int
	}{
		{"answered", good, "", 201, "hello /x", "Answered 201,BodyBegun", 1},
		{"refused, moved", testkit.RefusedAddr(t), good, 201, "hello /x", "Retry refused=true,Answered 201,BodyBegun", 1},
		{"refused, not moved", testkit.RefusedAddr(t), "", 502, "", "Retry refused=true,Failed", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			r := httptest.NewRequest(http.MethodGet, "/x", nil)
			if !fp.Takes(w, r) {
				t.Fatal("Takes refused a plain GET")
			}
			x := &exchange{addr: tc.addr, next: tc.next}
			fp.Forward(w, r, x)
			if w.Code != tc.wantCode || w.Body.String() != tc.wantBody {
				t.Errorf("answer %d %q, want %d %q", w.Code, w.Body.String(), tc.wantCode, tc.wantBody)
			}
			if got := strings.Join(x.calls, ","); got != tc.wantCalls {
				t.Errorf("calls %q, want %q", got, tc.wantCalls)
			}
			if tc.wantCode == 201 {
				if h := w.Header(); h.Get("X-Proxy") != "yes" || h.Get("X-Up") != good {
					t.Errorf("headers %v: want the Exchange's X-Proxy and the instance's X-Up: %s", h, good)
				}
			}
			if n := fp.Idle(good); n != tc.wantIdle {
				t.Errorf("%d idle connections to the instance, want %d", n, tc.wantIdle)
			}
		})
	}

	up2 := httptest.NewRequest(http.MethodGet, "/ws", nil)
	up2.Header.Set("Upgrade", "websocket")
	if fp.Takes(httptest.NewRecorder(), up2) {
		t.Error("Takes accepted an upgrade")
	}
}
