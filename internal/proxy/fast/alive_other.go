//go:build !unix

package fast

import "net"

// canPeek: connAlive cannot peek on this system. An idle connection could then hold bytes
// no request asked for without the proxy seeing them, so the fast path never reuses one
// here: every request goes on a new connection (see Pool.get).
const canPeek = false

func connAlive(net.Conn) (alive, unasked bool) { return true, false }
