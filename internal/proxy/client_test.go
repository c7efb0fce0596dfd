package proxy

import (
	"net"
	"testing"
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
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			go Serve(srv, ln)
			t.Cleanup(func() { srv.Close() })
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
