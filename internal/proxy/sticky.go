package proxy

import (
	"net/http"
	"strconv"
	"time"

	"math/rand/v2"
	"slices"
)

// stickyBuckets is the number of buckets users are hashed into: one per percent of weight.
const stickyBuckets = 100

// Sticky keeps each user on one revision while the weights change. A user has a bucket from
// 0 to 99; the buckets are laid over the pools in order of weight, newest revision first, so
// the canary holds the lowest buckets. A user in bucket b goes to the canary while b is below
// its weight: as the weight grows users only move from stable to the canary, never back.
type Sticky struct {
	// Header names a request header (such as x-user-id) whose value, hashed, is the user's
	// bucket. Empty means no header; a request without the header falls back to Cookie.
	Header string
	// Cookie names a cookie holding the user's bucket. The proxy sets it on the response when
	// the request brings none (and Header decided nothing), with a random bucket. Empty means
	// no cookie. A client can choose its bucket by setting the cookie; it can only reach a
	// revision that has weight.
	Cookie string
	// CookieMaxAge is the cookie's lifetime. Zero means a session cookie.
	CookieMaxAge time.Duration
}

// stickyTable is a Sticky compiled with a table's pools.
type stickyTable struct {
	cfg   Sticky
	pools []*pool // all pools, for the fallback
	order []*pool // newest revision first
}

func newStickyTable(s *Sticky, pools []*pool) *stickyTable {
	if s == nil || (s.Header == "" && s.Cookie == "") {
		return nil
	}
	order := slices.Clone(pools)
	slices.SortStableFunc(order, func(a, b *pool) int {
		switch {
		case a.rev > b.rev:
			return -1
		case a.rev < b.rev:
			return 1
		}
		return 0
	})
	cfg := *s
	cfg.Header = http.CanonicalHeaderKey(cfg.Header)
	return &stickyTable{cfg: cfg, pools: pools, order: order}
}

// bucketOf hashes a user key (FNV-1a) into a bucket.
func bucketOf(key string) int {
	h := uint32(2166136261)
	for i := 0; i < len(key); i++ {
		h ^= uint32(key[i])
		h *= 16777619
	}
	return int(h % stickyBuckets)
}

// bucket returns r's bucket, or -1; fresh reports a bucket made up for this request. A
// header or cookie that stops at the proxy (hopByHop) counts as absent.
func (s *stickyTable) bucket(r *http.Request) (b int, fresh bool) {
	if s.cfg.Header != "" && !hopByHop(r.Header, s.cfg.Header) {
		if v := r.Header.Get(s.cfg.Header); v != "" {
			return bucketOf(v), false
		}
	}
	if s.cfg.Cookie == "" {
		return -1, false
	}
	if hopByHop(r.Header, "Cookie") {
		return rand.IntN(stickyBuckets), true
	}
	if c, err := r.Cookie(s.cfg.Cookie); err == nil {
		if n, err := strconv.Atoi(c.Value); err == nil && n >= 0 && n < stickyBuckets {
			return n, false
		}
	}
	return rand.IntN(stickyBuckets), true
}

// pick chooses the pool of r's bucket among the pools with a ready instance, and an
// instance in it; it falls back to the weights when the bucket's pool cannot take it.
func (s *stickyTable) pick(st *reqState, r *http.Request) (*pool, target, bool) {
	b, fresh := s.bucket(r)
	if fresh {
		st.setBucket = b
	}
	if b < 0 {
		return pickWeighted(s.pools, nil)
	}
	var sum int64
	for _, pl := range s.order {
		if pl.hasReady(nil) {
			sum += int64(pl.weight)
		}
	}
	if sum > 0 {
		pos := int64(b) * sum / stickyBuckets
		for _, pl := range s.order {
			if pl.weight == 0 || !pl.hasReady(nil) {
				continue
			}
			if pos < int64(pl.weight) {
				if t, ok := pl.pick(nil); ok {
					return pl, t, true
				}
				break
			}
			pos -= int64(pl.weight)
		}
	}
	return pickWeighted(s.pools, nil)
}

// cookie is the Set-Cookie for bucket b.
func (s *stickyTable) cookie(b int) *http.Cookie {
	return &http.Cookie{
		Name:     s.cfg.Cookie,
		Value:    strconv.Itoa(b),
		Path:     "/",
		MaxAge:   int(s.cfg.CookieMaxAge / time.Second),
		HttpOnly: true,
		SameSite: http.SameSiteLaxMode,
	}
}
