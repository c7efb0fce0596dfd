package fast

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httputil"
	"strconv"
	"strings"
	"sync"
	"time"

	"ramp.dev/ramp/internal/proxy/h1"
)

// The fast forwarder sends plain HTTP/1.1 requests on the client connection's goroutine: it
// takes an idle upstream connection from a per-instance free list (Pool), writes the request
// head and body itself, reads the answer and copies it to the client. net/http's Transport
// spends two goroutines per upstream connection and channel hand-offs per request; this
// path has none. What it does not take (Takes: upgrades, Expect: 100-continue, request
// trailers, CONNECT) the proxy forwards through httputil.ReverseProxy.

// Exchange is one request's link to the proxy that forwards it: the instance it goes to,
// the proxy's retry policy, and what the proxy records of it. Only the request's goroutine
// calls it.
type Exchange interface {
	// Addr is the instance's host:port. It changes when Retry moves the request.
	Addr() string
	// Retry applies the retry policy to err, from connecting to Addr (refused) or from the
	// request sent on a reused connection that failed (a *BeforeResponseError when nothing
	// of the answer came). It returns the body to send r again with (to Addr, on a new
	// connection) and a nil error, or the (non-nil) error to fail with.
	Retry(ctx context.Context, r *http.Request, err error, refused bool) (io.ReadCloser, error)
	// Failed answers the client for an instance that gave no answer (or an unusable one).
	Failed(w http.ResponseWriter, r *http.Request, err error)
	// Unasked counts n instance connections closed for holding bytes no request asked for.
	Unasked(n int)
	// Answered records the answer's head (status) as it goes to the client, and adds the
	// proxy's own headers to h.
	Answered(status int, h http.Header)
	// BodyBegun records that the answer's first body byte went to the client.
	BodyBegun()
	// Broken records an answer broken off after its head went out: by the client
	// (clientGone), or by the instance or a timeout.
	Broken(clientGone bool, err error)
}

// Takes reports whether the pool can forward r, which w answers. A request the fast server
// read (w is its writer) always qualifies: h1.ParseRequestHead leaves the headers looked at
// here to net/http, so such a request has none of them.
func (fp *Pool) Takes(w http.ResponseWriter, r *http.Request) bool {
	if r.Method == http.MethodConnect || len(r.Trailer) > 0 {
		return false
	}
	if _, parsed := w.(*responseWriter); parsed {
		return true
	}
	h := r.Header
	return len(h["Upgrade"]) == 0 && len(h["Expect"]) == 0 && len(h["Te"]) == 0 && len(h["Trailer"]) == 0
}

// BeforeResponseError is an upstream failure before any byte of the answer arrived.
type BeforeResponseError struct{ Err error }

func (e *BeforeResponseError) Error() string { return e.Err.Error() }
func (e *BeforeResponseError) Unwrap() error { return e.Err }

// bodyReadError is the client's request body failing to read (too large, or cut).
type bodyReadError struct{ err error }

func (e *bodyReadError) Error() string { return "read request body: " + e.err.Error() }
func (e *bodyReadError) Unwrap() error { return e.err }

// errUnexpectedUpgrade is a 101 answer to a request that asked for no upgrade.
var errUnexpectedUpgrade = errors.New("instance switched protocols unasked")

// timeoutError is a deadline the proxy enforces on an upstream; it is a net.Error with
// Timeout true, so the client gets 504.
type timeoutError struct{ what string }

func (e *timeoutError) Error() string   { return "upstream " + e.what + " timeout" }
func (e *timeoutError) Timeout() bool   { return true }
func (e *timeoutError) Temporary() bool { return true }

// The upstream timeouts, for both ways of forwarding.
var (
	// ErrFirstByteTimeout is the first-byte timeout running out before an answer's head.
	ErrFirstByteTimeout error = &timeoutError{"first byte"}
	// ErrIdleTimeout is the idle timeout running out between two reads of an answer's body.
	ErrIdleTimeout error = &timeoutError{"idle"}
)

var _ net.Error = (*timeoutError)(nil)

// isTimeout reports whether err is a deadline running out.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// copyBuffers are the 32 KiB buffers bodies are copied with.
var copyBuffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// Forward sends r to x's instance and copies the answer to w. It follows x's retry policy
// (Retry) after a refused connection and after a reused connection that failed. Like
// ReverseProxy, it panics with http.ErrAbortHandler when the answer breaks off after its
// head went out.
func (fp *Pool) Forward(w http.ResponseWriter, r *http.Request, x Exchange) {
	sc := connOf(w)
	ctx := r.Context()
	body := r.Body
	fresh := false
	var (
		c    *fastConn
		resp *http.Response
		stop func() bool
	)
	for {
		var reused bool
		var unasked int
		var err error
		c, reused, unasked, err = fp.get(ctx, x.Addr(), fresh)
		if unasked > 0 {
			x.Unasked(unasked)
		}
		if err != nil {
			var again io.ReadCloser
			if again, err = x.Retry(ctx, r, err, true); err == nil {
				body = again
				continue
			}
			x.Failed(w, r, err)
			return
		}
		if sc != nil {
			stop = sc.onHangup(c) // the fast server's watcher, without a context per request
		} else {
			stop = context.AfterFunc(ctx, c.abort)
		}
		resp, err = fp.exchange(c, r, sc, x, body)
		if err == nil {
			break
		}
		stop()
		c.close()
		if reused {
			var again io.ReadCloser
			if again, err = x.Retry(ctx, r, err, false); err == nil {
				fresh, body = true, again
				continue
			}
		}
		if isTimeout(err) && fp.cfg.FirstByteTimeout > 0 && ctx.Err() == nil {
			err = ErrFirstByteTimeout
		}
		var bre *bodyReadError
		if errors.As(err, &bre) {
			err = bre.err
		}
		x.Failed(w, r, err)
		return
	}
	fp.copyAnswer(w, r, sc, x, c, resp, stop)
}

// exchange sends the request on c and reads the response head (informational answers are
// passed on to the client). Errors before the first response byte are *BeforeResponseError.
func (fp *Pool) exchange(c *fastConn, r *http.Request, sc *sconn, x Exchange, body io.ReadCloser) (*http.Response, error) {
	if d := fp.cfg.FirstByteTimeout; d > 0 {
		c.conn.SetDeadline(time.Now().Add(d))
		c.deadline = true
	} else if c.deadline {
		c.conn.SetDeadline(time.Time{})
		c.deadline = false
	}
	if err := fp.writeRequest(c.bw, r, sc != nil, x.Addr(), body); err != nil {
		var bre *bodyReadError
		if errors.As(err, &bre) {
			return nil, err
		}
		return nil, &BeforeResponseError{err}
	}
	if _, err := c.br.Peek(1); err != nil {
		return nil, &BeforeResponseError{err}
	}
	return fp.readResponse(c, r, sc) // informational answers are passed on by copyAnswer
}

// readResponse reads an answer's head from c: with the fast server's parser into the client
// connection's reused storage when the request came through the fast server (and the head
// is a plain one), else with http.ReadResponse. A head over MaxResponseHead is a
// *HeadTooLargeError.
func (fp *Pool) readResponse(c *fastConn, r *http.Request, sc *sconn) (*http.Response, error) {
	if c.lim == nil {
		if sc != nil {
			if resp := sc.readResponse(c.br, r); resp != nil {
				return resp, nil
			}
		}
		if inBuffer, err := headBuffered(c.br); inBuffer || err != nil {
			return http.ReadResponse(c.br, r) // bounded by the buffer, or meets err
		}
		// A head longer than the buffer: read it through a limit.
		limit := fp.cfg.MaxResponseHead
		if limit <= c.br.Size() {
			return nil, &HeadTooLargeError{limit}
		}
		c.noReuse = true
		c.lim = &headLimit{r: c.br}
		c.pooled, c.br = c.br, bufio.NewReaderSize(c.lim, c.br.Size())
	}
	c.lim.n = int64(fp.cfg.MaxResponseHead)
	resp, err := http.ReadResponse(c.br, r)
	if c.lim.n < 0 {
		return nil, &HeadTooLargeError{fp.cfg.MaxResponseHead}
	}
	c.lim.n = math.MaxInt64 // the body is not limited
	return resp, err
}

// headBuffered reports whether br's buffer holds a whole head (its end found): false with
// no error when the buffer filled up first.
func headBuffered(br *bufio.Reader) (bool, error) {
	for {
		buf, _ := br.Peek(br.Buffered())
		if h1.HeadEnd(buf) > 0 {
			return true, nil
		}
		if len(buf) >= br.Size() {
			return false, nil
		}
		if _, err := br.Peek(len(buf) + 1); err != nil {
			return false, err
		}
	}
}

// headLimit reads at most n more bytes from r, then fails: it bounds an answer head that
// http.ReadResponse reads. n < 0 after the failure.
type headLimit struct {
	r io.Reader
	n int64
}

func (l *headLimit) Read(p []byte) (int, error) {
	if l.n <= 0 {
		l.n = -1
		return 0, errHeadLimit
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	return n, err
}

var errHeadLimit = errors.New("answer head limit reached")

// HeadTooLargeError is an answer head over the limit: the client gets 502.
type HeadTooLargeError struct{ Limit int }

func (e *HeadTooLargeError) Error() string {
	return fmt.Sprintf("instance's answer head is over spec.proxy.maxResponseHeaderBytes (%d bytes)", e.Limit)
}

// reqSkip are the request headers not copied as they are: hop-by-hop, the forwarded ones
// (set again below), and the framing (written from the body).
func reqSkip(k string) bool {
	switch k {
	case "Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
		"Te", "Trailer", "Transfer-Encoding", "Upgrade", "Host", "Content-Length",
		"Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto":
		return true
	}
	return false
}

// connectionListed reports whether the Connection header names k.
func connectionListed(conn []string, k string) bool {
	for _, v := range conn {
		for v != "" {
			var tok string
			tok, v, _ = strings.Cut(v, ",")
			if strings.EqualFold(strings.TrimSpace(tok), k) {
				return true
			}
		}
	}
	return false
}

func writeHeaderLine(bw *bufio.Writer, k, v string) {
	if hasCRLF(v) {
		v = strings.NewReplacer("\r", " ", "\n", " ").Replace(v)
	}
	bw.WriteString(k)
	bw.WriteString(": ")
	bw.WriteString(v)
	bw.WriteString("\r\n")
}

// writeRequest writes the request head for the instance at addr as ReverseProxy (Rewrite
// with SetURL and SetXForwarded) and Transport would, then the body, and flushes. parsed is
// true for a request the fast server read.
func (fp *Pool) writeRequest(bw *bufio.Writer, r *http.Request, parsed bool, addr string, body io.ReadCloser) error {
	bw.WriteString(r.Method)
	bw.WriteByte(' ')
	if parsed {
		bw.WriteString(r.RequestURI) // the fast server takes only targets that URL.RequestURI gives back unchanged
	} else {
		bw.WriteString(r.URL.RequestURI())
	}
	bw.WriteString(" HTTP/1.1\r\nHost: ")
	bw.WriteString(addr)
	bw.WriteString("\r\n")
	conn := r.Header["Connection"]
	for k, vv := range r.Header {
		if reqSkip(k) || (len(conn) > 0 && connectionListed(conn, k)) {
			continue
		}
		for _, v := range vv {
			writeHeaderLine(bw, k, v)
		}
	}
	fp.writeForwarded(bw, r)
	hasBody := body != nil && body != http.NoBody
	chunked := hasBody && r.ContentLength < 0
	switch {
	case chunked:
		bw.WriteString("Transfer-Encoding: chunked\r\n")
	case r.ContentLength > 0:
		bw.WriteString("Content-Length: ")
		bw.WriteString(strconv.FormatInt(r.ContentLength, 10))
		bw.WriteString("\r\n")
	case r.Method == http.MethodPost || r.Method == http.MethodPut || r.Method == http.MethodPatch:
		bw.WriteString("Content-Length: 0\r\n")
	}
	bw.WriteString("\r\n")
	if hasBody && r.ContentLength != 0 {
		if err := writeBody(bw, body, r.ContentLength, chunked); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// writeForwarded writes X-Forwarded-For, -Host and -Proto as rewrite does.
func (fp *Pool) writeForwarded(bw *bufio.Writer, r *http.Request) {
	if ip, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		if fp.cfg.TrustForwarded {
			if prior := r.Header["X-Forwarded-For"]; len(prior) > 0 {
				ip = strings.Join(prior, ", ") + ", " + ip
			}
		}
		writeHeaderLine(bw, "X-Forwarded-For", ip)
	}
	host := r.Host
	if fp.cfg.TrustForwarded {
		if v := headerGet(r.Header, "X-Forwarded-Host"); v != "" {
			host = v
		}
	}
	if host != "" {
		writeHeaderLine(bw, "X-Forwarded-Host", host)
	}
	proto := "http"
	if r.TLS != nil {
		proto = "https"
	}
	if fp.cfg.TrustForwarded {
		if v := headerGet(r.Header, "X-Forwarded-Proto"); v != "" {
			proto = v
		}
	}
	writeHeaderLine(bw, "X-Forwarded-Proto", proto)
}

// writeBody copies the request body: n bytes, or chunked when n < 0. Read failures are
// *bodyReadError.
func writeBody(bw *bufio.Writer, body io.Reader, n int64, chunked bool) error {
	bp := copyBuffers.Get().(*[]byte)
	defer copyBuffers.Put(bp)
	buf := *bp
	if chunked {
		cw := httputil.NewChunkedWriter(bw)
		for {
			k, rerr := body.Read(buf)
			if k > 0 {
				if _, err := cw.Write(buf[:k]); err != nil {
					return err
				}
				if err := bw.Flush(); err != nil { // the instance may read the body as it comes
					return err
				}
			}
			if rerr == io.EOF {
				break
			}
			if rerr != nil {
				return &bodyReadError{rerr}
			}
		}
		if err := cw.Close(); err != nil {
			return err
		}
		_, err := bw.WriteString("\r\n")
		return err
	}
	var sent int64
	for sent < n {
		k, rerr := body.Read(buf[:min(int64(len(buf)), n-sent)])
		if k > 0 {
			if _, err := bw.Write(buf[:k]); err != nil {
				return err
			}
			sent += int64(k)
		}
		if rerr == io.EOF && sent < n {
			return &bodyReadError{io.ErrUnexpectedEOF}
		}
		if rerr != nil && rerr != io.EOF {
			return &bodyReadError{rerr}
		}
	}
	return nil
}

// requestIDHeader is proxy.RequestIDHeader: the client gets the id the proxy gave the
// instance, never one the instance made up.
const requestIDHeader = "X-Request-Id"

// respSkip are the hop-by-hop response headers, and the request id.
func respSkip(k string) bool {
	switch k {
	case "Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
		"Te", "Trailer", "Transfer-Encoding", "Upgrade", requestIDHeader:
		return true
	}
	return false
}

// copyAnswer sends resp to the client, then returns c to the pool when it can be reused.
func (fp *Pool) copyAnswer(w http.ResponseWriter, r *http.Request, sc *sconn, x Exchange, c *fastConn, resp *http.Response, stop func() bool) {
	broken := func(clientGone bool, err error) {
		stop()
		c.close()
		x.Broken(clientGone || r.Context().Err() != nil, err)
		panic(http.ErrAbortHandler)
	}
	h := w.Header()
	for resp.StatusCode < 200 && resp.StatusCode != http.StatusSwitchingProtocols {
		// An informational answer (103 Early Hints): pass it on, then read the real one.
		for k, vv := range resp.Header {
			if !respSkip(k) {
				h[k] = vv
			}
		}
		w.WriteHeader(resp.StatusCode)
		for k := range resp.Header {
			if !respSkip(k) {
				delete(h, k)
			}
		}
		var err error
		if resp, err = fp.readResponse(c, r, sc); err != nil {
			stop()
			c.close()
			if isTimeout(err) && fp.cfg.FirstByteTimeout > 0 && r.Context().Err() == nil {
				err = ErrFirstByteTimeout
			}
			x.Failed(w, r, err)
			return
		}
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		stop()
		c.close()
		x.Failed(w, r, errUnexpectedUpgrade)
		return
	}
	stream := resp.ContentLength < 0 || strings.HasPrefix(headerGet(resp.Header, "Content-Type"), "text/event-stream")
	conn := resp.Header["Connection"]
	if sc != nil && resp == &sc.rs.resp {
		fw := &sc.rw // w
		// The answer's map, parsed into the connection's storage, becomes the response's
		// (and the response's, cleared for the next request, the next answer's): the
		// response's few headers are merged into it rather than the answer's copied over.
		rh := resp.Header
		if sc.rs.hs.Hop { // else nothing to drop: no hop-by-hop header, no Connection
			for k := range rh {
				if respSkip(k) || (len(conn) > 0 && connectionListed(conn, k)) {
					delete(rh, k)
				}
			}
		}
		for k, vv := range h {
			if rv, ok := rh[k]; !ok {
				rh[k] = vv
			} else if len(vv) > 0 {
				rh[k] = append(vv, rv...)
			}
		}
		fw.header, sc.rs.hs.H = rh, h
		h = rh
	} else {
		for k, vv := range resp.Header {
			if respSkip(k) || (len(conn) > 0 && connectionListed(conn, k)) {
				continue
			}
			if len(h[k]) == 0 {
				h[k] = vv[:len(vv):len(vv)] // shared: an append elsewhere copies
			} else {
				h[k] = append(h[k], vv...)
			}
		}
	}
	x.Answered(resp.StatusCode, h)
	announced := len(resp.Trailer)
	if announced > 0 {
		keys := make([]string, 0, announced)
		for k := range resp.Trailer {
			keys = append(keys, k)
		}
		h.Add("Trailer", strings.Join(keys, ", "))
	}
	w.WriteHeader(resp.StatusCode)

	idle := fp.cfg.IdleTimeout
	if idle <= 0 && c.deadline {
		c.conn.SetDeadline(time.Time{}) // the first-byte deadline is met; answers may take minutes
		c.deadline = false
	}
	var flush func() error
	if stream {
		if f, ok := w.(http.Flusher); ok {
			flush = func() error { f.Flush(); return nil }
		} else {
			flush = http.NewResponseController(w).Flush
		}
	}
	if flush != nil && resp.Body != http.NoBody {
		// A stream's headers go out at once, as ReverseProxy sends them: an SSE client
		// sees the answer begin before its first event.
		if err := flush(); err != nil {
			broken(true, err)
		}
	}
	if resp.Body != http.NoBody {
		bp := copyBuffers.Get().(*[]byte)
		buf := *bp
		begun := false
		for {
			if idle > 0 {
				c.conn.SetReadDeadline(time.Now().Add(idle))
				c.deadline = true
			}
			n, rerr := resp.Body.Read(buf)
			if n > 0 {
				if _, err := w.Write(buf[:n]); err != nil {
					copyBuffers.Put(bp)
					broken(true, err)
				}
				if flush != nil {
					if err := flush(); err != nil {
						copyBuffers.Put(bp)
						broken(true, err)
					}
				}
				if !begun {
					begun = true
					x.BodyBegun()
				}
			}
			if rerr == io.EOF {
				break
			}
			if rerr != nil {
				copyBuffers.Put(bp)
				if isTimeout(rerr) && idle > 0 && r.Context().Err() == nil {
					rerr = ErrIdleTimeout
				}
				broken(false, rerr)
			}
		}
		copyBuffers.Put(bp)
	}
	resp.Body.Close() // after EOF: only fills resp.Trailer
	if len(resp.Trailer) > 0 {
		http.NewResponseController(w).Flush() // force chunking, so the trailers can follow
		if len(resp.Trailer) == announced {
			for k, vv := range resp.Trailer {
				h[k] = append(h[k], vv...)
			}
		} else {
			for k, vv := range resp.Trailer {
				for _, v := range vv {
					h.Add(http.TrailerPrefix+k, v)
				}
			}
		}
	}
	if !stop() || resp.Close || r.Context().Err() != nil || c.noReuse {
		c.close()
		return
	}
	if c.br.Buffered() > 0 {
		// The instance sent more than the answer it framed (a second answer, a body after
		// a HEAD, 204 or 304): the next request on this connection would be given it.
		c.close()
		x.Unasked(1)
		return
	}
	fp.put(x.Addr(), c)
}
