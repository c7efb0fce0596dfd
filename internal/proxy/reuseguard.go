package proxy

import (
	"context"
	"errors"
	"net"
	"net/http/httptrace"
	"sync"
	"sync/atomic"
	"syscall"
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
//
// Bytes an instance sends while the connection is idle (after the read loop found its buffer
// empty) are unasked too, and the same window lets them answer the next request. From the
// moment a request is handed a clean reused connection until its first byte is written, bytes
// waiting on the socket (peeked when the request is handed the connection and again before it
// is written) or returned by a Read close the connection, and the request goes on another.
// Bytes that arrive after the request is written cannot be told from its answer.

// reuseGuardConn is an upstream connection of net/http's Transport that tells when the
// Transport is waiting for bytes on it and when it closed it.
type reuseGuardConn struct {
	net.Conn
	// raw reads the socket so that taking bytes from it and fresh are decided together
	// (reuseguard_unix.go); nil where that cannot be done: reads then go to Conn.Read, and
	// bytes an instance sends while the connection is idle are caught only by peeking.
	raw syscall.RawConn

	mu sync.Mutex
	// waiting: a Read is in progress and has taken nothing from the socket yet.
	waiting bool
	readErr bool // the last Read failed (the instance closed the connection, or it broke)
	closed  bool // Close was called, or the guard closed it
	// fresh: a request was handed this idle connection and has not written yet; bytes from
	// the instance now are unasked.
	fresh bool
	wake  chan struct{} // made by a waiting settle; closed when waiting or closed is set
}

// guardDial wraps dial so that the connections it makes are reuseGuardConns.
func guardDial(dial func(ctx context.Context, network, addr string) (net.Conn, error)) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return newReuseGuardConn(c), nil
	}
}

func (c *reuseGuardConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	c.waiting = true
	c.wakeLocked()
	c.mu.Unlock()
	n, err := c.readSocket(p)
	c.mu.Lock()
	c.waiting, c.readErr = false, err != nil
	unasked := c.fresh && n > 0 // only without raw: readSocket decides it with raw
	if unasked {
		c.fresh, c.closed = false, true
	}
	c.mu.Unlock()
	if unasked || err == errUnaskedBytes {
		c.Conn.Close()
		return 0, errUnaskedBytes
	}
	return n, err
}

func (c *reuseGuardConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	if c.fresh {
		c.fresh = false
		if c.bytesWaiting() {
			c.closed = true
			c.mu.Unlock()
			c.Conn.Close()
			return 0, errUnaskedBytes
		}
	}
	c.mu.Unlock()
	return c.Conn.Write(p)
}

// errUnaskedBytes fails a reused connection on which the instance sent bytes before the
// request was written: net/http's Transport then sends the request on another connection.
var errUnaskedBytes = errors.New("proxy: the instance sent bytes on an idle connection that no request asked for")

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

// settle waits until the Transport waits for bytes on the idle connection c (its buffer is
// then empty: the read loop reads the socket only for a new answer's first byte) or has
// closed it (it found unasked bytes there, or the instance closed it). It reports whether c
// was closed for unasked bytes: closed after a Read that did not fail.
// It is called while c is out of the idle pool and before the Transport counts a request
// outstanding on it: the read loop's next step is one of the two. done ends the wait early
// (the request was cancelled; its answer then goes to nobody). When c is clean but bytes
// are already waiting on the socket, settle closes c and reports them unasked; else bytes
// that come before the request is written will close it (Read, Write).
func (c *reuseGuardConn) settle(done <-chan struct{}) (unasked bool) {
	c.mu.Lock()
	for !c.waiting && !c.closed {
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
	if c.closed {
		unasked = !c.readErr
		c.mu.Unlock()
		return unasked
	}
	if c.bytesWaiting() {
		c.closed = true
		c.mu.Unlock()
		c.Conn.Close() // the read loop's Read fails: it closes the connection
		return true
	}
	c.fresh = true
	c.mu.Unlock()
	return false
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
