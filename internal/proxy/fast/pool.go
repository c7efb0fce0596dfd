package fast

import (
	"bufio"
	"context"
	"net"
	"sync"
	"time"
)

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

// PoolConfig configures a Pool: the upstream settings of one proxy.
type PoolConfig struct {
	// Dialer connects to the instances.
	Dialer *net.Dialer
	// FirstByteTimeout bounds the wait for an answer's head, from the moment the request is
	// sent (ErrFirstByteTimeout). Zero means no limit.
	FirstByteTimeout time.Duration
	// IdleTimeout bounds the silence between two reads of an answer's body
	// (ErrIdleTimeout). Zero means no limit.
	IdleTimeout time.Duration
	// MaxResponseHead bounds an answer's head (HeadTooLargeError). It must be positive.
	MaxResponseHead int
	// TrustForwarded keeps the client's X-Forwarded-For/-Host/-Proto and appends to them.
	// False means they are replaced with what the proxy sees.
	TrustForwarded bool
}

// Pool is the fast forwarder of one set of upstream settings: it holds the idle
// connections to the instances, by address, and forwards requests on them (Forward).
type Pool struct {
	cfg PoolConfig

	mu     sync.Mutex
	hosts  map[string][]*fastConn // idle connections, oldest first
	closed bool
}

// NewPool returns a pool with no connection.
func NewPool(cfg PoolConfig) *Pool {
	return &Pool{cfg: cfg, hosts: map[string][]*fastConn{}}
}

// get returns an idle connection to addr (reused true), or dials a new one. fresh skips the
// idle ones. An idle connection is taken only when nothing is waiting on it: neither in its
// buffer nor on the socket (connAlive). One that holds bytes no request asked for is closed
// and counted in unasked; one the instance closed while idle is closed quietly.
func (fp *Pool) get(ctx context.Context, addr string, fresh bool) (c *fastConn, reused bool, unasked int, err error) {
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
	conn, err := fp.cfg.Dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, false, unasked, err
	}
	return newFastConn(conn), false, unasked, nil
}

// put returns a connection in good order to the idle list of addr.
func (fp *Pool) put(addr string, c *fastConn) {
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
func (fp *Pool) forget(addr string) {
	fp.mu.Lock()
	idle := fp.hosts[addr]
	delete(fp.hosts, addr)
	fp.mu.Unlock()
	for _, c := range idle {
		c.close()
	}
}

// Retain closes the idle connections to every address not in keep.
func (fp *Pool) Retain(keep map[string]bool) {
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

// CloseIdle closes the idle connections; with final, connections handed back later are
// closed too.
func (fp *Pool) CloseIdle(final bool) {
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

// Idle returns the number of idle connections to addr (for tests and diagnostics).
func (fp *Pool) Idle(addr string) int {
	fp.mu.Lock()
	defer fp.mu.Unlock()
	return len(fp.hosts[addr])
}

// OldestIdleAlive reports whether the oldest idle connection to addr is there and still
// alive: its instance has not closed it and sent nothing unasked (for tests).
func (fp *Pool) OldestIdleAlive(addr string) bool {
	fp.mu.Lock()
	defer fp.mu.Unlock()
	idle := fp.hosts[addr]
	if len(idle) == 0 {
		return false
	}
	alive, _ := connAlive(idle[0].conn)
	return alive
}
