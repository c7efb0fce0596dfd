package proxy

import (
	"net/http"
	"net/textproto"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// The fast server's request parser. It accepts a strict subset of what net/http's server
// accepts and must give the same result on it (FuzzParseHead checks this against
// http.ReadRequest); everything else is handed to net/http with the bytes already read, so
// net/http's answer (400, 431, 501, upgrades, Expect...) stays what it was.

// parsedHead is what the fast server needs of a request head beyond its header map.
type parsedHead struct {
	method, target, host string
	// contentLength is the declared body length; -1 means chunked.
	contentLength int64
	// close is true when the client sent Connection: close.
	close bool
}

// headSpace holds the per-connection storage parseHead fills, reused from request to request.
type headSpace struct {
	h    http.Header
	vals []string // backing for h's one-value slices
	keys []string // h's keys in order, while there are fewer than scanKeys
	// hop is set by parseResponseHead when the answer has a header respSkip drops
	// (Connection among them, which may name more).
	hop bool
}

func (hs *headSpace) reset() {
	if hs.h == nil {
		hs.h = make(http.Header) // small (8 keys) until a head has more: cheaper to clear
	}
	hs.hop = false
	clear(hs.h)
	clear(hs.vals)
	hs.vals = hs.vals[:0]
	clear(hs.keys)
	hs.keys = hs.keys[:0]
}

// scanKeys bounds the keys add looks a repeated name up among by comparing strings, which
// is faster for a few than the map lookup it does past them.
const scanKeys = 16

func (hs *headSpace) add(k, v string) {
	if len(hs.keys) < scanKeys {
		// hs.keys holds every key so far.
		for _, kk := range hs.keys {
			if kk == k {
				hs.h[k] = append(hs.h[k], v)
				return
			}
		}
		hs.keys = append(hs.keys, k)
	} else if vv, ok := hs.h[k]; ok {
		hs.h[k] = append(vv, v)
		return
	}
	if len(hs.vals) == cap(hs.vals) {
		// A new backing array: the old one stays with the slices that point into it.
		hs.vals = make([]string, 0, max(16, 2*cap(hs.vals)))
	}
	n := len(hs.vals)
	hs.vals = append(hs.vals, v)
	hs.h[k] = hs.vals[n : n+1 : n+1]
}

// parseHead parses a request head (request line and header lines up to and including the
// empty line) into ph and hs.h, as net/http's server would. ok false means the fast server
// does not take the request: either net/http would reject it or it is not a plain request
// (not HTTP/1.1, an upgrade, Expect, TE, Trailer, CONNECT, an absolute or unusual target,
// obsolete line folding, duplicate framing headers...). Host is not put in hs.h (the server
// deletes it too), the Transfer-Encoding of a chunked request neither.
func parseHead(head string, hs *headSpace) (ph parsedHead, ok bool) {
	hs.reset()
	i := strings.Index(head, "\r\n")
	if i < 0 {
		return ph, false
	}
	line, rest := head[:i], head[i+2:]
	sp := strings.IndexByte(line, ' ')
	if sp <= 0 {
		return ph, false
	}
	ph.method = line[:sp]
	line = line[sp+1:]
	sp = strings.IndexByte(line, ' ')
	if sp <= 0 || line[sp+1:] != "HTTP/1.1" {
		return ph, false
	}
	ph.target = line[:sp]
	if !isToken(ph.method) || ph.method == http.MethodConnect || !plainTarget(ph.target) {
		return ph, false
	}
	hosts, lengths, tes := 0, 0, 0
	var cl, te string
	for {
		i = strings.Index(rest, "\r\n")
		if i < 0 {
			return ph, false
		}
		line, rest = rest[:i], rest[i+2:]
		if line == "" {
			break
		}
		colon := strings.IndexByte(line, ':')
		if colon <= 0 || !isToken(line[:colon]) {
			return ph, false // also obsolete folding: a line starting with a space
		}
		k := textproto.CanonicalMIMEHeaderKey(line[:colon])
		v := trimOWS(line[colon+1:])
		if !httpguts.ValidHeaderFieldValue(v) {
			return ph, false
		}
		switch k {
		case "Host":
			hosts++
			ph.host = v
			continue
		case "Content-Length":
			lengths++
			cl = v
		case "Transfer-Encoding":
			tes++
			te = v
			continue
		case "Upgrade", "Expect", "Te", "Trailer": // fastEligible relies on their absence
			return ph, false
		}
		hs.add(k, v)
	}
	if rest != "" || hosts != 1 || !httpguts.ValidHostHeader(ph.host) || lengths > 1 || tes > 1 {
		return ph, false
	}
	switch {
	case tes == 1:
		if lengths > 0 || !strings.EqualFold(te, "chunked") {
			return ph, false
		}
		ph.contentLength = -1
	case lengths == 1:
		n, ok := parseLength(cl)
		if !ok {
			return ph, false
		}
		ph.contentLength = n
	}
	if conn := hs.h["Connection"]; len(conn) > 0 {
		ph.close = httpguts.HeaderValuesContainsToken(conn, "close")
	}
	// As net/http's fixPragmaCacheControl.
	if p := hs.h["Pragma"]; len(p) > 0 && p[0] == "no-cache" {
		if _, ok := hs.h["Cache-Control"]; !ok {
			hs.add("Cache-Control", "no-cache")
		}
	}
	return ph, true
}

// trimOWS trims spaces and tabs at both ends, as textproto does with header values.
func trimOWS(s string) string {
	for s != "" && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for s != "" && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

// parseLength parses 1 to 18 decimal digits.
func parseLength(s string) (int64, bool) {
	if s == "" || len(s) > 18 {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !httpguts.IsTokenRune(rune(s[i])) {
			return false
		}
	}
	return true
}

// plainTarget accepts an origin-form target ("/path?query") of characters that url.URL's
// RequestURI gives back unchanged: unreserved, sub-delims, ':', '@', '/', '?' and valid
// percent escapes. No fragment, no spaces, no controls.
func plainTarget(s string) bool {
	if s == "" || s[0] != '/' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("-._~!$&'()*+,;=:@/?", c) >= 0:
		case c == '%':
			if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
				return false
			}
			i += 2
		default:
			return false
		}
	}
	return true
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}
