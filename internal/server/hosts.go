package server

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// Names a request may give in its Host when the API is reached on a loopback address.
var loopbackNames = []string{"localhost", "127.0.0.1", "::1"}

// hostGuard refuses requests whose Host header, or Origin header when there is one, names
// neither the address the request came in on nor one of the names the user allows. This is
// what stops DNS rebinding: a web page whose name is rebound to 127.0.0.1 still sends its own
// name in Host, and a page of another site sends its own origin in Origin.
type hostGuard struct {
	// names are allowed host names on any port; hostPorts are allowed "host:port" pairs.
	// Both are normalized (lower case, no brackets, no trailing dot).
	names     map[string]bool
	hostPorts map[string]bool
	logger    *slog.Logger
	next      http.Handler
}

// CheckHost wraps next with the Host and Origin checks of New: a request is answered only when
// its Host names the address it came in on (with "localhost", "127.0.0.1" and "[::1]" on
// that port when the address is a loopback one) or an entry of allowed, and when its Origin
// header, if any, names one of those too. Other requests get a 403 with a JSON error naming the
// refused value. An entry of allowed is a host name or IP, which matches on any port, or
// host:port; see ValidateAllowedHosts. A nil logger discards logs.
func CheckHost(allowed []string, logger *slog.Logger, next http.Handler) http.Handler {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	g := &hostGuard{names: map[string]bool{}, hostPorts: map[string]bool{}, logger: logger, next: next}
	for _, a := range allowed {
		h, p := splitHost(a)
		if h == "" {
			continue
		}
		if p == "" {
			g.names[h] = true
		} else {
			g.hostPorts[net.JoinHostPort(h, p)] = true
		}
	}
	return g
}

// ValidateAllowedHosts checks entries given to CheckHost (and --api-allowed-hosts): each must
// be a host name or IP address, optionally with ":port", without scheme, path or wildcard.
func ValidateAllowedHosts(hosts []string) error {
	for _, h := range hosts {
		bad := func(why string) error { return fmt.Errorf("allowed host %q: %s", h, why) }
		switch {
		case strings.TrimSpace(h) == "":
			return bad("is empty")
		case strings.Contains(h, "://"):
			return bad("give a host name or host:port, without a scheme")
		case strings.ContainsAny(h, "/?#@ *\t"):
			return bad("give a host name or host:port, without path, wildcard or spaces")
		}
		name, port := splitHost(h)
		if name == "" {
			return bad("has no host name")
		}
		if port != "" {
			if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
				return bad(fmt.Sprintf("port %q is not a number from 1 to 65535", port))
			}
		}
	}
	return nil
}

// splitHost returns a Host value's name (lower case, without brackets or trailing dot) and port
// ("" when it has none).
func splitHost(hostport string) (name, port string) {
	hostport = strings.ToLower(strings.TrimSpace(hostport))
	if h, p, err := net.SplitHostPort(hostport); err == nil {
		name, port = h, p
	} else {
		name = strings.TrimSuffix(strings.TrimPrefix(hostport, "["), "]")
	}
	return strings.TrimSuffix(name, "."), port
}

// allowed tells whether name:port may be asked for on a connection that arrived at local.
func (g *hostGuard) allowed(name, port string, local net.Addr) bool {
	if name == "" {
		return false
	}
	if g.names[name] || (port != "" && g.hostPorts[net.JoinHostPort(name, port)]) {
		return true
	}
	tcp, ok := local.(*net.TCPAddr)
	if !ok || port != strconv.Itoa(tcp.Port) {
		return false
	}
	if name == tcp.IP.String() {
		return true
	}
	if tcp.IP.IsLoopback() {
		for _, l := range loopbackNames {
			if name == l {
				return true
			}
		}
	}
	return false
}

func (g *hostGuard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	local, _ := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	name, port := splitHost(r.Host)
	if port == "" {
		port = "80"
	}
	if !g.allowed(name, port, local) {
		g.logger.Warn("api request refused: host not allowed", logMethod, r.Method, logPath, r.URL.Path, "host", r.Host)
		writeJSON(w, http.StatusForbidden, errorBody{Error: fmt.Sprintf(
			"host %q is not allowed: the control API answers to the address it listens on; "+
				"add the name to --api-allowed-hosts (RAMP_API_ALLOWED_HOSTS) if it is yours", r.Host)})
		return
	}
	if origins := r.Header.Values("Origin"); len(origins) > 0 {
		for _, o := range origins {
			if !g.originAllowed(o, local) {
				g.logger.Warn("api request refused: origin not allowed", logMethod, r.Method, logPath, r.URL.Path, "origin", o)
				writeJSON(w, http.StatusForbidden, errorBody{Error: fmt.Sprintf(
					"origin %q is not allowed: the control API does not answer web pages of other sites", o)})
				return
			}
		}
	}
	g.next.ServeHTTP(w, r)
}

// originAllowed tells whether an Origin header names an allowed host. "null" and anything
// without a host are refused.
func (g *hostGuard) originAllowed(origin string, local net.Addr) bool {
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return false
	}
	name, port := splitHost(u.Host)
	if port == "" {
		port = "80"
		if u.Scheme == "https" {
			port = "443"
		}
	}
	return g.allowed(name, port, local)
}
