package proxy

import (
	"context"
	"io"
	"net/http"

	"ramp.dev/ramp/internal/proxy/fast"
)

// forwarder is the seam between the shared request path (serveState: routing, the body
// buffered for a retry, measuring) and the two ways of forwarding a request. forward sends
// r to st's instance, streams the answer to w and records in st what happened (status,
// timings, failure), following the retry policy (retry.go). Like ReverseProxy, it panics
// with http.ErrAbortHandler when an answer breaks off after its head went out.
type forwarder interface {
	forward(w http.ResponseWriter, r *http.Request, st *reqState)
}

var (
	_ forwarder        = fastForwarder{}
	_ forwarder        = netForwarder{}
	_ fast.Exchange    = (*reqState)(nil)
	_ fast.ConnHandler = (*connServer)(nil)
)

// forwarderFor is the fast forwarder when it is on and takes r (fast.Pool.Takes), else
// ReverseProxy.
func (u *upstreams) forwarderFor(p *Proxy, w http.ResponseWriter, r *http.Request) forwarder {
	if u.fast != nil && u.fast.Takes(w, r) {
		return fastForwarder{u.fast}
	}
	return p.netFwd
}

// fastForwarder forwards on the fast path (fast.Pool): plain HTTP/1.1 on the proxy's own
// pool of instance connections, on the request's goroutine.
type fastForwarder struct{ pool *fast.Pool }

func (f fastForwarder) forward(w http.ResponseWriter, r *http.Request, st *reqState) {
	f.pool.Forward(w, r, st)
}

// netForwarder forwards through httputil.ReverseProxy and net/http's Transport: what the
// fast path does not take (upgrades, h2c instances, Expect, trailers, CONNECT).
type netForwarder struct{ p *Proxy }

func (f netForwarder) forward(w http.ResponseWriter, r *http.Request, st *reqState) {
	f.p.serveReverseProxy(w, r, st)
}

// The fast forwarder's view of a request (fast.Exchange).

// Addr is the address of the request's instance.
func (st *reqState) Addr() string { return st.t.addr }

// Retry follows the retry policy (retry.go): moveOnRefusal after a refused connection,
// renewAfterStale after a reused connection failed.
func (st *reqState) Retry(ctx context.Context, r *http.Request, err error, refused bool) (io.ReadCloser, error) {
	if refused {
		if !st.p.moveOnRefusal(ctx, st, err) {
			return nil, err
		}
	} else if !st.p.renewAfterStale(ctx, r, st, err) {
		return nil, err
	}
	return replayBody(r)
}

func (st *reqState) Failed(w http.ResponseWriter, r *http.Request, err error) {
	st.p.upstreamFailed(w, r, st, err)
}

func (st *reqState) Unasked(n int) { st.p.discarded(st, reasonUnasked, n) }

func (st *reqState) Answered(status int, h http.Header) {
	st.gotHeaders = true
	st.ttfb = st.p.now().Sub(st.start)
	st.status = status
	h[RevisionHeader] = st.pool.revValue
}

func (st *reqState) BodyBegun() { st.bodyBegun(st.p.now()) }

func (st *reqState) Broken(clientGone bool, err error) {
	if clientGone {
		st.clientGone = true
		return
	}
	st.failed = true
	st.p.log.Warn("upstream response broken", keyRevision, st.pool.rev, keyBackend, st.t.b.id,
		"addr", st.t.addr, "err", err)
}
