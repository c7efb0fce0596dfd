//go:build unix

package proxy

import (
	"io"
	"net"
	"os"
	"syscall"
)

func newReuseGuardConn(c net.Conn) *reuseGuardConn {
	g := &reuseGuardConn{Conn: c}
	if sc, ok := c.(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			g.raw = raw
		}
	}
	return g
}

// readSocket reads c's socket. Bytes are taken from it only under c.mu: while fresh (a
// request was handed the idle connection and has not written yet) nothing is taken, and
// bytes that come fail the read with errUnaskedBytes; so Write's peek, under c.mu too, sees
// every byte that came before it that no Read flagged.
func (c *reuseGuardConn) readSocket(p []byte) (int, error) {
	if c.raw == nil || len(p) == 0 {
		return c.Conn.Read(p)
	}
	var n int
	var rerr error
	err := c.raw.Read(func(fd uintptr) bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.closed {
			// Closed while this read waited (Write found unasked bytes): the socket stays
			// open until the read returns; take nothing from it.
			rerr = net.ErrClosed
			c.waiting = false
			return true
		}
		if c.fresh {
			switch k := peekFD(fd); {
			case k > 0:
				c.fresh, c.closed, c.waiting = false, true, false
				rerr = errUnaskedBytes
				return true
			case k < 0:
				return false // nothing yet: wait
			}
			// The instance closed the connection, or it broke: the read says which.
		}
		for {
			n, rerr = syscall.Read(int(fd), p)
			if rerr != syscall.EINTR {
				break
			}
		}
		if rerr == syscall.EAGAIN || rerr == syscall.EWOULDBLOCK {
			return false
		}
		c.waiting = false
		return true
	})
	switch {
	case err != nil:
		return 0, err
	case rerr == errUnaskedBytes || rerr == net.ErrClosed:
		return 0, rerr
	case rerr != nil:
		return 0, os.NewSyscallError("read", rerr)
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

// peekFD reports what waits on socket fd without taking it: 1 for bytes, 0 for the end of
// the stream or an error, -1 for nothing yet.
func peekFD(fd uintptr) int {
	var b [1]byte
	for {
		n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN || err == syscall.EWOULDBLOCK:
			return -1
		case err == nil && n > 0:
			return 1
		}
		return 0
	}
}

// bytesWaiting reports whether bytes are waiting to be read on c. It peeks without blocking
// and without taking c's read lock (a Read may be waiting), one system call.
func (c *reuseGuardConn) bytesWaiting() bool {
	if c.raw == nil {
		return false
	}
	waiting := false
	c.raw.Control(func(fd uintptr) { waiting = peekFD(fd) > 0 })
	return waiting
}
