//go:build !unix

package proxy

import "net"

// canPeek: connAlive cannot peek on this system, so a request that cannot be retried goes
// on a new connection (see serveFast).
const canPeek = false

func connAlive(net.Conn) bool { return true }
