package proxy

import (
	"context"
	"net"
	"net/http/httptrace"
	"sync"
	"sync/atomic"
)

// net/http's Transport (the ReverseProxy path and mirrors) can answer a request with bytes
// an instance sent after the previous answer on the same connection. When an answer ends,
// its read loop puts the connection back in the idle pool first, and only then looks at its
// read buffer: bytes there while no request is outstanding are unasked, and it closes the
// connection. A request that takes the connection from the pool between these two steps
// makes one outstanding, and the read loop then parses the unasked bytes as its answer: an
// instance that sent two answers to request 1 has the second one given to request 2, whose
// own answer is then left on the connection for request 3, and so on (Go 1.26,
// transport.go: readLoop calls tryPutIdleConn before it loops back to Peek and checks
// numExpectedResponses).
//
// ramp closes that window: upstream connections of the HTTP/1 transport are reuseGuardConns,
// and a request that is handed a reused one waits (in httptrace's GotConn, before the
// Transport counts it outstanding) until the read loop is either reading the socket, which
// it does only with an empty buffer, or has closed the connection. In the first case the
// connection is clean; in the second the Transport retries the request on another connection
// as it does for any reused connection that closed before the request was written.

// reuseGuardConn is an upstream connection of net/http's Transport that tells when the
// Transport is reading it and when it closed it.
type reuseGuardConn struct {
	net.Conn
	mu      sync.Mutex
	reading bool          // a Read is in progress
	readErr bool          // the last Read failed (the instance closed the connection, or it broke)
	closed  bool          // Close was called
	wake    chan struct{} // made by a waiting settle; closed when reading or closed is set
}

// guardDial wraps dial so that the connections it makes are reuseGuardConns.
func guardDial(dial func(ctx context.Context, network, addr string) (net.Conn, error)) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &reuseGuardConn{Conn: c}, nil
	}
}

func (c *reuseGuardConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	c.reading = true
	c.wakeLocked()
	c.mu.Unlock()
	n, err := c.Conn.Read(p)
	c.mu.Lock()
	c.reading, c.readErr = false, err != nil
	c.mu.Unlock()
	return n, err
}

func (c *reuseGuardConn) Close() error {
	c.mu.Lock()
	c.closed = true
	c.wakeLocked()
	c.mu.Unlock()
	return c.Conn.Close()
}

func (c *reuseGuardConn) wakeLocked() {
	if c.wake != nil {
		close(c.wake)
		c.wake = nil
	}
}

// testHookReuseWait, when set, is called when settle has to wait for the read loop.
var testHookReuseWait atomic.Pointer[func()]

// settle waits until the Transport reads the idle connection c (its buffer is then empty:
// the read loop reads the socket only for a new answer's first byte) or has closed it (it
// found unasked bytes there, or the instance closed it). It reports whether c was closed for
// unasked bytes: closed after a Read that did not fail.
// It is called while c is out of the idle pool and before the Transport counts a request
// outstanding on it: the read loop's next step is one of the two. done ends the wait early
// (the request was cancelled; its answer then goes to nobody).
func (c *reuseGuardConn) settle(done <-chan struct{}) (unasked bool) {
	c.mu.Lock()
	for !c.reading && !c.closed {
		if c.wake == nil {
			c.wake = make(chan struct{})
		}
		wake := c.wake
		c.mu.Unlock()
		if hook := testHookReuseWait.Load(); hook != nil {
			(*hook)()
		}
		select {
		case <-wake:
		case <-done:
			return false
		}
		c.mu.Lock()
	}
	unasked = c.closed && !c.readErr
	c.mu.Unlock()
	return unasked
}

// guardReuse returns ctx with a client trace that makes a request handed a reused
// reuseGuardConn wait for it to settle; unasked is called when the connection turned out to
// hold unasked bytes (the Transport closed it and sends the request on another).
func guardReuse(ctx context.Context, unasked func()) context.Context {
	done := ctx.Done()
	return httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		GotConn: func(info httptrace.GotConnInfo) {
			c, ok := info.Conn.(*reuseGuardConn)
			if !ok || !info.Reused {
				return
			}
			if c.settle(done) && unasked != nil {
				unasked()
			}
		},
	})
}
