package proxy

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// twiceScript answers every request twice: the second answer is unasked and must reach
// nobody.
const twiceScript = "HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n@ID@!!HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n@ID@!!"

// inReuseWindow sends request 1 with do and, while its connection is back in the Transport's
// idle pool but the Transport's read loop has not yet looked at what is left in its buffer,
// request 2: request 1's PutIdleConn holds the read loop until request 2 was written on the
// connection (WroteHeaders) or waits in ramp's guard for the read loop (testHookReuseWait).
// That is the window a busy machine opens now and then; here it is open every time. It
// returns what each request got.
func inReuseWindow(t *testing.T, do func(ctx context.Context, id string) string) (first, second string) {
	t.Helper()
	wrote, waiting := make(chan struct{}), make(chan struct{})
	var onceWrote, onceWaiting, onceIdle sync.Once
	hook := func() { onceWaiting.Do(func() { close(waiting) }) }
	testHookReuseWait.Store(&hook)
	t.Cleanup(func() { testHookReuseWait.Store(nil) })
	ctx2 := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
		WroteHeaders: func() { onceWrote.Do(func() { close(wrote) }) },
	})
	got2 := make(chan string, 1)
	var held atomic.Bool
	ctx1 := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
		PutIdleConn: func(err error) {
			if err != nil {
				return
			}
			onceIdle.Do(func() {
				held.Store(true)
				go func() { got2 <- do(ctx2, diffIDs[1]) }()
				select {
				case <-wrote:
				case <-waiting:
				case <-time.After(10 * time.Second):
					t.Error("request 2 was neither written nor made to wait for the connection within 10s")
				}
			})
		},
	})
	first = do(ctx1, diffIDs[0])
	if !held.Load() {
		t.Fatalf("request 1's connection never went back to the idle pool (request 1 got %s)", first)
	}
	return first, <-got2
}

// TestTransportGivesUnaskedBytesToNextRequest is the claim ramp's guard rests on, against
// plain net/http: an instance that sends a second answer with the first gets it given to the
// next request on the connection, when that request takes the connection in the window
// between the Transport pooling it and checking its buffer. If this starts failing, net/http
// checks its buffer before pooling a connection and the guard (reuseguard.go) is no longer
// needed.
func TestTransportGivesUnaskedBytesToNextRequest(t *testing.T) {
	si := newScriptInstance(t, []byte(twiceScript), nil)
	tr := &http.Transport{DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections)
	first, second := inReuseWindow(t, func(ctx context.Context, id string) string {
		return roundTripBody(tr, ctx, "http://"+si.ln.Addr().String()+"/r/"+id)
	})
	if want := "200 " + diffIDs[0] + "!!"; first != want {
		t.Fatalf("request 1 got %q, want %q", first, want)
	}
	if leaked := "200 " + diffIDs[0] + "!!"; second != leaked {
		t.Errorf("request 2 got %q: net/http no longer gives it request 1's unasked second answer %q", second, leaked)
	}
}

// TestReuseGuardKeepsUnaskedBytesFromNextRequest: the same window with ramp's guard on the
// Transport: request 2 waits until the read loop has closed the connection with the unasked
// bytes, then gets its own answer on a new connection.
func TestReuseGuardKeepsUnaskedBytesFromNextRequest(t *testing.T) {
	si := newScriptInstance(t, []byte(twiceScript), nil)
	d := &net.Dialer{}
	tr := &http.Transport{DisableCompression: true, DialContext: guardDial(d.DialContext)}
	t.Cleanup(tr.CloseIdleConnections)
	var unasked atomic.Int32
	first, second := inReuseWindow(t, func(ctx context.Context, id string) string {
		ctx = guardReuse(ctx, func() { unasked.Add(1) })
		return roundTripBody(tr, ctx, "http://"+si.ln.Addr().String()+"/r/"+id)
	})
	if want := "200 " + diffIDs[0] + "!!"; first != want {
		t.Errorf("request 1 got %q, want %q", first, want)
	}
	if want := "200 " + diffIDs[1] + "!!"; second != want {
		t.Errorf("request 2 got %q, want its own answer %q", second, want)
	}
	if n := unasked.Load(); n != 1 {
		t.Errorf("the guard reported %d connections with unasked bytes, want 1", n)
	}
	if n := si.accepted(); n != 2 {
		t.Errorf("the instance saw %d connections, want 2 (the one with unasked bytes not reused)", n)
	}
}

// TestReverseProxyPathUnaskedBytesInReuseWindow: ramp's ReverseProxy path (DisableFastPath)
// in the same window: request 2 gets its own answer, never request 1's second one, and the
// connection is counted as discarded for unasked bytes. Before the guard, request 2 got
// request 1's second answer every time here, and now and then in FuzzUpstreamBytes.
func TestReverseProxyPathUnaskedBytesInReuseWindow(t *testing.T) {
	for _, method := range []string{http.MethodGet, http.MethodPost} {
		t.Run(method, func(t *testing.T) {
			si := newScriptInstance(t, []byte(twiceScript), nil)
			pt := rampUnderTest(t, "ReverseProxy path", si.ln.Addr().String(), Settings{DisableFastPath: true})
			first, second := inReuseWindow(t, func(ctx context.Context, id string) string {
				var body io.Reader
				if method == http.MethodPost {
					body = strings.NewReader("a body to send again")
				}
				rec := httptest.NewRecorder()
				pt.p.ServeHTTP(rec, httptest.NewRequest(method, "/r/"+id, body).WithContext(ctx))
				return fmt.Sprintf("%d %s", rec.Code, rec.Body)
			})
			if want := "200 " + diffIDs[0] + "!!"; first != want {
				t.Errorf("client 1 got %q, want %q", first, want)
			}
			if want := "200 " + diffIDs[1] + "!!"; second != want {
				t.Errorf("client 2 got %q, want its own answer %q", second, want)
			}
			if n := pt.discarded(reasonUnasked); n != 1 {
				t.Errorf("ramp_upstream_connections_discarded_total{reason=%q} = %v, want 1", reasonUnasked, n)
			}
		})
	}
}

// roundTripBody sends GET url on rt with ctx and returns "status body", or the error.
func roundTripBody(rt http.RoundTripper, ctx context.Context, url string) string {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "error: " + err.Error()
	}
	resp, err := rt.RoundTrip(req)
	if err != nil {
		return "error: " + err.Error()
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "error: body: " + err.Error()
	}
	return fmt.Sprintf("%d %s", resp.StatusCode, b)
}
