//go:build unix

package proxy

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestReverseProxyPathUnaskedBytesWhileIdle: an instance that sends an answer nobody asked
// for while its connection is idle in ramp's pool, just as a request is handed that
// connection (after the guard found the Transport reading it clean): the request gets its
// own answer, never the unasked one, on another connection. (Bytes that come after the
// request is written cannot be told from its answer.)
func TestReverseProxyPathUnaskedBytesWhileIdle(t *testing.T) {
	const (
		answer   = "HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n@ID@!!"
		smuggled = "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nsmuggled!"
	)
	si := newScriptInstance(t, []byte(answer), nil)
	pt := rampUnderTest(t, "ReverseProxy path", si.ln.Addr().String(), Settings{DisableFastPath: true})
	do := func(ctx context.Context, id string) string {
		rec := httptest.NewRecorder()
		pt.p.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/r/"+id, nil).WithContext(ctx))
		return fmt.Sprintf("%d %s", rec.Code, rec.Body)
	}
	if got, want := do(context.Background(), diffIDs[0]), "200 "+diffIDs[0]+"!!"; got != want {
		t.Fatalf("client 1 got %q, want %q", got, want)
	}
	var sent atomic.Bool
	ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
		GotConn: func(info httptrace.GotConnInfo) {
			if info.Reused && !sent.Swap(true) {
				si.sendLate([]byte(smuggled))
				// On loopback the bytes are on their way when Write returns; wait until
				// they are on ramp's side (waiting on the socket, or taken and the
				// connection closed for them), as they would be had they come earlier.
				waitFor(t, 5*time.Second, "the unasked bytes to reach ramp", func() bool { return arrived(info.Conn) })
			}
		},
	})
	got := do(ctx, diffIDs[1])
	if !sent.Load() {
		t.Fatalf("client 2 was not given the idle connection (got %q)", got)
	}
	if want := "200 " + diffIDs[1] + "!!"; got != want {
		t.Errorf("client 2 got %q, want its own answer %q", got, want)
	}
	if n := si.accepted(); n != 2 {
		t.Errorf("the instance saw %d connections, want 2 (the one with unasked bytes not reused)", n)
	}
}

// arrived reports whether bytes wait on c's socket, or c was closed (for a reuseGuardConn,
// the guard took them and found them unasked).
func arrived(c net.Conn) bool {
	if g, ok := c.(*reuseGuardConn); ok {
		g.mu.Lock()
		closed := g.closed
		g.mu.Unlock()
		return closed || g.bytesWaiting()
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return true
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return true
	}
	k := 0
	if err := raw.Control(func(fd uintptr) { k = peekFD(fd) }); err != nil {
		return true // closed: the Transport took them
	}
	return k >= 0
}
