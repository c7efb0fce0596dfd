package spec

import (
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"

	"ramp.dev/ramp/api/v1alpha1"
)

// UpstreamProtocols are the values spec.proxy.upstreamProtocol takes.
var UpstreamProtocols = []string{"http1", "h2c"}

func validateProxy(l *errList, path string, p *v1alpha1.ProxySpec) {
	if p.TLS != nil {
		if p.TLS.CertFile == "" {
			l.add(path+".tls.certFile", nil, "is required")
		}
		if p.TLS.KeyFile == "" {
			l.add(path+".tls.keyFile", nil, "is required")
		}
	}
	if p.UpstreamProtocol != "" && !slices.Contains(UpstreamProtocols, p.UpstreamProtocol) {
		l.add(path+".upstreamProtocol", p.UpstreamProtocol, "is not one of %s", strings.Join(UpstreamProtocols, ", "))
	}
	if t := p.Timeouts; t != nil {
		if t.Connect != nil {
			validateDuration(l, path+".timeouts.connect", t.Connect, true)
		}
		if t.FirstByte != nil {
			validateDuration(l, path+".timeouts.firstByte", t.FirstByte, false) // "0": no limit
		}
		if t.Idle != nil {
			validateDuration(l, path+".timeouts.idle", t.Idle, true)
		}
		if t.ClientHeader != nil {
			validateDuration(l, path+".timeouts.clientHeader", t.ClientHeader, true)
		}
		if t.KeepAlive != nil {
			validateDuration(l, path+".timeouts.keepAlive", t.KeepAlive, true)
		}
		if t.Send != nil {
			validateDuration(l, path+".timeouts.send", t.Send, true)
		}
	}
	if p.MaxRequestBodyBytes < 0 {
		l.add(path+".maxRequestBodyBytes", p.MaxRequestBodyBytes, "must be >= 0")
	}
	if p.MaxRequestHeaderBytes < 0 {
		l.add(path+".maxRequestHeaderBytes", p.MaxRequestHeaderBytes, "must be >= 0")
	}
	if p.MaxResponseHeaderBytes < 0 {
		l.add(path+".maxResponseHeaderBytes", p.MaxResponseHeaderBytes, "must be >= 0")
	}
}

// hopByHop reports whether name is a hop-by-hop request header (RFC 9110 section 7.6.1, and
// the usual extras): the proxy never passes it on, so routes and stickiness cannot use it.
func hopByHop(name string) bool {
	switch strings.ToLower(name) {
	case "connection", "proxy-connection", "keep-alive", "proxy-authenticate", "proxy-authorization",
		"te", "trailer", "transfer-encoding", "upgrade":
		return true
	}
	return false
}

const hopByHopMsg = "is a hop-by-hop header: it never reaches the instance, and routing ignores it"

// token is an HTTP token: header and cookie names.
var token = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")

func validateToken(l *errList, path, name, what string) {
	switch {
	case name == "":
		l.add(path, nil, "is required")
	case !token.MatchString(name):
		l.add(path, name, "is not a valid %s name", what)
	}
}

func validateStickiness(l *errList, path string, s *v1alpha1.Stickiness) {
	if s.Header == nil && s.Cookie == nil {
		l.add(path, nil, "needs header or cookie")
	}
	if s.Header != nil {
		validateToken(l, path+".header.name", s.Header.Name, "header")
		if hopByHop(s.Header.Name) {
			l.add(path+".header.name", s.Header.Name, hopByHopMsg)
		}
	}
	if s.Cookie != nil {
		validateToken(l, path+".cookie.name", s.Cookie.Name, "cookie")
		if s.Cookie.MaxAgeSeconds < 0 {
			l.add(path+".cookie.maxAgeSeconds", s.Cookie.MaxAgeSeconds, "must be >= 0")
		}
	}
}

func validateMirror(l *errList, path string, m *v1alpha1.CanaryMirror) {
	between(l, path+".percentage", m.Percentage, 1, 100)
	nonNegative(l, path+".maxConcurrent", m.MaxConcurrent)
	if m.MaxBodyBytes < 0 {
		l.add(path+".maxBodyBytes", m.MaxBodyBytes, "must be >= 0")
	}
}

func validateTrustedSources(l *errList, path string, sources []string) {
	for i, s := range sources {
		if _, err := netip.ParsePrefix(s); err != nil {
			l.add(fmt.Sprintf("%s[%d]", path, i), s, "is not a network like 10.0.0.0/8 or 127.0.0.1/32")
		}
	}
}

// validateStringMatch checks that v has exactly one of exact, prefix or regex, and that a
// regex compiles.
func validateStringMatch(l *errList, path string, v v1alpha1.StringMatch) {
	n := 0
	for _, s := range []string{v.Exact, v.Prefix, v.Regex} {
		if s != "" {
			n++
		}
	}
	if n != 1 {
		l.add(path, nil, "needs exactly one of exact, prefix or regex")
	}
	if v.Regex != "" {
		if _, err := regexp.Compile(v.Regex); err != nil {
			l.add(path+".regex", v.Regex, "does not compile: %s", err.Error())
		}
	}
}

func validateCookieMatch(l *errList, path string, ms []v1alpha1.CookieMatch) {
	for i, m := range ms {
		mp := fmt.Sprintf("%s[%d]", path, i)
		validateToken(l, mp+".cookieName", m.CookieName, "cookie")
		validateStringMatch(l, mp+".cookieValue", m.CookieValue)
	}
}
