package proxy

import (
	"encoding/hex"
	"errors"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"strconv"

	"golang.org/x/net/http/httpguts"
)

// RequestIDHeader carries a request's id to the instance and back to the client. A valid id
// from the client is passed on; otherwise the proxy makes one.
const RequestIDHeader = "X-Request-Id"

// maxRequestIDLen is the longest client request id passed on.
const maxRequestIDLen = 128

// requestID makes sure r carries a valid request id and puts it on the response. A new id's
// one-value slice is slot's array when slot is not nil.
func requestID(w http.ResponseWriter, r *http.Request, slot *[1]string) {
	if v := r.Header[RequestIDHeader]; len(v) > 0 && validRequestID(v[0]) {
		w.Header()[RequestIDHeader] = v[:1:1]
		return
	}
	var b [16]byte
	for i := 0; i < len(b); i += 8 {
		u := rand.Uint64()
		for j := range 8 {
			b[i+j] = byte(u >> (8 * j))
		}
	}
	var v []string
	if slot != nil {
		slot[0] = hex.EncodeToString(b[:])
		v = slot[:1:1]
	} else {
		v = []string{hex.EncodeToString(b[:])}[:1:1]
	}
	r.Header[RequestIDHeader] = v
	w.Header()[RequestIDHeader] = v
}

// validRequestID accepts 1 to 128 visible ASCII characters.
func validRequestID(id string) bool {
	if id == "" || len(id) > maxRequestIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] < 0x21 || id[i] > 0x7e {
			return false
		}
	}
	return true
}

// limitBody answers 413 when r declares a body longer than limit, and otherwise makes reading
// past limit fail. It reports whether the request may go on. A limit of 0 means none.
func limitBody(w http.ResponseWriter, r *http.Request, limit int64) bool {
	if limit <= 0 || r.Body == nil || r.Body == http.NoBody {
		return true
	}
	if r.ContentLength > limit {
		w.Header().Set("Connection", "close")
		http.Error(w, bodyTooLarge(limit), http.StatusRequestEntityTooLarge)
		return false
	}
	r.Body = http.MaxBytesReader(w, r.Body, limit)
	return true
}

// tooLarge answers 413 and reports true when err comes from a body over its limit.
func tooLarge(w http.ResponseWriter, err error) bool {
	var mbe *http.MaxBytesError
	if !errors.As(err, &mbe) {
		return false
	}
	if l, ok := w.(interface{ BodyLimitReached() }); ok {
		l.BodyLimitReached() // what net/http's maxBytesReader tells its own ResponseWriter
	}
	http.Error(w, bodyTooLarge(mbe.Limit), http.StatusRequestEntityTooLarge)
	return true
}

func bodyTooLarge(limit int64) string {
	return "request body is larger than " + strconv.FormatInt(limit, 10) + " bytes"
}

// trusted reports whether r's peer address is in one of prefixes; no prefixes trust all.
func trusted(prefixes []netip.Prefix, r *http.Request) bool {
	if len(prefixes) == 0 {
		return true
	}
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	addr := ap.Addr().Unmap()
	for _, p := range prefixes {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// values returns the values the match looks at: the header's, or the named cookie's. The
// header name is canonical already (compileRoutes).
// A header that does not reach the instance (hopByHop) has no values here.
func (m Match) values(h http.Header) []string {
	if m.Cookie == "" {
		if hopByHop(h, m.Header) {
			return nil
		}
		return h[m.Header]
	}
	if len(h["Cookie"]) == 0 || hopByHop(h, "Cookie") {
		return nil
	}
	var out []string
	r := http.Request{Header: http.Header{"Cookie": h["Cookie"]}} // Request.Cookies is lenient
	for _, c := range r.Cookies() {
		if c.Name == m.Cookie {
			out = append(out, c.Value)
		}
	}
	return out
}

// hopByHop reports whether the request header name (canonical) stops at the proxy: a
// standard hop-by-hop header, or one that the request's Connection header names. Routes,
// stickiness and mirroring ignore such a header: the instance never sees it, and a client
// must not steer with what it declared to be for the proxy only.
func hopByHop(h http.Header, name string) bool {
	switch name {
	case "Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
		"Te", "Trailer", "Transfer-Encoding", "Upgrade":
		return true
	}
	conn := h["Connection"]
	return len(conn) > 0 && httpguts.HeaderValuesContainsToken(conn, name)
}
