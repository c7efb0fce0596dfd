package h1

import (
	"net/http"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// ParseResponseHead parses an answer's head into resp (status, framing, Close) and hs, as
// http.ReadResponse does, for a request of method; a body goes to body (Reset here, read
// through resp.Body). hop reports the header names the caller drops (hs.Hop). False means it
// is not a head this parser takes (HTTP/1.0, 101, Trailer, odd framing, malformed lines):
// http.ReadResponse is to read it.
func ParseResponseHead(head string, hs *HeadSpace, method string, resp *http.Response, body *Body, hop func(string) bool) bool {
	hs.Reset()
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
		k, v, ok := headerLine(line)
		if !ok {
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
		if hop(k) {
			hs.Hop = true
		}
		hs.add(k, v)
	}
	if rest != "" || lengths > 1 || tes > 1 {
		return false
	}
	resp.Status = head[9:strings.Index(head, "\r\n")]
	resp.StatusCode = code
	resp.Proto, resp.ProtoMajor, resp.ProtoMinor = "HTTP/1.1", 1, 1
	if conn := hs.H["Connection"]; len(conn) > 0 && httpguts.HeaderValuesContainsToken(conn, "close") {
		resp.Close = true
		delete(hs.H, "Connection") // as net/http's shouldClose for answers
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
			resp.TransferEncoding = ChunkedTE
		}
	case noBody:
		resp.ContentLength = 0
		resp.Body = http.NoBody
	case tes == 1:
		resp.ContentLength = -1
		resp.TransferEncoding = ChunkedTE
		body.Reset(-1, true)
		resp.Body = body
	case n == 0:
		resp.ContentLength = 0
		resp.Body = http.NoBody
	case n > 0:
		resp.ContentLength = n
		body.Reset(n, false)
		resp.Body = body
	default: // until the instance closes
		resp.ContentLength = -1
		resp.Close = true
		body.Reset(-1, false)
		resp.Body = body
	}
	return true
}
