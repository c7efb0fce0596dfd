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
	// arrivals counts the requests by the second they arrived, and those still in flight.
	arrivals arrivalRing
}

// arrivalRing counts requests by the Unix second they arrived, over the last windowSecs
// seconds: all of them, those still in flight, and those in flight whose response body has
// not begun (no first token yet).
type arrivalRing struct {
	slots [windowSecs]ArrivalSecond
	// olderOpen and olderWaiting count the requests in flight that arrived before the ring.
	olderOpen, olderWaiting int64
}

// slot returns sec's slot, recycling an older second's; nil when sec is older than the ring.
func (r *arrivalRing) slot(sec int64) *ArrivalSecond {
	i := sec % windowSecs
	if i < 0 {
		i += windowSecs
	}
	sl := &r.slots[i]
	switch {
	case sl.Unix == sec:
	case sl.Unix < sec:
		r.olderOpen += sl.Open
		r.olderWaiting += sl.Waiting
		*sl = ArrivalSecond{Unix: sec}
	default:
		return nil
	}
	return sl
}

// begin counts a request that arrived at start, in flight; end counts it out (bodyBegun says
// whether its first body byte went out, as bodyStarted counted).
func (s *revStats) begin(start time.Time) {
	s.mu.Lock()
	if sl := s.arrivals.slot(start.Unix()); sl != nil {
		sl.Arrived++
		sl.Open++
		sl.Waiting++
	} else {
		s.arrivals.olderOpen++
		s.arrivals.olderWaiting++
	}
	s.mu.Unlock()
}

func (s *revStats) end(start time.Time, bodyBegun bool) {
	s.mu.Lock()
	s.endLocked(start, bodyBegun)
	s.mu.Unlock()
}

func (s *revStats) endLocked(start time.Time, bodyBegun bool) {
	w := int64(1)
	if bodyBegun {
		w = 0
	}
	if sl := s.arrivals.slot(start.Unix()); sl != nil {
		sl.Open--
		sl.Waiting -= w
	} else {
		s.arrivals.olderOpen--
		s.arrivals.olderWaiting -= w
	}
}

// bodyStarted notes that the first body byte of a request that arrived at start went out.
func (s *revStats) bodyStarted(start time.Time) {
	s.mu.Lock()
	if sl := s.arrivals.slot(start.Unix()); sl != nil {
		sl.Waiting--
	} else {
		s.arrivals.olderWaiting--
	}
	s.mu.Unlock()
}

// ArrivalSecond is one second of one revision's arrivals, as the judge reads the requests in
// flight: one that is older than the latency threshold will be slow whenever it ends, so a
// hang is evidence before any timeout ends it.
type ArrivalSecond struct {
	// Unix is the second the requests arrived in.
	Unix int64
	// Arrived counts the requests that arrived in it; Open those of them still in flight;
	// Waiting those in flight whose response body has not begun (no first token yet).
	Arrived, Open, Waiting int64
}

// Arrivals returns the revision's arrivals in each second from..to (Unix seconds, both
// included) that had any, oldest first, within the last 10 minutes.
func (p *Proxy) Arrivals(revision, from, to int64) []ArrivalSecond {
	p.mu.Lock()
	s := p.revs[revision]
	p.mu.Unlock()
	if s == nil {
		return nil
	}
	var out []ArrivalSecond
	s.mu.Lock()
	for _, sl := range s.arrivals.slots {
		if sl.Arrived > 0 && sl.Unix >= from && sl.Unix <= to {
			out = append(out, sl)
		}
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b ArrivalSecond) int { return cmp.Compare(a.Unix, b.Unix) })
	return out
}

// InFlightRequests returns the number of the revision's requests in flight, and how many of
// them have not begun their response body.
func (p *Proxy) InFlightRequests(revision int64) (open, waiting int64) {
	p.mu.Lock()
	s := p.revs[revision]
	p.mu.Unlock()
	if s == nil {
		return 0, 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	open, waiting = s.arrivals.olderOpen, s.arrivals.olderWaiting
	for _, sl := range s.arrivals.slots {
		open += sl.Open
		waiting += sl.Waiting
	}
	return open, waiting
}

func (s *revStats) record(sec int64, lat, ttfb time.Duration, hasTTFB bool, first time.Duration, hasFirst, is5xx, failed bool) {
	s.mu.Lock()
	s.recordLocked(sec, lat, ttfb, hasTTFB, first, hasFirst, is5xx, failed)
	s.mu.Unlock()
}

// recordEnded records a finished request that begin counted in flight, and counts it out
// (as end does), under one lock: a proxied request takes the revision's lock once to finish.
func (s *revStats) recordEnded(start time.Time, sec int64, lat, ttfb time.Duration, hasTTFB bool, first time.Duration, hasFirst, is5xx, failed bool) {
	s.mu.Lock()
	s.recordLocked(sec, lat, ttfb, hasTTFB, first, hasFirst, is5xx, failed)
	s.endLocked(start, hasFirst)
	s.mu.Unlock()
}

func (s *revStats) recordLocked(sec int64, lat, ttfb time.Duration, hasTTFB bool, first time.Duration, hasFirst, is5xx, failed bool) {
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
