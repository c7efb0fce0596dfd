// Package offloop takes slow reads off their owner's control loop: an analysis measurement
// that runs a test suite, a read of a router's counters from Prometheus, a round of scrapes
// of business metrics. The loop starts a read, goes on deciding, and takes the result on a
// later pass, when the read's end wakes it.
package offloop

import (
	"context"
	"sync"
)

// Reader runs reads keyed by K, each on its own goroutine, at most one in flight per key.
// For each key it keeps the owner's state S (what the owner needs between passes: when the
// next read is due, what the key stands for) and the last finished read's result V until the
// owner takes it.
//
// Its zero value is ready to use. It is safe for concurrent use; calls about one key should
// come from one owner at a time (one rollout's passes), as State and Put do not compose
// atomically.
type Reader[K comparable, S, V any] struct {
	mu     sync.Mutex
	slots  map[K]*slot[S, V]
	closed bool
	wg     sync.WaitGroup
}

type slot[S, V any] struct {
	state S
	// read is the read in flight; nil when none is.
	read *flight
	// result is the last finished read's, when fresh says the owner has not taken it.
	result V
	fresh  bool
}

type flight struct{ cancel context.CancelCauseFunc }

// State returns k's state and whether the reader holds k (since a Put or a Start, until a Drop).
func (r *Reader[K, S, V]) State(k K) (S, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if s := r.slots[k]; s != nil {
		return s.state, true
	}
	var zero S
	return zero, false
}

// Put sets k's state, holding k if the reader did not.
func (r *Reader[K, S, V]) Put(k K, state S) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.slotLocked(k).state = state
}

// Start runs read on its own goroutine, with a context derived from ctx that Cancel, Drop
// and Close cancel, and reports whether it did. It does not when a read of k is in flight,
// when k's last result is not taken yet, when ctx is done, or after Close.
//
// When read returns, its result is kept for Take and wake (when not nil) is called with k from
// the read's goroutine, unless the read's context was cancelled meanwhile or k was dropped:
// then the result is thrown away and nobody is woken.
func (r *Reader[K, S, V]) Start(ctx context.Context, k K, read func(context.Context) V, wake func(K)) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed || ctx.Err() != nil {
		return false
	}
	s := r.slotLocked(k)
	if s.read != nil || s.fresh {
		return false
	}
	rctx, cancel := context.WithCancelCause(ctx)
	f := &flight{cancel: cancel}
	s.read = f
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		v := read(rctx)
		r.mu.Lock()
		// Cancel, Drop and Close unset s.read; ctx's own end shows in rctx.
		kept := s.read == f && rctx.Err() == nil
		if s.read == f {
			s.read = nil
		}
		if kept {
			s.result, s.fresh = v, true
		}
		r.mu.Unlock()
		cancel(nil)
		if kept && wake != nil {
			wake(k)
		}
	}()
	return true
}

// Take returns k's last finished result, once: false when there is none not yet taken.
func (r *Reader[K, S, V]) Take(k K) (V, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var zero V
	s := r.slots[k]
	if s == nil || !s.fresh {
		return zero, false
	}
	v := s.result
	s.result, s.fresh = zero, false
	return v, true
}

// Busy reports whether a read of k is in flight.
func (r *Reader[K, S, V]) Busy(k K) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.slots[k]
	return s != nil && s.read != nil
}

// Cancel cancels k's read in flight, if any, with cause (nil means context.Canceled); its
// result is thrown away. k's state and a result not yet taken stay.
func (r *Reader[K, S, V]) Cancel(k K, cause error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if s := r.slots[k]; s != nil {
		s.cancelLocked(cause)
	}
}

// Drop cancels k's read in flight, as Cancel does, and forgets k: its state and any result.
func (r *Reader[K, S, V]) Drop(k K, cause error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if s := r.slots[k]; s != nil {
		s.cancelLocked(cause)
		delete(r.slots, k)
	}
}

// Keys returns the keys the reader holds, in no particular order.
func (r *Reader[K, S, V]) Keys() []K {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]K, 0, len(r.slots))
	for k := range r.slots {
		out = append(out, k)
	}
	return out
}

// Close cancels every read in flight with cause, starts none after, and waits for the
// reads' goroutines to end. The keys' states and results stay.
func (r *Reader[K, S, V]) Close(cause error) {
	r.mu.Lock()
	r.closed = true
	for _, s := range r.slots {
		s.cancelLocked(cause)
	}
	r.mu.Unlock()
	r.wg.Wait()
}

func (r *Reader[K, S, V]) slotLocked(k K) *slot[S, V] {
	s := r.slots[k]
	if s == nil {
		if r.slots == nil {
			r.slots = map[K]*slot[S, V]{}
		}
		s = &slot[S, V]{}
		r.slots[k] = s
	}
	return s
}

func (s *slot[S, V]) cancelLocked(cause error) {
	if s.read != nil {
		s.read.cancel(cause)
		s.read = nil
	}
}
