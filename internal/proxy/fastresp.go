package proxy

import (
	"bufio"
	"net/http"
	"net/textproto"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// Reading an instance's answer for a request of the fast server: the head is parsed into
// the client connection's reused storage (a Response, a header map and a body reader) that
// copyFast then uses as it would http.ReadResponse's. Heads this parser is not sure of
// (HTTP/1.0, 101, Trailer, odd framing, malformed lines, heads over the buffer) are left to
// http.ReadResponse, which reads them from the same buffer.

// respSpace is the storage for one answer at a time.
type respSpace struct {
	resp http.Response
	hs   headSpace
	body bodyReader
}

// readResponse reads the head of an answer from br into sc's storage, or returns nil (with
// nothing consumed) when http.ReadResponse is to read it.
func (sc *sconn) readResponse(br *bufio.Reader, r *http.Request) *http.Response {
	var n int
	for {
		buf, _ := br.Peek(br.Buffered())
		if n = headEnd(buf); n > 0 {
			break
		}
		if len(buf) >= br.Size() {
			return nil
		}
		if _, err := br.Peek(len(buf) + 1); err != nil {
			return nil // http.ReadResponse meets the same error
		}
	}
	buf, _ := br.Peek(n)
	rs := &sc.rs
	resp := &rs.resp
	*resp = http.Response{Request: r}
	rs.body.br, rs.body.trailer = br, &resp.Trailer
	if !parseResponseHead(string(buf), &rs.hs, r.Method, resp, &rs.body) {
		return nil
	}
	br.Discard(n)
	resp.Header = rs.hs.h
	return resp
}

// parseResponseHead parses an answer's head into resp (status, framing, Close) and hs, as
// http.ReadResponse does; false means it is not a head this parser takes.
func parseResponseHead(head string, hs *headSpace, method string, resp *http.Response, body *bodyReader) bool {
	hs.reset()
	i := strings.Index(head, "\r\n")
	if i < 0 {
		return false
	}
	line, rest := head[:i], head[i+2:]
	if len(line) < 12 || line[:9] != "HTTP/1.1 " || len(line) > 12 && line[12] != ' ' {
		return false
	}
	code := 0
	for _, c := range []byte(line[9:12]) {
		if c < '0' || c > '9' {
			return false
		}
		code = code*10 + int(c-'0')
	}
	if code < 100 || code == http.StatusSwitchingProtocols || strings.ContainsAny(line, "\r\n") {
		return false
	}
	lengths, tes := 0, 0
	var cl, te string
	for {
		i = strings.Index(rest, "\r\n")
		if i < 0 {
			return false
		}
		line, rest = rest[:i], rest[i+2:]
		if line == "" {
			break
		}
		colon := strings.IndexByte(line, ':')
		if colon <= 0 || !isToken(line[:colon]) {
			return false
		}
		k := textproto.CanonicalMIMEHeaderKey(line[:colon])
		v := trimOWS(line[colon+1:])
		if !httpguts.ValidHeaderFieldValue(v) {
			return false
		}
		switch k {
		case "Content-Length":
			lengths++
			cl = v
		case "Transfer-Encoding":
			tes++
			te = v
			continue // as net/http, which removes it
		case "Trailer":
			return false
		}
		if respSkip(k) {
			hs.hop = true
		}
		hs.add(k, v)
	}
	if rest != "" || lengths > 1 || tes > 1 {
		return false
	}
	resp.Status = head[9:strings.Index(head, "\r\n")]
	resp.StatusCode = code
	resp.Proto, resp.ProtoMajor, resp.ProtoMinor = "HTTP/1.1", 1, 1
	if conn := hs.h["Connection"]; len(conn) > 0 && httpguts.HeaderValuesContainsToken(conn, "close") {
		resp.Close = true
		delete(hs.h, "Connection") // as net/http's shouldClose for answers
	}
	noBody := code < 200 || code == http.StatusNoContent || code == http.StatusNotModified
	var n int64 = -1
	if lengths == 1 {
		var ok bool
		if n, ok = parseLength(cl); !ok {
			return false
		}
	}
	if tes == 1 && (lengths > 0 || !strings.EqualFold(te, "chunked")) {
		return false
	}
	switch {
	case noBody && (lengths > 0 || tes > 0):
		return false // odd: leave it to net/http
	case method == http.MethodHead:
		resp.ContentLength = n
		resp.Body = http.NoBody
		if tes == 1 {
			resp.TransferEncoding = chunkedTE
		}
	case noBody:
		resp.ContentLength = 0
		resp.Body = http.NoBody
	case tes == 1:
		resp.ContentLength = -1
		resp.TransferEncoding = chunkedTE
		body.reset(-1, true)
		resp.Body = body
	case n == 0:
		resp.ContentLength = 0
		resp.Body = http.NoBody
	case n > 0:
		resp.ContentLength = n
		body.reset(n, false)
		resp.Body = body
	default: // until the instance closes
		resp.ContentLength = -1
		resp.Close = true
		body.reset(-1, false)
		resp.Body = body
	}
	return true
}
