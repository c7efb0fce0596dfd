//go:build !unix

package proxy

import "net"

func newReuseGuardConn(c net.Conn) *reuseGuardConn { return &reuseGuardConn{Conn: c} }

// readSocket reads c. Without a way to take bytes from the socket under c.mu, a Read counts
// as waiting until it returns, and bytes an instance sends while the connection is idle are
// caught only when the Read returns them before the request is written.
func (c *reuseGuardConn) readSocket(p []byte) (int, error) { return c.Conn.Read(p) }

// bytesWaiting cannot peek on this system.
func (c *reuseGuardConn) bytesWaiting() bool { return false }
