package proxy

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"testing"
)

// serveLocal serves srv on a free local port until the test ends.
func serveLocal(tb testing.TB, srv *Server) net.Listener {
	tb.Helper()
	ln := listenLocal(tb)
	go Serve(srv, ln)
	tb.Cleanup(func() { srv.Close() })
	return ln
}

func listenLocal(tb testing.TB) net.Listener {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	return ln
}

// serveConns accepts connections on a free local port until the test ends and hands each
// to handle, which runs on its own goroutine; the connection is closed when handle returns.
func serveConns(tb testing.TB, handle func(c net.Conn)) string {
	tb.Helper()
	ln := listenLocal(tb)
	tb.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				handle(c)
			}()
		}
	}()
	return ln.Addr().String()
}

// serveRequests is serveConns for an instance that reads requests one after the other on a
// connection and answers each on c; the connection closes when answer returns false.
func serveRequests(tb testing.TB, answer func(c net.Conn, req *http.Request) bool) string {
	tb.Helper()
	return serveConns(tb, func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			req, err := http.ReadRequest(br)
			if err != nil || !answer(c, req) {
				return
			}
		}
	})
}

// resetConn resets the connection of the request w answers (no answer, an RST).
func resetConn(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err == nil {
		conn.(*net.TCPConn).SetLinger(0)
		conn.Close()
	}
}

// doWant sends req with client and returns the answer's body; its status must be want.
func doWant(t *testing.T, client *http.Client, req *http.Request, want int) []byte {
	t.Helper()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != want {
		t.Fatalf("got %d %q, want %d", resp.StatusCode, b, want)
	}
	return b
}
