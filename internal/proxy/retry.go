package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"

	"ramp.dev/ramp/internal/proxy/fast"
)

// The retry policy, one for both upstream paths (fast.Pool.Forward, through
// reqState.Retry, and retryTransport):
//
//   - A request whose body can be sent again (none, or buffered by bufferBody) moves once to
//     another ready instance when its instance refuses the connection (moveOnRefusal).
//   - A request sent on a reused idle connection that fails before any byte of the answer
//     (the instance closed it meanwhile) is sent once more on a new connection when it may
//     be sent twice (renewAfterStale). net/http's Transport does this itself on the
//     ReverseProxy path, by the same rules.
//   - Nothing else is retried: not a timeout, not a request whose client went away, not an
//     answer that broke off.

// maxReplayBody is the largest request body buffered so that the request can be retried.
const maxReplayBody = 1 << 20

// bufferBody reads a request body of known length up to maxReplayBody into memory so the
// request can be sent again. It reports whether the request can be replayed.
func bufferBody(r *http.Request) (bool, error) {
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		return true, nil
	}
	if r.ContentLength < 0 || r.ContentLength > maxReplayBody {
		return false, nil // streamed or large: forward as it comes, no retry
	}
	buf, err := io.ReadAll(io.LimitReader(r.Body, r.ContentLength))
	if err != nil {
		return false, fmt.Errorf("read request body: %w", err)
	}
	r.Body = io.NopCloser(bytes.NewReader(buf))
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(buf)), nil }
	return true, nil
}

// replayBody returns r's body to send it again: a new reader of the buffered bytes, or
// r.Body itself when there is none (or it is empty).
func replayBody(r *http.Request) (io.ReadCloser, error) {
	if r.GetBody == nil {
		return r.Body, nil // none, or empty
	}
	b, err := r.GetBody()
	if err != nil {
		return nil, fmt.Errorf("replay request body: %w", err)
	}
	return b, nil
}

// moveOnRefusal applies the policy after err from connecting to st's instance: when the
// instance refused the connection, the request has not moved yet, can be sent again and
// its client is still there, it assigns the request to another ready instance (retryTarget)
// and reports true; the caller then sends it again with replayBody's body.
func (p *Proxy) moveOnRefusal(ctx context.Context, st *reqState, err error) bool {
	if st.moved || !st.replayable || !isDialError(err) || ctx.Err() != nil {
		return false
	}
	pl, t, ok := p.retryTarget(st)
	if !ok {
		return false
	}
	p.log.Info("instance refused connection, retrying on another",
		keyRevision, st.pool.rev, keyBackend, st.t.b.id, "retry_backend", t.b.id, "err", err)
	st.assign(pl, t)
	st.moved = true
	return true
}

// renewAfterStale applies the policy after err from a request sent on a reused connection:
// when it failed before any byte of the answer (fast.BeforeResponseError), not by a timeout, the
// request has not been renewed yet, may be sent twice (retryable) and its client is still
// there, it reports true; the caller then sends it again on a new connection.
func (p *Proxy) renewAfterStale(ctx context.Context, r *http.Request, st *reqState, err error) bool {
	var before *fast.BeforeResponseError
	if st.renewed || !errors.As(err, &before) || isTimeout(err) || ctx.Err() != nil || !retryable(r, st) {
		return false
	}
	p.log.Debug("reused connection failed before answering, retrying on a new one",
		keyRevision, st.pool.rev, keyBackend, st.t.b.id, "err", err)
	st.renewed = true
	return true
}

// retryable reports whether r may be sent again after a reused connection failed: it had
// no body or an idempotent method, and its body (if any) is buffered.
func retryable(r *http.Request, st *reqState) bool {
	if !st.replayable {
		return false
	}
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		return true
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		return true
	}
	return false
}

// retryTarget picks another instance after st's instance refused the connection: in the same
// pool if it can, else in another pool (of the preview revision for preview requests).
func (p *Proxy) retryTarget(st *reqState) (*pool, target, bool) {
	if t, ok := st.pool.pick(st.tried); ok {
		return st.pool, t, true
	}
	if st.preview {
		return firstReady(st.tbl.byRev[st.tbl.preview], st.tried)
	}
	return pickWeighted(st.tbl.pools, st.tried)
}

func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}
