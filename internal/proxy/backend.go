package proxy

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
)

// backendState is what the proxy knows of one instance across tables: its in-flight count
// and whether it is drained.
type backendState struct {
	id   string
	addr string // guarded by Proxy.mu

	inflight atomic.Int64
	draining atomic.Bool
	// gone says the backend left the table: a request that routes by an older table
	// (loaded before the change) must not start on it, for nothing drains it before its
	// instance stops (SetTable stores it before reading inflight; acquire reads it after
	// counting the request, as with draining).
	gone    atomic.Bool
	waiters atomic.Int32  // WaitIdle callers; done only takes mu when there are some
	warned  atomic.Uint32 // bits of the framing faults already logged (Proxy.discarded)

	mu   sync.Mutex
	idle chan struct{} // closed when inflight reaches 0 while someone waits
}

// acquire counts a new request in flight unless the backend is drained. Incrementing before
// reading draining pairs with Drain storing draining before WaitIdle reads inflight: either
// the request sees the drain, or WaitIdle sees the request.
func (b *backendState) acquire() bool {
	b.inflight.Add(1)
	if b.draining.Load() || b.gone.Load() {
		b.done()
		return false
	}
	return true
}

// done ends one in-flight request and wakes WaitIdle callers when none is left.
func (b *backendState) done() {
	if b.inflight.Add(-1) != 0 || b.waiters.Load() == 0 {
		return
	}
	b.mu.Lock()
	if b.idle != nil {
		close(b.idle)
		b.idle = nil
	}
	b.mu.Unlock()
}

func (b *backendState) waitIdle(ctx context.Context) error {
	b.waiters.Add(1)
	defer b.waiters.Add(-1)
	for {
		b.mu.Lock()
		if b.inflight.Load() == 0 {
			b.mu.Unlock()
			return nil
		}
		if b.idle == nil {
			b.idle = make(chan struct{})
		}
		ch := b.idle
		b.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("wait for %s to go idle: %w", b.id, ctx.Err())
		}
	}
}

// Drain stops sending new requests to the backend at once; requests in flight finish. The
// mark holds until a SetTable no longer lists the backend (or lists it with another
// address). An ID the proxy does not know is ignored.
func (p *Proxy) Drain(backendID string) {
	p.mu.Lock()
	b := p.backends[backendID]
	p.mu.Unlock()
	if b != nil {
		b.draining.Store(true)
	}
}

// WaitIdle returns nil once the backend has no request in flight (at once for an unknown
// ID), or an error wrapping ctx's error when ctx ends first. Combine it with Drain, or new
// requests may keep it busy.
func (p *Proxy) WaitIdle(ctx context.Context, backendID string) error {
	p.mu.Lock()
	b := p.backends[backendID]
	if b != nil {
		b.waiters.Add(1) // keeps SetTable from forgetting it while we wait
	}
	p.mu.Unlock()
	if b == nil {
		return nil
	}
	defer b.waiters.Add(-1)
	return b.waitIdle(ctx)
}

// InFlight returns the number of requests in flight to the backend (0 for an unknown ID).
func (p *Proxy) InFlight(backendID string) int64 {
	p.mu.Lock()
	b := p.backends[backendID]
	p.mu.Unlock()
	if b == nil {
		return 0
	}
	return b.inflight.Load()
}
