//go:build unix

package fast

import (
	"net"
	"syscall"
)

// canPeek: connAlive works here.
const canPeek = true

// connAlive reports whether an idle connection can still carry a request: the instance has
// not closed it and sent nothing unasked. unasked is true when bytes are waiting on it that
// no request of ours asked for. It peeks without blocking, one system call.
func connAlive(c net.Conn) (alive, unasked bool) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return true, false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false, false
	}
	alive = true
	var b [1]byte
	err = rc.Read(func(fd uintptr) bool {
		n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		// Nothing to read (EAGAIN) is the healthy case; EOF, an error or unasked bytes are not.
		alive = err == syscall.EAGAIN || err == syscall.EWOULDBLOCK
		unasked = err == nil && n > 0
		return true
	})
	return alive && err == nil, unasked
}
