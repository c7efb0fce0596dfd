// Package h1 is the hand-written HTTP/1.1 wire code of the proxy's fast path: the parsers
// of request and answer heads, which take a strict subset of what net/http takes and read
// it as net/http does (FuzzParseHead and FuzzParseResponseHead check both against
// net/http), and the body reader. It reads into storage the caller reuses from message to
// message, and knows nothing of the proxy.
package h1

import (
	"bytes"
	"net/http"
	"net/textproto"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// The fast server's request parser. It accepts a strict subset of what net/http's server
// accepts and must give the same result on it (FuzzParseHead checks this against
// http.ReadRequest); everything else is handed to net/http with the bytes already read, so
// net/http's answer (400, 431, 501, upgrades, Expect...) stays what it was.

// RequestHead is what the fast server needs of a request head beyond its header map.
type RequestHead struct {
	Method, Target, Host string
	// ContentLength is the declared body length; -1 means chunked.
	ContentLength int64
	// Close is true when the client sent Connection: close.
	Close bool
}

// ChunkedTE is the TransferEncoding of a chunked message (shared: not to be changed).
var ChunkedTE = []string{"chunked"}

// HeadSpace holds the per-connection storage the parsers fill, reused from head to head.
type HeadSpace struct {
	// H is the head's header map, cleared by the next parse.
	H    http.Header
	vals []string // backing for H's one-value slices
	keys []string // H's keys in order, while there are fewer than scanKeys
	// Hop is set by ParseResponseHead when the answer has a header its hop function
	// reports (Connection among them, which may name more).
	Hop bool
}

// Reset clears the storage for the next head.
func (hs *HeadSpace) Reset() {
	if hs.H == nil {
		hs.H = make(http.Header) // small (8 keys) until a head has more: cheaper to clear
	}
	hs.Hop = false
	clear(hs.H)
	clear(hs.vals)
	hs.vals = hs.vals[:0]
	clear(hs.keys)
	hs.keys = hs.keys[:0]
}

// scanKeys bounds the keys add looks a repeated name up among by comparing strings, which
// is faster for a few than the map lookup it does past them.
const scanKeys = 16

func (hs *HeadSpace) add(k, v string) {
	if len(hs.keys) < scanKeys {
		// hs.keys holds every key so far.
		for _, kk := range hs.keys {
			if kk == k {
				hs.H[k] = append(hs.H[k], v)
				return
			}
		}
		hs.keys = append(hs.keys, k)
	} else if vv, ok := hs.H[k]; ok {
		hs.H[k] = append(vv, v)
		return
	}
	if len(hs.vals) == cap(hs.vals) {
		// A new backing array: the old one stays with the slices that point into it.
		hs.vals = make([]string, 0, max(16, 2*cap(hs.vals)))
	}
	n := len(hs.vals)
	hs.vals = append(hs.vals, v)
	hs.H[k] = hs.vals[n : n+1 : n+1]
}

// ParseRequestHead parses a request head (request line and header lines up to and including the
// empty line) into ph and hs.H, as net/http's server would. ok false means the fast server
// does not take the request: either net/http would reject it or it is not a plain request
// (not HTTP/1.1, an upgrade, Expect, TE, Trailer, CONNECT, an absolute or unusual target,
// obsolete line folding, duplicate framing headers...). Host is not put in hs.H (the server
// deletes it too), the Transfer-Encoding of a chunked request neither.
func ParseRequestHead(head string, hs *HeadSpace) (ph RequestHead, ok bool) {
	hs.Reset()
	i := strings.Index(head, "\r\n")
	if i < 0 {
		return ph, false
	}
	line, rest := head[:i], head[i+2:]
	sp := strings.IndexByte(line, ' ')
	if sp <= 0 {
		return ph, false
	}
	ph.Method = line[:sp]
	line = line[sp+1:]
	sp = strings.IndexByte(line, ' ')
	if sp <= 0 || line[sp+1:] != "HTTP/1.1" {
		return ph, false
	}
	ph.Target = line[:sp]
	if !isToken(ph.Method) || ph.Method == http.MethodConnect || !plainTarget(ph.Target) {
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
		k, v, ok := headerLine(line)
		if !ok {
			return ph, false
		}
		switch k {
		case "Host":
			hosts++
			ph.Host = v
			continue
		case "Content-Length":
			lengths++
			cl = v
		case "Transfer-Encoding":
			tes++
			te = v
			continue
		case "Upgrade", "Expect", "Te", "Trailer": // fast.Pool.Takes relies on their absence
			return ph, false
		}
		hs.add(k, v)
	}
	if rest != "" || hosts != 1 || !httpguts.ValidHostHeader(ph.Host) || lengths > 1 || tes > 1 {
		return ph, false
	}
	switch {
	case tes == 1:
		if lengths > 0 || !strings.EqualFold(te, "chunked") {
			return ph, false
		}
		ph.ContentLength = -1
	case lengths == 1:
		n, ok := parseLength(cl)
		if !ok {
			return ph, false
		}
		ph.ContentLength = n
	}
	if conn := hs.H["Connection"]; len(conn) > 0 {
		ph.Close = httpguts.HeaderValuesContainsToken(conn, "close")
	}
	// As net/http's fixPragmaCacheControl.
	if p := hs.H["Pragma"]; len(p) > 0 && p[0] == "no-cache" {
		if _, ok := hs.H["Cache-Control"]; !ok {
			hs.add("Cache-Control", "no-cache")
		}
	}
	return ph, true
}

// headerLine splits a header line into its name, in canonical form, and its value without
// the whitespace around it, as textproto reads it; false means net/http would reject the
// line, or this package leaves it to net/http (obsolete folding: a line starting with a
// space).
func headerLine(line string) (k, v string, ok bool) {
	colon := strings.IndexByte(line, ':')
	if colon <= 0 || !isToken(line[:colon]) {
		return "", "", false
	}
	k = textproto.CanonicalMIMEHeaderKey(line[:colon])
	v = trimOWS(line[colon+1:])
	if !httpguts.ValidHeaderFieldValue(v) {
		return "", "", false
	}
	return k, v, true
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

// HeadEnd returns the length of the request head at the start of buf, ending at the first
// empty line ("\n\n" or "\n\r\n", as textproto reads lines), or 0.
func HeadEnd(buf []byte) int {
	for i := 0; ; {
		j := bytes.IndexByte(buf[i:], '\n')
		if j < 0 {
			return 0
		}
		i += j + 1
		if i < len(buf) && buf[i] == '\n' {
			return i + 1
		}
		if i+1 < len(buf) && buf[i] == '\r' && buf[i+1] == '\n' {
			return i + 2
		}
	}
}
