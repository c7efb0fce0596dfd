package fast

import (
	"net"
	"sync/atomic"
	"time"
)

// monoBase is the origin of monoNow.
var monoBase = time.Now()

// monoNow reads the monotonic clock alone (time.Since of a time with a monotonic reading
// does), for intervals measured in-process: cheaper than time.Now, which reads the wall
// clock too.
func monoNow() time.Duration { return time.Since(monoBase) }

// ClientListener wraps ln's connections so that each write to a client is bounded by
// writeTimeout (net/http has no such setting): a write that makes no progress for that long
// fails. A writeTimeout of 0 returns ln.
func ClientListener(ln net.Listener, writeTimeout time.Duration) net.Listener {
	if writeTimeout <= 0 {
		return ln
	}
	return &clientListener{Listener: ln, writeTimeout: writeTimeout}
}

type clientListener struct {
	net.Listener
	writeTimeout time.Duration
}

func (l *clientListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &clientConn{Conn: c, writeTimeout: l.writeTimeout}, nil
}

// clientConn is a client connection served by net/http's server.
type clientConn struct {
	net.Conn
	// buf holds bytes the fast server already read from Conn; reads return them first.
	buf []byte
	// headDeadline, when set, is when the header timeout of the request head the fast
	// server began reading runs out: net/http's first read deadline (its header timeout for
	// that same head) is clamped to it, so that a hand-off does not start the timeout again.
	headDeadline time.Time
	clamped      atomic.Bool
	// writeTimeout bounds each write's progress (writeProgress).
	writeTimeout time.Duration
	wp           writeProgress
}

// writeProgress moves a connection's write deadline on to d from now before a write, but
// only when an eighth of d has passed since it last did: a write that makes no progress is
// cut after 7/8 to 8/8 of d, for a clock reading per write. Both servers use it.
type writeProgress struct {
	set atomic.Int64 // monoNow+1 when the deadline was last set; 0: never
}

func (w *writeProgress) before(c net.Conn, d time.Duration) {
	now := int64(monoNow()) + 1
	if last := w.set.Load(); last == 0 || now-last >= int64(d>>3) {
		w.set.Store(now)
		c.SetWriteDeadline(time.Now().Add(d))
	}
}

func (c *clientConn) Read(p []byte) (int, error) {
	if len(c.buf) > 0 {
		n := copy(p, c.buf)
		c.buf = c.buf[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

func (c *clientConn) SetReadDeadline(t time.Time) error {
	if !c.headDeadline.IsZero() && !c.clamped.Load() && c.clamped.CompareAndSwap(false, true) {
		if t.IsZero() || t.After(c.headDeadline) {
			t = c.headDeadline
		}
	}
	return c.Conn.SetReadDeadline(t)
}

func (c *clientConn) Write(p []byte) (int, error) {
	if d := c.writeTimeout; d > 0 {
		c.wp.before(c.Conn, d)
	}
	return c.Conn.Write(p)
}

// CloseWrite lets net/http half-close after an error answer, as on a TCP connection.
func (c *clientConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
