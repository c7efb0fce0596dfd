package fast

import (
	"bufio"
	"net/http"

	"ramp.dev/ramp/internal/proxy/h1"
)

// Reading an instance's answer for a request of the fast server: the head is parsed into
// the client connection's reused storage (a Response, a header map and a body reader) that
// copyAnswer then uses as it would http.ReadResponse's. Heads this parser is not sure of
// (HTTP/1.0, 101, Trailer, odd framing, malformed lines, heads over the buffer) are left to
// http.ReadResponse, which reads them from the same buffer.

// respSpace is the storage for one answer at a time.
type respSpace struct {
	resp http.Response
	hs   h1.HeadSpace
	body h1.Body
}

// readResponse reads the head of an answer from br into sc's storage, or returns nil (with
// nothing consumed) when http.ReadResponse is to read it.
func (sc *sconn) readResponse(br *bufio.Reader, r *http.Request) *http.Response {
	var n int
	for {
		buf, _ := br.Peek(br.Buffered())
		if n = h1.HeadEnd(buf); n > 0 {
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
	rs.body.Init(br, &resp.Trailer, nil)
	if !h1.ParseResponseHead(string(buf), &rs.hs, r.Method, resp, &rs.body, respSkip) {
		return nil
	}
	br.Discard(n)
	resp.Header = rs.hs.H
	return resp
}
