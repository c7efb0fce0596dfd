// Package fast is the HTTP/1.1 fast path of ramp's proxy, on both sides of it: a server
// that reads plain HTTP/1.1 requests on the accepted connection's goroutine into buffers
// reused from request to request (Server), and a forwarder that sends them to an instance on
// its own pool of connections (Pool). The proxy's request path sees each through one seam:
// the server hands requests to a ConnHandler, and the forwarder reports through an Exchange.
// What either does not take goes to net/http (its server, or ReverseProxy and Transport),
// whose behaviour the fast path matches; the differential tests in package proxy hold it to
// that.
package fast

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"ramp.dev/ramp/internal/proxy/h1"
)

// The fast server is the client half of the fast path: it reads plain HTTP/1.1 requests
// on the accepted connection's goroutine, into per-connection buffers that are reused from
// request to request (no goroutine, Request, header map, context or response object per
// request), hands them to its ConnHandler (the proxy, which forwards them with Pool.Forward
// when it can), and writes the answer as net/http's server would. Whatever it does not take — TLS, HTTP/2, upgrades,
// Expect, TE, trailers, CONNECT, HTTP/1.0, unusual targets, heads over 8 KiB, anything
// malformed — goes to the net/http server with the bytes already read, so that its
// behaviour (and its error statuses) stay what they were. A connection handed over stays
// with net/http.

const (
	// fastHeadBuffer is the per-connection read buffer; a request head must fit in it.
	fastHeadBuffer = 8 << 10
	// watchDelay is how long a request waits for its instance before the server starts
	// watching the client connection for a hang-up (net/http watches every request).
	watchDelay = 20 * time.Millisecond
)

var (
	fastReaders = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, fastHeadBuffer) }}
	fastWriters = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 4<<10) }}
	bodyWriters = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, bufferBeforeChunking) }}
	aLongAgo    = time.Unix(1, 0)
)

// ConnHandler serves the requests a Server reads on one client connection, one at a time.
type ConnHandler interface {
	// Take reports whether the server is to serve the request whose head it has read;
	// false hands the connection, with what was read of it, to net/http.
	Take() bool
	// ServeHTTP serves a request after Take accepted it. w is the connection's writer, which
	// Pool.Forward recognises; neither w nor r may be kept past the call.
	ServeHTTP(w http.ResponseWriter, r *http.Request)
}

// Server reads plain HTTP/1.1 requests itself and hands every other connection to an
// http.Server (its handler then serves them).
type Server struct {
	newHandler func() ConnHandler
	srv        *http.Server
	hl         *handoffListener

	headLimit    int
	writeTimeout time.Duration // bounds each write's progress; 0 means none
	shuttingDown atomic.Bool
	served       atomic.Int64 // requests served here
	handedOff    atomic.Int64 // connections handed to net/http
	// OnServe, when not nil, is called with the client's address before each request the
	// server serves itself (tests use it). Set it before Serve.
	OnServe func(remoteAddr string)

	mu    sync.Mutex
	lns   map[net.Listener]struct{}
	conns map[*sconn]struct{}
	once  sync.Once // starts srv.Serve(hl)
}

// NewServer returns a server that hands the connections it does not serve to srv, and the
// requests it serves to a ConnHandler that newConn makes for each connection. Its limits
// are srv's (ReadHeaderTimeout, IdleTimeout, MaxHeaderBytes, ErrorLog); writeTimeout bounds
// each write's progress to a client of either server (ClientListener), 0 means none.
func NewServer(newConn func() ConnHandler, srv *http.Server, writeTimeout time.Duration) *Server {
	return &Server{
		newHandler: newConn, srv: srv, writeTimeout: writeTimeout,
		hl:    &handoffListener{ch: make(chan net.Conn), closed: make(chan struct{})},
		lns:   map[net.Listener]struct{}{},
		conns: map[*sconn]struct{}{},
	}
}

// Served returns the number of requests the server served itself.
func (fs *Server) Served() int64 { return fs.served.Load() }

// HandedOff returns the number of connections handed to net/http.
func (fs *Server) HandedOff() int64 { return fs.handedOff.Load() }

func (fs *Server) logf(format string, args ...any) {
	if fs.srv.ErrorLog != nil {
		fs.srv.ErrorLog.Printf(format, args...)
	} else {
		log.Printf(format, args...)
	}
}

// Serve accepts connections on ln until it is closed, as http.Server.Serve.
func (fs *Server) Serve(ln net.Listener) error {
	fs.mu.Lock()
	if fs.shuttingDown.Load() {
		fs.mu.Unlock()
		return http.ErrServerClosed
	}
	fs.lns[ln] = struct{}{}
	fs.mu.Unlock()
	defer func() {
		fs.mu.Lock()
		delete(fs.lns, ln)
		fs.mu.Unlock()
		ln.Close()
	}()
	fs.headLimit = fastHeadBuffer
	if m := fs.srv.MaxHeaderBytes; m > 0 && m < fs.headLimit {
		fs.headLimit = m
	}
	fs.hl.addr = ln.Addr()
	fs.once.Do(func() {
		go func() {
			if err := fs.srv.Serve(fs.hl); err != nil && !errors.Is(err, http.ErrServerClosed) {
				fs.logf("http: handoff server stopped: %v", err)
			}
		}()
	})
	var delay time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if fs.shuttingDown.Load() {
				return http.ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || isTemporary(err) {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				fs.logf("http: Accept error: %v; retrying in %v", err, delay)
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		sc := fs.newConn(c)
		if sc == nil {
			c.Close()
			continue
		}
		go sc.serve()
	}
}

func isTemporary(err error) bool {
	t, ok := err.(interface{ Temporary() bool })
	return ok && t.Temporary()
}

// Connection states for shutdown, as net/http's.
const (
	connNew = iota
	connActive
	connIdle
)

func (fs *Server) newConn(c net.Conn) *sconn {
	sc := &sconn{fs: fs, conn: c, remoteAddr: c.RemoteAddr().String()}
	sc.setState(connNew)
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fs.shuttingDown.Load() {
		return nil
	}
	fs.conns[sc] = struct{}{}
	return sc
}

func (fs *Server) forget(sc *sconn) {
	fs.mu.Lock()
	delete(fs.conns, sc)
	fs.mu.Unlock()
}

// CloseListeners closes the listeners: Serve returns http.ErrServerClosed.
func (fs *Server) CloseListeners() {
	fs.shuttingDown.Store(true)
	fs.mu.Lock()
	for ln := range fs.lns {
		ln.Close()
	}
	fs.mu.Unlock()
}

// closeIdle closes the connections waiting for a request (new ones after 5 seconds, as
// net/http) and reports whether none is left.
func (fs *Server) closeIdle() bool {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	quiet := true
	now := time.Now().Unix()
	for sc := range fs.conns {
		st, since := sc.getState()
		if st == connNew && since < now-5 {
			st = connIdle
		}
		if st != connIdle {
			quiet = false
			continue
		}
		sc.conn.Close()
		delete(fs.conns, sc)
	}
	return quiet
}

// Shutdown closes the listeners, then the idle connections as they become idle, until none
// is left or ctx ends. It does not shut the http.Server down.
func (fs *Server) Shutdown(ctx context.Context) error {
	fs.CloseListeners()
	const maxPoll = 500 * time.Millisecond
	poll := time.Millisecond
	t := time.NewTimer(poll)
	defer t.Stop()
	for {
		if fs.closeIdle() {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			poll = min(2*poll, maxPoll)
			t.Reset(poll)
		}
	}
}

// Close closes the listeners and the connections the server serves itself at once.
func (fs *Server) Close() {
	fs.CloseListeners()
	fs.mu.Lock()
	for sc := range fs.conns {
		sc.conn.Close()
		delete(fs.conns, sc)
	}
	fs.mu.Unlock()
}

// handoffListener yields the connections the fast server hands to net/http.
type handoffListener struct {
	addr   net.Addr
	ch     chan net.Conn
	closed chan struct{}
	once   sync.Once
}

func (l *handoffListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *handoffListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *handoffListener) Addr() net.Addr { return l.addr }

func (l *handoffListener) deliver(c net.Conn) {
	select {
	case l.ch <- c:
	case <-l.closed:
		c.Close()
	}
}

// sconn is one client connection of the fast server. Its goroutine serves the requests one
// after the other; only the hang-up watcher runs beside it.
type sconn struct {
	fs         *Server
	conn       net.Conn
	remoteAddr string
	state      atomic.Uint64

	cr   connReader
	br   *bufio.Reader
	bw   *bufio.Writer
	werr error // the first write error; the client is gone

	ctx    context.Context // cancelled when the client hangs up or a write fails
	cancel context.CancelFunc
	base   *http.Request // carries ctx; each request starts as a copy

	req        http.Request
	hs         h1.HeadSpace
	body       h1.Body // the request's body
	rw         responseWriter
	wantsClose bool
	h          ConnHandler // made at the first request
	url        url.URL
	lastTarget string
	lastURL    url.URL

	deadline     int           // which read deadline is set: 0 none, 1 idle, 2 head
	idleSet      time.Duration // monoNow when the idle deadline was set
	headDeadline time.Time     // the head deadline, while deadline is 2
	wp           writeProgress // moves the write deadline on (fs.writeTimeout)

	watchMu      sync.Mutex
	watchState   int           // 0 off, 1 armed, 2 reading
	watchArmed   time.Duration // monoNow when the watcher was last armed
	watchPending bool          // watchTimer is set; guarded by watchMu
	watchTimer   *time.Timer
	watchDone    chan struct{}

	rs respSpace // the current request's answer from its instance

	// upConn is the instance connection of the request in flight, closed when the client
	// hangs up (what context.AfterFunc does under net/http's server); guarded by watchMu.
	upConn    *fastConn
	upAborted bool
	stopFn    func() bool // sc.stopHangup, made once

	clenBuf [20]byte
	dateBuf [32]byte
}

// onHangup registers c to be closed if the client hangs up, and returns the function that
// unregisters it, which reports false when c was closed (as context.AfterFunc's stop).
func (sc *sconn) onHangup(c *fastConn) func() bool {
	sc.watchMu.Lock()
	sc.upConn, sc.upAborted = c, false
	gone := sc.ctx.Err() != nil
	if gone {
		sc.upAborted = true
	}
	sc.watchMu.Unlock()
	if gone {
		c.abort()
	}
	if sc.stopFn == nil {
		sc.stopFn = sc.stopHangup
	}
	return sc.stopFn
}

func (sc *sconn) stopHangup() bool {
	sc.watchMu.Lock()
	defer sc.watchMu.Unlock()
	stopped := sc.upConn != nil && !sc.upAborted
	sc.upConn, sc.upAborted = nil, false
	return stopped
}

// hangup cancels the connection's context and closes the instance connection in use.
func (sc *sconn) hangup() {
	sc.cancel()
	sc.watchMu.Lock()
	c := sc.upConn
	if c != nil && !sc.upAborted {
		sc.upAborted = true
	} else {
		c = nil
	}
	sc.watchMu.Unlock()
	if c != nil {
		c.abort()
	}
}

// setState records the connection's state, and when it became new: closeIdle looks at the
// time of new connections only (as net/http's), so the others do without a clock reading.
func (sc *sconn) setState(st int) {
	var since uint64
	if st == connNew {
		since = uint64(time.Now().Unix())
	}
	sc.state.Store(since<<8 | uint64(st))
}

func (sc *sconn) getState() (int, int64) {
	v := sc.state.Load()
	return int(v & 0xff), int64(v >> 8)
}

// connReader reads the connection, after the byte the watcher may have read.
type connReader struct {
	conn    net.Conn
	hasByte bool
	b       [1]byte
}

func (cr *connReader) Read(p []byte) (int, error) {
	if cr.hasByte && len(p) > 0 {
		p[0] = cr.b[0]
		cr.hasByte = false
		return 1, nil
	}
	return cr.conn.Read(p)
}

// connWriter records the first write error and cancels the connection's context, as
// net/http's checkConnErrorWriter.
type connWriter struct{ sc *sconn }

// With a write timeout, each write's progress is bounded (writeProgress).
func (w connWriter) Write(p []byte) (int, error) {
	if d := w.sc.fs.writeTimeout; d > 0 {
		w.sc.wp.before(w.sc.conn, d)
	}
	n, err := w.sc.conn.Write(p)
	if err != nil && w.sc.werr == nil {
		w.sc.werr = err
		w.sc.hangup()
	}
	return n, err
}

func (sc *sconn) serve() {
	fs := sc.fs
	handedOff := false
	defer func() {
		if sc.watchTimer != nil {
			sc.disarm()
			sc.watchTimer.Stop()
		}
		if !handedOff {
			sc.conn.Close()
		}
		if sc.cancel != nil {
			sc.cancel()
		}
		if sc.br != nil {
			sc.br.Reset(nil)
			fastReaders.Put(sc.br)
			sc.bw.Reset(nil)
			fastWriters.Put(sc.bw)
			sc.rw.w.Reset(nil)
			bodyWriters.Put(sc.rw.w)
		}
		fs.forget(sc)
	}()
	sc.cr.conn = sc.conn
	sc.br = fastReaders.Get().(*bufio.Reader)
	sc.br.Reset(&sc.cr)
	sc.bw = fastWriters.Get().(*bufio.Writer)
	sc.bw.Reset(connWriter{sc})
	sc.rw.sc = sc
	sc.rw.w = bodyWriters.Get().(*bufio.Writer)
	sc.body.Init(sc.br, &sc.req.Trailer, sc.arm)
	if d := fs.srv.ReadHeaderTimeout; d > 0 {
		sc.headDeadline = time.Now().Add(d)
		sc.conn.SetReadDeadline(sc.headDeadline)
		sc.deadline = 2
	}
	for {
		n, err := sc.readHead()
		if err != nil {
			return
		}
		if n == 0 || !sc.take(n) {
			handedOff = sc.handoff()
			return
		}
		sc.setState(connActive)
		fs.served.Add(1)
		if fs.OnServe != nil {
			fs.OnServe(sc.remoteAddr)
		}
		if !sc.serveOne() {
			return
		}
		sc.setState(connIdle)
		// The idle deadline stays set through requests without a body (take), and is moved
		// on only when an eighth of it has passed: an idle connection is closed after 7/8 to
		// 8/8 of the timeout, without a deadline change per request.
		if d := fs.srv.IdleTimeout; d > 0 {
			if now := monoNow(); sc.deadline != 1 || now-sc.idleSet >= d>>3 {
				sc.conn.SetReadDeadline(time.Now().Add(d))
				sc.deadline, sc.idleSet = 1, now
			}
		}
	}
}

// readHead waits until br holds a whole request head and returns its length; 0 means the
// request goes to net/http (the head is too long, or it ended with the connection). An
// error means the connection is to be closed without an answer, as net/http does for
// read errors and timeouts.
func (sc *sconn) readHead() (int, error) {
	for {
		buf, _ := sc.br.Peek(sc.br.Buffered())
		if n := h1.HeadEnd(buf); n > 0 {
			return n, nil
		}
		if len(buf) >= sc.fs.headLimit {
			return 0, nil
		}
		if len(buf) > 0 && sc.deadline != 2 {
			if d := sc.fs.srv.ReadHeaderTimeout; d > 0 {
				sc.headDeadline = time.Now().Add(d)
				sc.conn.SetReadDeadline(sc.headDeadline)
				sc.deadline = 2
			} else if sc.deadline != 0 {
				sc.conn.SetReadDeadline(time.Time{})
				sc.deadline = 0
			}
		}
		if _, err := sc.br.Peek(len(buf) + 1); err != nil {
			if sc.br.Buffered() > 0 && err == io.EOF {
				return 0, nil // net/http answers a cut head
			}
			return 0, err
		}
	}
}

// take parses the head of length n and, when the fast server can serve it, consumes it and
// sets up sc.req. False leaves the bytes for net/http.
func (sc *sconn) take(n int) bool {
	if sc.h == nil {
		sc.h = sc.fs.newHandler()
	}
	if !sc.h.Take() {
		return false
	}
	buf, _ := sc.br.Peek(n)
	head := string(buf)
	ph, ok := h1.ParseRequestHead(head, &sc.hs)
	if !ok {
		return false
	}
	if ph.Target != sc.lastTarget || sc.lastTarget == "" {
		u, err := url.ParseRequestURI(ph.Target)
		if err != nil {
			return false
		}
		sc.lastTarget, sc.lastURL = ph.Target, *u
	}
	sc.br.Discard(n)
	// A request without a body reads nothing more of the connection (the watcher clears the
	// deadline before it reads): its idle or head deadline can stay.
	if sc.deadline != 0 && ph.ContentLength != 0 {
		sc.conn.SetReadDeadline(time.Time{})
		sc.deadline = 0
	}
	if sc.ctx == nil {
		ctx := context.WithValue(context.Background(), http.ServerContextKey, sc.fs.srv)
		ctx = context.WithValue(ctx, http.LocalAddrContextKey, sc.conn.LocalAddr())
		sc.ctx, sc.cancel = context.WithCancel(ctx)
		sc.base = (&http.Request{}).WithContext(sc.ctx)
		sc.watchDone = make(chan struct{}, 1)
		sc.watchTimer = time.AfterFunc(time.Hour, sc.watch)
		sc.watchTimer.Stop()
	}
	sc.url = sc.lastURL
	r := &sc.req
	*r = *sc.base
	r.Method = ph.Method
	r.URL = &sc.url
	r.Proto, r.ProtoMajor, r.ProtoMinor = "HTTP/1.1", 1, 1
	r.Header = sc.hs.H
	r.Host = ph.Host
	r.RemoteAddr = sc.remoteAddr
	r.RequestURI = ph.Target
	r.Close = ph.Close
	r.ContentLength = ph.ContentLength
	sc.wantsClose = ph.Close
	sc.body.Reset(ph.ContentLength, ph.ContentLength < 0)
	if ph.ContentLength == 0 {
		r.Body = http.NoBody
	} else {
		r.Body = &sc.body
		if ph.ContentLength < 0 {
			r.TransferEncoding = h1.ChunkedTE
		}
	}
	sc.rw.reset(r)
	return true
}

// handoff gives the connection, with what was read of it, to net/http. When the head's
// timeout is running, net/http's header timeout for it ends at the same time.
func (sc *sconn) handoff() bool {
	pc := &clientConn{Conn: sc.conn, writeTimeout: sc.fs.writeTimeout}
	if sc.deadline == 2 {
		pc.headDeadline = sc.headDeadline
	}
	if sc.deadline != 0 {
		sc.conn.SetReadDeadline(time.Time{})
		sc.deadline = 0
	}
	buf, _ := sc.br.Peek(sc.br.Buffered())
	pc.buf = bytes.Clone(buf)
	if sc.cr.hasByte { // cannot happen: readHead has read it into br
		pc.buf = append([]byte{sc.cr.b[0]}, pc.buf...)
	}
	sc.fs.forget(sc)
	sc.fs.handedOff.Add(1)
	sc.fs.hl.deliver(pc)
	return true
}

// serveOne serves the request in sc.req and reports whether the connection can take
// another.
func (sc *sconn) serveOne() (reuse bool) {
	r := &sc.req
	if r.ContentLength == 0 {
		sc.arm()
	}
	if !sc.call(r) {
		return false
	}
	sc.rw.finish()
	sc.disarm()
	if !sc.rw.reuse() || sc.ctx.Err() != nil || (r.ContentLength != 0 && !sc.body.Done()) {
		if sc.rw.bodyLimitHit {
			sc.closeWriteAndWait()
		}
		return false
	}
	return true
}

// call runs the proxy on the request; false means it panicked (http.ErrAbortHandler for a
// broken answer) and the connection must be closed, as net/http does.
func (sc *sconn) call(r *http.Request) (ok bool) {
	defer func() {
		if err := recover(); err != nil {
			if err != http.ErrAbortHandler {
				const size = 64 << 10
				buf := make([]byte, size)
				buf = buf[:runtime.Stack(buf, false)]
				sc.fs.logf("http: panic serving %v: %v\n%s", sc.remoteAddr, err, buf)
			}
			sc.disarm()
			sc.bw.Flush() // what net/http's finalFlush sends
			ok = false
		}
	}()
	sc.h.ServeHTTP(&sc.rw, r)
	return true
}

// closeWriteAndWait is net/http's, after a request body over its limit: half-close, give
// the client time to read the answer, then close.
func (sc *sconn) closeWriteAndWait() {
	sc.bw.Flush()
	if cw, ok := sc.conn.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
	time.Sleep(500 * time.Millisecond)
}

// arm starts watching the client for a hang-up if the request is still being answered after
// watchDelay. Called once the request body has been read whole. The timer is set only when
// it is not set already: disarm leaves it, and when it fires for an earlier request, watch
// sets it again for the rest of the current one's delay (a timer reset and stop per request
// cost more than a clock reading).
func (sc *sconn) arm() {
	if sc.br.Buffered() > 0 {
		return // the client already sent more: a pipelined request
	}
	now := monoNow()
	sc.watchMu.Lock()
	sc.watchState, sc.watchArmed = 1, now
	if !sc.watchPending {
		sc.watchPending = true
		sc.watchTimer.Reset(watchDelay)
	}
	sc.watchMu.Unlock()
}

// watch runs on the timer's goroutine: it reads the connection until the request ends
// (disarm makes the read fail) or the client hangs up (then the request's context is
// cancelled, which aborts the instance's connection as net/http's server does).
func (sc *sconn) watch() {
	sc.watchMu.Lock()
	sc.watchPending = false
	if sc.watchState != 1 {
		sc.watchMu.Unlock()
		return
	}
	if wait := watchDelay - (monoNow() - sc.watchArmed); wait > 0 {
		sc.watchPending = true // armed again since the timer was set
		sc.watchTimer.Reset(wait)
		sc.watchMu.Unlock()
		return
	}
	if sc.deadline != 0 { // the idle or head deadline that take left
		sc.conn.SetReadDeadline(time.Time{})
		sc.deadline = 0
	}
	sc.watchState = 2
	sc.watchMu.Unlock()
	n, err := sc.conn.Read(sc.cr.b[:])
	if n == 1 {
		sc.cr.hasByte = true // read by the serving goroutine after disarm
	}
	if err != nil && !isTimeout(err) {
		sc.hangup()
	}
	sc.watchDone <- struct{}{}
}

// disarm stops the watcher and waits for its read to end.
func (sc *sconn) disarm() {
	sc.watchMu.Lock()
	st := sc.watchState
	if st == 1 {
		sc.watchState = 0
	}
	sc.watchMu.Unlock()
	switch st {
	case 1:
		// The timer stays set: when it fires, watch finds the watcher off, or armed again.
	case 2:
		sc.conn.SetReadDeadline(aLongAgo)
		<-sc.watchDone
		sc.conn.SetReadDeadline(time.Time{})
		sc.deadline = 0
		sc.watchMu.Lock()
		sc.watchState = 0
		sc.watchMu.Unlock()
	}
}

// String is for panics and logs that print a request.
func (sc *sconn) String() string { return fmt.Sprintf("fast connection from %s", sc.remoteAddr) }
