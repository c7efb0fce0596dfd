package proxy

import (
	"cmp"
	"math"
	"slices"
	"sync"
	"time"
)

const (
	// statsWindow is how far back Stats can look.
	statsWindow = 10 * time.Minute
	windowSecs  = int64(statsWindow / time.Second)

	histBuckets = 80
	histMin     = 100 * time.Microsecond
	histMax     = 5 * time.Minute
)

// histLogGrowth is the log of the ratio between neighbouring bucket bounds: bucket 0 holds
// durations up to histMin, bucket i (1..histBuckets-2) holds (histMin·g^(i-1), histMin·g^i],
// and the last bucket holds everything above histMax. g is about 1.21.
var histLogGrowth = math.Log(float64(histMax)/float64(histMin)) / float64(histBuckets-2)

// Quantiler answers quantile questions about a set of durations.
type Quantiler interface {
	// Quantile returns the q-quantile (0 ≤ q ≤ 1), or 0 when there is no observation.
	Quantile(q float64) time.Duration
	// Count returns the number of observations.
	Count() int64
}

// Histogram counts durations in log-scale buckets from 100µs to 5 minutes (about 20%
// resolution). The zero value is empty and ready to use.
type Histogram struct {
	counts   [histBuckets]int64
	n        int64
	sum      time.Duration
	min, max time.Duration
}

var _ Quantiler = (*Histogram)(nil)

func histIndex(d time.Duration) int {
	if d <= histMin {
		return 0
	}
	i := int(math.Ceil(math.Log(float64(d)/float64(histMin)) / histLogGrowth))
	return min(max(i, 1), histBuckets-1)
}

// histUpper is the upper bound of bucket i (histMax for the last, open, bucket).
func histUpper(i int) time.Duration {
	if i >= histBuckets-2 {
		return histMax
	}
	return time.Duration(float64(histMin) * math.Exp(float64(i)*histLogGrowth))
}

func histLower(i int) time.Duration {
	if i == 0 {
		return 0
	}
	return histUpper(i - 1)
}

// Observe adds one duration.
func (h *Histogram) Observe(d time.Duration) {
	if d < 0 {
		d = 0
	}
	h.counts[histIndex(d)]++
	if h.n == 0 || d < h.min {
		h.min = d
	}
	if d > h.max {
		h.max = d
	}
	h.n++
	h.sum += d
}

// Merge adds o's observations to h.
func (h *Histogram) Merge(o *Histogram) {
	if o.n == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	h.max = max(h.max, o.max)
	h.n += o.n
	h.sum += o.sum
}

// Count returns the number of observations.
func (h *Histogram) Count() int64 { return h.n }

// Mean returns the average observation, or 0 when there is none.
func (h *Histogram) Mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return h.sum / time.Duration(h.n)
}

// Quantile returns the q-quantile, interpolated inside its bucket and kept within the
// smallest and largest observation.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	q = min(max(q, 0), 1)
	rank := q * float64(h.n)
	var cum float64
	for i, c := range h.counts {
		if c == 0 {
			continue
		}
		if cum+float64(c) >= rank {
			lo, hi := histLower(i), histUpper(i)
			if i == histBuckets-1 {
				lo, hi = histMax, h.max
			}
			frac := (rank - cum) / float64(c)
			v := lo + time.Duration(frac*float64(hi-lo))
			return min(max(v, h.min), h.max)
		}
		cum += float64(c)
	}
	return h.max
}

// RequestStats are one revision's measurements over a window.
type RequestStats struct {
	// Requests counts the finished requests, errors included.
	Requests int64
	// Errors5xx counts the 5xx responses the instances sent.
	Errors5xx int64
	// Errors is Errors5xx plus the upstream failures: no response (answered 502 or 504) or a
	// response body cut short.
	Errors int64
	// Latency is from the request's arrival to the end of the response body.
	Latency Quantiler
	// TTFB is from the request's arrival to the instance's response headers; requests that
	// got no response are not in it.
	TTFB Quantiler
	// FirstToken is from the request's arrival to the first byte of the response body sent
	// to the client: for a streamed LLM answer, its first token. Requests whose answer had
	// no body byte are not in it.
	FirstToken Quantiler
	// Window is the span the numbers cover: from since (or 10 minutes ago, whichever is
	// later) to now.
	Window time.Duration
}

// secBucket holds one second of one revision's requests.
type secBucket struct {
	sec                      int64
	requests, e5xx, failures int64
	lat, ttfb, first         Histogram
}

// revStats is one revision's rolling window: a ring of per-second buckets, allocated as
// seconds with traffic come.
type revStats struct {
	mu   sync.Mutex
	ring [windowSecs]*secBucket
	last int64 // latest second recorded
	// open counts the requests in flight by the second they arrived; waiting those among
	// them whose response body has not begun (no first token yet); arrived all requests.
	open, waiting, arrived startRing
}

// startRing counts requests by the Unix second they arrived, over the last windowSecs
// seconds; older ones are counted together.
type startRing struct {
	sec   [windowSecs]int64
	n     [windowSecs]int64
	older int64
}

// add adds d to the requests that arrived in second sec.
func (r *startRing) add(sec, d int64) {
	i := sec % windowSecs
	if i < 0 {
		i += windowSecs
	}
	switch {
	case r.sec[i] == sec:
	case r.sec[i] < sec:
		r.older += r.n[i]
		r.sec[i], r.n[i] = sec, 0
	default: // its slot holds a later second: sec is older than the window
		r.older += d
		return
	}
	r.n[i] += d
}

// count returns the number of requests and how many of them arrived in the seconds from
// (included) to cutoff (excluded); those older than the ring count when from is 0.
func (r *startRing) count(from, cutoff int64) (n, between int64) {
	n = r.older
	if from == 0 {
		between = r.older
	}
	for i, c := range r.n {
		if c == 0 {
			continue
		}
		n += c
		if r.sec[i] >= from && r.sec[i] < cutoff {
			between += c
		}
	}
	return n, between
}

// begin counts a request that arrived at start in flight; end counts it out (bodyBegun says
// whether its first body byte went out, as bodyStarted counted).
func (s *revStats) begin(start time.Time) {
	sec := start.Unix()
	s.mu.Lock()
	s.open.add(sec, 1)
	s.waiting.add(sec, 1)
	s.arrived.add(sec, 1)
	s.mu.Unlock()
}

func (s *revStats) end(start time.Time, bodyBegun bool) {
	sec := start.Unix()
	s.mu.Lock()
	s.open.add(sec, -1)
	if !bodyBegun {
		s.waiting.add(sec, -1)
	}
	s.mu.Unlock()
}

// bodyStarted notes that the first body byte of a request that arrived at start went out.
func (s *revStats) bodyStarted(start time.Time) {
	s.mu.Lock()
	s.waiting.add(start.Unix(), -1)
	s.mu.Unlock()
}

// Pending are one revision's requests in flight now, as the judge reads them before they
// finish: a request that hangs is evidence before any timeout ends it.
type Pending struct {
	// Requests counts the requests in flight; Overdue those that arrived longer than the
	// latency threshold given to Pending ago.
	Requests, Overdue int64
	// Waiting counts the requests in flight whose response body has not begun (no first
	// token yet); WaitingOverdue those among them that arrived longer than the first-token
	// threshold ago.
	Waiting, WaitingOverdue int64
	// Arrived and ArrivedFirstToken count all the requests that arrived from since until the
	// latency (first-token) threshold ago, finished or not: the requests that could be
	// overdue now, whose share of both revisions' is the canary's share of the traffic.
	Arrived, ArrivedFirstToken int64
}

// Pending returns the revision's requests in flight now, with those that arrived since since
// and longer than latency ago (and, for the ones still waiting for their first body byte,
// firstToken). Arrival times are kept to the second, so a request is counted overdue up to a
// second late, never early; arrivals are kept for 10 minutes. A zero threshold counts none
// overdue.
func (p *Proxy) Pending(revision int64, since time.Time, latency, firstToken time.Duration) Pending {
	p.mu.Lock()
	s := p.revs[revision]
	p.mu.Unlock()
	if s == nil {
		return Pending{}
	}
	now := p.now()
	var out Pending
	s.mu.Lock()
	defer s.mu.Unlock()
	from := max(since.Unix(), now.Add(-statsWindow).Unix()+1)
	latCut, firstCut := now.Add(-latency).Unix(), now.Add(-firstToken).Unix()
	var over int64
	out.Requests, over = s.open.count(from, latCut)
	if latency > 0 {
		out.Overdue = over
		_, out.Arrived = s.arrived.count(from, latCut)
	}
	out.Waiting, over = s.waiting.count(from, firstCut)
	if firstToken > 0 {
		out.WaitingOverdue = over
		_, out.ArrivedFirstToken = s.arrived.count(from, firstCut)
	}
	return out
}

func (s *revStats) record(sec int64, lat, ttfb time.Duration, hasTTFB bool, first time.Duration, hasFirst, is5xx, failed bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := sec % windowSecs
	if i < 0 {
		i += windowSecs
	}
	b := s.ring[i]
	if b == nil {
		b = &secBucket{sec: sec}
		s.ring[i] = b
	} else if b.sec < sec {
		*b = secBucket{sec: sec}
	} // b.sec > sec: the clock went back; count it in the newer second
	b.requests++
	if is5xx {
		b.e5xx++
	}
	if failed {
		b.failures++
	}
	b.lat.Observe(lat)
	if hasTTFB {
		b.ttfb.Observe(ttfb)
	}
	if hasFirst {
		b.first.Observe(first)
	}
	s.last = max(s.last, sec)
}

func (s *revStats) lastSecond() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

// Stats returns the revision's measurements from since to now, at most the last 10 minutes,
// in whole seconds (the second since falls in counts whole).
func (p *Proxy) Stats(revision int64, since time.Time) RequestStats {
	p.mu.Lock()
	s := p.revs[revision]
	p.mu.Unlock()
	return p.window(s, since)
}

// window sums s (nil: nothing) from since to now, at most the last 10 minutes.
func (p *Proxy) window(s *revStats, since time.Time) RequestStats {
	now := p.now()
	if oldest := now.Add(-statsWindow + time.Second); since.Before(oldest) {
		since = oldest
	}
	lat, ttfb, first := &Histogram{}, &Histogram{}, &Histogram{}
	out := RequestStats{Latency: lat, TTFB: ttfb, FirstToken: first, Window: max(now.Sub(since), 0)}
	if s == nil {
		return out
	}
	from, to := since.Unix(), now.Unix()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, b := range s.ring {
		if b == nil || b.sec < from || b.sec > to {
			continue
		}
		out.Requests += b.requests
		out.Errors5xx += b.e5xx
		out.Errors += b.e5xx + b.failures
		lat.Merge(&b.lat)
		ttfb.Merge(&b.ttfb)
		first.Merge(&b.first)
	}
	return out
}

// Above returns how many observations are above the upper bound of d's bucket, which is
// RoundThreshold(d). The count is exact for that bound.
func (h *Histogram) Above(d time.Duration) int64 {
	var n int64
	for i := histIndex(d) + 1; i < histBuckets; i++ {
		n += h.counts[i]
	}
	return n
}

// RoundThreshold rounds d up to the bound of its histogram bucket (about 20% resolution): the
// threshold Above counts exactly.
func RoundThreshold(d time.Duration) time.Duration { return histUpper(histIndex(d)) }

// Second is one second of one revision's requests, as the sequential judge reads them.
type Second struct {
	// Unix is the second (seconds since the Unix epoch).
	Unix int64
	// Requests counts the finished requests; Errors the 5xx and upstream failures among them
	// (as RequestStats.Errors).
	Requests, Errors int64
	// TTFBCount counts the requests that got response headers; FirstTokenCount those whose
	// response body's first byte was sent.
	TTFBCount, FirstTokenCount int64
	// SlowLatency, SlowTTFB and SlowFirstToken count the requests above the Thresholds given
	// to Seconds, rounded up by RoundThreshold; zero when the threshold is zero.
	SlowLatency, SlowTTFB, SlowFirstToken int64
}

// Thresholds are the durations above which Seconds counts a request as slow; zero counts
// none.
type Thresholds struct {
	// Latency is to the end of the response body, TTFB to the response headers, FirstToken
	// to the first byte of the response body.
	Latency, TTFB, FirstToken time.Duration
}

// Seconds returns the revision's counts for each second from..to (Unix seconds, both
// included) that had requests, oldest first, within the last 10 minutes. It is cheap: one
// pass over the revision's ring of seconds, with no allocation but the result.
func (p *Proxy) Seconds(revision, from, to int64, over Thresholds) []Second {
	p.mu.Lock()
	s := p.revs[revision]
	p.mu.Unlock()
	if s == nil {
		return nil
	}
	var out []Second
	s.mu.Lock()
	for _, b := range s.ring {
		if b == nil || b.sec < from || b.sec > to || b.requests == 0 {
			continue
		}
		sec := Second{Unix: b.sec, Requests: b.requests, Errors: b.e5xx + b.failures,
			TTFBCount: b.ttfb.Count(), FirstTokenCount: b.first.Count()}
		if over.Latency > 0 {
			sec.SlowLatency = b.lat.Above(over.Latency)
		}
		if over.TTFB > 0 {
			sec.SlowTTFB = b.ttfb.Above(over.TTFB)
		}
		if over.FirstToken > 0 {
			sec.SlowFirstToken = b.first.Above(over.FirstToken)
		}
		out = append(out, sec)
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b Second) int { return cmp.Compare(a.Unix, b.Unix) })
	return out
}
