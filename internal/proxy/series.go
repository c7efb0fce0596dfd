package proxy

import (
	"slices"
	"time"
)

// Span is one revision's requests over a run of whole seconds, as the dashboard's charts
// read them.
type Span struct {
	// From is the first second (Unix) the span covers; it covers Seconds seconds.
	From, Seconds int64
	// Requests, Errors5xx and Errors count as RequestStats does.
	Requests, Errors5xx, Errors int64
	// Latency and FirstToken hold the span's durations (see RequestStats).
	Latency, FirstToken Histogram
}

// Revisions returns the revisions the proxy has measurements of (within the last 10
// minutes, or routed now), in increasing order.
func (p *Proxy) Revisions() []int64 {
	p.mu.Lock()
	out := make([]int64, 0, len(p.revs))
	for rev := range p.revs {
		out = append(out, rev)
	}
	p.mu.Unlock()
	slices.Sort(out)
	return out
}

// Spans returns the revision's requests cut into spans of step seconds, oldest first, the
// last one ending with the last whole second before now and the first one starting at most
// 10 minutes ago. Spans without requests are included (all zero), so that the result has one
// span per step. A revision without measurements gives nil.
func (p *Proxy) Spans(revision int64, step time.Duration) []Span {
	p.mu.Lock()
	s := p.revs[revision]
	p.mu.Unlock()
	secs := int64(step / time.Second)
	if s == nil || secs <= 0 {
		return nil
	}
	to := p.now().Unix() - 1 // the last whole second
	n := windowSecs / secs
	from := to - n*secs + 1
	out := make([]Span, n)
	for i := range out {
		out[i].From, out[i].Seconds = from+int64(i)*secs, secs
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, b := range s.ring {
		if b == nil || b.sec < from || b.sec > to || b.requests == 0 {
			continue
		}
		sp := &out[(b.sec-from)/secs]
		sp.Requests += b.requests
		sp.Errors5xx += b.e5xx
		sp.Errors += b.e5xx + b.failures
		sp.Latency.Merge(&b.lat)
		sp.FirstToken.Merge(&b.first)
	}
	return out
}
