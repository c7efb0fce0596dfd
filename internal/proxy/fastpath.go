package proxy

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

// The fast path forwards plain HTTP/1.1 requests on the client connection's goroutine: it
// takes an idle upstream connection from a per-instance free list, writes the request head
// and body itself, reads the response with http.ReadResponse and copies it to the client.
// net/http's Transport spends two goroutines per upstream connection and channel hand-offs
// per request; this path has none. What it does not handle (upgrades, h2c upstreams,
// Expect: 100-continue, request trailers) goes through httputil.ReverseProxy as before.

const (
	// fastMaxIdlePerHost bounds the idle connections kept per instance address.
	fastMaxIdlePerHost = 256
	// fastIdleConnTimeout is how long an idle upstream connection is kept.
	fastIdleConnTimeout = 90 * time.Second
)

var (
	bufReaders = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4<<10) }}
	bufWriters = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 4<<10) }}
)

// monoBase is the origin of monoNow.
var monoBase = time.Now()

// monoNow reads the monotonic clock alone (time.Since of a time with a monotonic reading
// does), for intervals measured in-process: cheaper than time.Now, which reads the wall
// clock too.
func monoNow() time.Duration { return time.Since(monoBase) }

// fastConn is one upstream HTTP/1.1 connection. Only the request that holds it uses it;
// abort (run by context.AfterFunc when the client goes away) only closes the socket.
type fastConn struct {
	conn      net.Conn
	br        *bufio.Reader
	bw        *bufio.Writer
	abort     func()
	idleSince time.Duration // monoNow when it went idle
	deadline  bool          // a deadline is set on conn
	// After an answer head too large for br's buffer, br reads through lim from pooled
	// (the connection's own reader), and the connection is not reused (noReuse): br may
	// hold bytes pooled no longer shows.
	noReuse bool
	pooled  *bufio.Reader
	lim     *headLimit
}

func newFastConn(conn net.Conn) *fastConn {
	c := &fastConn{conn: conn, br: bufReaders.Get().(*bufio.Reader), bw: bufWriters.Get().(*bufio.Writer)}
	c.br.Reset(conn)
	c.bw.Reset(conn)
	c.abort = func() { conn.Close() }
	return c
}

// close closes the connection and returns its buffers. Only the holder calls it.
func (c *fastConn) close() {
	c.conn.Close()
	if c.pooled != nil {
		c.br, c.pooled, c.lim = c.pooled, nil, nil
	}
	if c.br != nil {
		c.br.Reset(nil)
		bufReaders.Put(c.br)
		c.bw.Reset(nil)
		bufWriters.Put(c.bw)
		c.br, c.bw = nil, nil
	}
}

// fastPool holds the idle connections of one upstreams (one Settings), by instance address.
type fastPool struct {
	dialer *net.Dialer

	mu     sync.Mutex
	hosts  map[string][]*fastConn // idle connections, oldest first
	closed bool
}

func newFastPool(d *net.Dialer) *fastPool {
	return &fastPool{dialer: d, hosts: map[string][]*fastConn{}}
}

// get returns an idle connection to addr (reused true), or dials a new one. fresh skips the
// idle ones. An idle connection is taken only when nothing is waiting on it: neither in its
// buffer nor on the socket (connAlive). One that holds bytes no request asked for is closed
// and counted in unasked; one the instance closed while idle is closed quietly.
func (fp *fastPool) get(ctx context.Context, addr string, fresh bool) (c *fastConn, reused bool, unasked int, err error) {
	for !fresh && canPeek {
		c = nil
		fp.mu.Lock()
		idle := fp.hosts[addr]
		if n := len(idle); n > 0 {
			c = idle[n-1]
			idle[n-1] = nil
			fp.hosts[addr] = idle[:n-1]
		}
		fp.mu.Unlock()
		if c == nil {
			break
		}
		if monoNow()-c.idleSince >= fastIdleConnTimeout {
			// The newest is too old: so are the others.
			c.close()
			fp.forget(addr)
			break
		}
		if c.br.Buffered() > 0 {
			unasked++
			c.close()
			continue
		}
		alive, extra := connAlive(c.conn)
		if alive {
			return c, true, unasked, nil
		}
		if extra {
			unasked++
		}
		c.close() // closed by the instance while idle, or sent something unasked
	}
	conn, err := fp.dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, false, unasked, err
	}
	return newFastConn(conn), false, unasked, nil
}

// put returns a connection in good order to the idle list of addr.
func (fp *fastPool) put(addr string, c *fastConn) {
	c.idleSince = monoNow()
	var expired *fastConn
	fp.mu.Lock()
	idle := fp.hosts[addr]
	if fp.closed || !canPeek || len(idle) >= fastMaxIdlePerHost { // !canPeek: get never reuses one
		fp.mu.Unlock()
		c.close()
		return
	}
	if len(idle) > 0 && c.idleSince-idle[0].idleSince > fastIdleConnTimeout {
		expired = idle[0]
		idle = idle[1:]
	}
	fp.hosts[addr] = append(idle, c)
	fp.mu.Unlock()
	if expired != nil {
		expired.close()
	}
}

// forget closes the idle connections to addr.
func (fp *fastPool) forget(addr string) {
	fp.mu.Lock()
	idle := fp.hosts[addr]
	delete(fp.hosts, addr)
	fp.mu.Unlock()
	for _, c := range idle {
		c.close()
	}
}

// retain closes the idle connections to every address not in keep.
func (fp *fastPool) retain(keep map[string]bool) {
	fp.mu.Lock()
	var gone []*fastConn
	for addr, idle := range fp.hosts {
		if !keep[addr] {
			gone = append(gone, idle...)
			delete(fp.hosts, addr)
		}
	}
	fp.mu.Unlock()
	for _, c := range gone {
		c.close()
	}
}

// closeIdle closes the idle connections; with final, connections handed back later are
// closed too.
func (fp *fastPool) closeIdle(final bool) {
	fp.mu.Lock()
	hosts := fp.hosts
	fp.hosts = map[string][]*fastConn{}
	fp.closed = fp.closed || final
	fp.mu.Unlock()
	for _, idle := range hosts {
		for _, c := range idle {
			c.close()
		}
	}
}

// fastEligible reports whether the fast path can forward r. parsed is true for a request the
// fast server parsed: h1.ParseRequestHead leaves the headers looked at here to net/http, so the
// proxy's request has none of them.
func (u *upstreams) fastEligible(r *http.Request, parsed bool) bool {
	if u.fast == nil || r.Method == http.MethodConnect || len(r.Trailer) > 0 {
		return false
	}
	if parsed {
		return true
	}
	h := r.Header
	return len(h["Upgrade"]) == 0 && len(h["Expect"]) == 0 && len(h["Te"]) == 0 && len(h["Trailer"]) == 0
}

// beforeResponseError is an upstream failure before any byte of the response arrived.
type beforeResponseError struct{ err error }

func (e *beforeResponseError) Error() string { return e.err.Error() }
func (e *beforeResponseError) Unwrap() error { return e.err }

// bodyReadError is the client's request body failing to read (too large, or cut).
type bodyReadError struct{ err error }

func (e *bodyReadError) Error() string { return "read request body: " + e.err.Error() }
func (e *bodyReadError) Unwrap() error { return e.err }

// errUnexpectedUpgrade is a 101 answer to a request that asked for no upgrade.
var errUnexpectedUpgrade = errors.New("instance switched protocols unasked")

// serveFast forwards r to st's instance on the fast path and copies the answer to w. It
// follows the retry policy (retry.go): once on another instance when the connection is
// refused, once on a new connection when a reused one fails before answering. Like ReverseProxy, it panics with http.ErrAbortHandler when the answer breaks off
// after its headers were sent.
func (p *Proxy) serveFast(w http.ResponseWriter, r *http.Request, st *reqState) {
	fp := st.up.fast
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
		c, reused, unasked, err = fp.get(ctx, st.t.addr, fresh)
		if unasked > 0 {
			p.discarded(st, reasonUnasked, unasked)
		}
		if err != nil {
			if p.moveOnRefusal(ctx, st, err) {
				if body, err = replayBody(r); err == nil {
					continue
				}
			}
			p.upstreamFailed(w, r, st, err)
			return
		}
		if st.sc != nil {
			stop = st.sc.onHangup(c) // the fast server's watcher, without a context per request
		} else {
			stop = context.AfterFunc(ctx, c.abort)
		}
		resp, err = p.exchange(c, r, st, body)
		if err == nil {
			break
		}
		stop()
		c.close()
		if reused && p.renewAfterStale(ctx, r, st, err) {
			fresh = true
			if body, err = replayBody(r); err == nil {
				continue
			}
		}
		if isTimeout(err) && st.up.s.FirstByteTimeout > 0 && ctx.Err() == nil {
			err = errFirstByteTimeout
		}
		var bre *bodyReadError
		if errors.As(err, &bre) {
			err = bre.err
		}
		p.upstreamFailed(w, r, st, err)
		return
	}
	p.copyFast(w, r, st, c, resp, stop)
}

// exchange sends the request on c and reads the response head (informational answers are
// passed on to the client). Errors before the first response byte are *beforeResponseError.
func (p *Proxy) exchange(c *fastConn, r *http.Request, st *reqState, body io.ReadCloser) (*http.Response, error) {
	if d := st.up.s.FirstByteTimeout; d > 0 {
		c.conn.SetDeadline(time.Now().Add(d))
		c.deadline = true
	} else if c.deadline {
		c.conn.SetDeadline(time.Time{})
		c.deadline = false
	}
	if err := p.writeRequest(c.bw, r, st, body); err != nil {
		var bre *bodyReadError
		if errors.As(err, &bre) {
			return nil, err
		}
		return nil, &beforeResponseError{err}
	}
	if _, err := c.br.Peek(1); err != nil {
		return nil, &beforeResponseError{err}
	}
	return readResponse(c, r, st) // informational answers are passed on by copyFast
}

// readResponse reads an answer's head from c: with the fast server's parser into the client
// connection's reused storage when the request came through the fast server (and the head
// is a plain one), else with http.ReadResponse. A head over the settings'
// MaxResponseHeaderBytes is an error (errHeadTooLarge).
func readResponse(c *fastConn, r *http.Request, st *reqState) (*http.Response, error) {
	if c.lim == nil {
		if st.sc != nil {
			if resp := st.sc.readResponse(c.br, r); resp != nil {
				return resp, nil
			}
		}
		if inBuffer, err := headBuffered(c.br); inBuffer || err != nil {
			return http.ReadResponse(c.br, r) // bounded by the buffer, or meets err
		}
		// A head longer than the buffer: read it through a limit.
		limit := st.up.maxResponseHead()
		if limit <= c.br.Size() {
			return nil, &headTooLargeError{limit}
		}
		c.noReuse = true
		c.lim = &headLimit{r: c.br}
		c.pooled, c.br = c.br, bufio.NewReaderSize(c.lim, c.br.Size())
	}
	c.lim.n = int64(st.up.maxResponseHead())
	resp, err := http.ReadResponse(c.br, r)
	if c.lim.n < 0 {
		return nil, &headTooLargeError{st.up.maxResponseHead()}
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

// headTooLargeError is an answer head over the limit: the client gets 502.
type headTooLargeError struct{ limit int }

func (e *headTooLargeError) Error() string {
	return fmt.Sprintf("instance's answer head is over spec.proxy.maxResponseHeaderBytes (%d bytes)", e.limit)
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

// writeRequest writes the request head as ReverseProxy (Rewrite with SetURL and
// SetXForwarded) and Transport would, then the body, and flushes.
func (p *Proxy) writeRequest(bw *bufio.Writer, r *http.Request, st *reqState, body io.ReadCloser) error {
	bw.WriteString(r.Method)
	bw.WriteByte(' ')
	if st.sc != nil {
		bw.WriteString(r.RequestURI) // the fast server takes only targets that URL.RequestURI gives back unchanged
	} else {
		bw.WriteString(r.URL.RequestURI())
	}
	bw.WriteString(" HTTP/1.1\r\nHost: ")
	bw.WriteString(st.t.addr)
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
	p.writeForwarded(bw, r)
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
func (p *Proxy) writeForwarded(bw *bufio.Writer, r *http.Request) {
	if ip, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		if p.trustXF {
			if prior := r.Header["X-Forwarded-For"]; len(prior) > 0 {
				ip = strings.Join(prior, ", ") + ", " + ip
			}
		}
		writeHeaderLine(bw, "X-Forwarded-For", ip)
	}
	host := r.Host
	if p.trustXF {
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
	if p.trustXF {
		if v := headerGet(r.Header, "X-Forwarded-Proto"); v != "" {
			proto = v
		}
	}
	writeHeaderLine(bw, "X-Forwarded-Proto", proto)
}

// writeBody copies the request body: n bytes, or chunked when n < 0. Read failures are
// *bodyReadError.
func writeBody(bw *bufio.Writer, body io.Reader, n int64, chunked bool) error {
	bp := copyBufferPool.Get().(*[]byte)
	defer copyBufferPool.Put(bp)
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

// respSkip are the hop-by-hop response headers.
func respSkip(k string) bool {
	switch k {
	case "Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
		"Te", "Trailer", "Transfer-Encoding", "Upgrade", RequestIDHeader:
		return true
	}
	return false
}

// copyFast sends resp to the client, then returns c to the pool when it can be reused.
func (p *Proxy) copyFast(w http.ResponseWriter, r *http.Request, st *reqState, c *fastConn, resp *http.Response, stop func() bool) {
	broken := func(clientGone bool, err error) {
		stop()
		c.close()
		if clientGone || r.Context().Err() != nil {
			st.clientGone = true
		} else {
			st.failed = true
			p.log.Warn("upstream response broken", keyRevision, st.pool.rev, keyBackend, st.t.b.id,
				"addr", st.t.addr, "err", err)
		}
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
		if resp, err = readResponse(c, r, st); err != nil {
			stop()
			c.close()
			if isTimeout(err) && st.up.s.FirstByteTimeout > 0 && r.Context().Err() == nil {
				err = errFirstByteTimeout
			}
			p.upstreamFailed(w, r, st, err)
			return
		}
	}
	st.gotHeaders = true
	st.ttfb = p.now().Sub(st.start)
	st.status = resp.StatusCode
	if resp.StatusCode == http.StatusSwitchingProtocols {
		stop()
		c.close()
		st.gotHeaders = false
		p.upstreamFailed(w, r, st, errUnexpectedUpgrade)
		return
	}
	stream := resp.ContentLength < 0 || strings.HasPrefix(headerGet(resp.Header, "Content-Type"), "text/event-stream")
	conn := resp.Header["Connection"]
	if st.sc != nil && resp == &st.sc.rs.resp {
		fw := &st.sc.rw // w: serveConn passes it
		// The answer's map, parsed into the connection's storage, becomes the response's
		// (and the response's, cleared for the next request, the next answer's): the
		// response's few headers are merged into it rather than the answer's copied over.
		rh := resp.Header
		if st.sc.rs.hs.Hop { // else nothing to drop: no hop-by-hop header, no Connection
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
		fw.header, st.sc.rs.hs.H = rh, h
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
	h[RevisionHeader] = st.pool.revValue
	announced := len(resp.Trailer)
	if announced > 0 {
		keys := make([]string, 0, announced)
		for k := range resp.Trailer {
			keys = append(keys, k)
		}
		h.Add("Trailer", strings.Join(keys, ", "))
	}
	w.WriteHeader(resp.StatusCode)

	idle := st.up.s.IdleTimeout
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
		bp := copyBufferPool.Get().(*[]byte)
		buf := *bp
		for {
			if idle > 0 {
				c.conn.SetReadDeadline(time.Now().Add(idle))
				c.deadline = true
			}
			n, rerr := resp.Body.Read(buf)
			if n > 0 {
				if _, err := w.Write(buf[:n]); err != nil {
					copyBufferPool.Put(bp)
					broken(true, err)
				}
				if flush != nil {
					if err := flush(); err != nil {
						copyBufferPool.Put(bp)
						broken(true, err)
					}
				}
				if !st.gotBody {
					st.bodyBegun(p.now())
				}
			}
			if rerr == io.EOF {
				break
			}
			if rerr != nil {
				copyBufferPool.Put(bp)
				if isTimeout(rerr) && idle > 0 && r.Context().Err() == nil {
					rerr = errIdleTimeout
				}
				broken(false, rerr)
			}
		}
		copyBufferPool.Put(bp)
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
		p.discarded(st, reasonUnasked, 1)
		return
	}
	st.up.fast.put(st.t.addr, c)
}
