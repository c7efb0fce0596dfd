// Package openloop is an open-loop HTTP load generator: requests are sent at a constant rate
// on a fixed schedule whatever the replies do, and each request's latency is measured from
// its intended send time, so a stall shows up in the latency of every request it delays
// (no coordinated omission).
package openloop

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"
)

// Config is one run.
type Config struct {
	// URL is requested with GET.
	URL string
	// Rate is requests per second; it must be positive.
	Rate float64
	// Duration is how long requests are sent; in-flight requests are then awaited.
	Duration time.Duration
	// Header is added to every request; nil means none.
	Header http.Header
	// Timeout bounds one request; zero means 10 seconds. A request that runs out fails.
	Timeout time.Duration
	// KeepHeader names a response header whose value each Sample keeps (Sample.Header);
	// empty means none.
	KeepHeader string
}

// Sample is one request.
type Sample struct {
	// Intended is the offset from the start of the run at which the request was due.
	Intended time.Duration
	// Latency is from the intended send time to the end of the response body.
	Latency time.Duration
	// Status is the HTTP status, or 0 when the request failed without a response.
	Status int
	// Err is the failure, if any (transport error or a body cut short).
	Err error
	// Header is the value of the response header Config.KeepHeader, if any.
	Header string
}

// Failed reports whether the request did not get a whole 2xx or 3xx response.
func (s Sample) Failed() bool { return s.Err != nil || s.Status < 200 || s.Status >= 400 }

// Run sends cfg.Rate requests per second for cfg.Duration and returns every request's
// sample in schedule order. Cancelling ctx stops sending new requests; the ones in flight
// finish (so a cancelled run fails no request) and only the sent ones are returned. start is
// called with the run's time origin just before the
// first request (nil means not).
func Run(ctx context.Context, cfg Config, start func(time.Time)) ([]Sample, error) {
	if cfg.Rate <= 0 || cfg.Duration <= 0 {
		return nil, fmt.Errorf("rate %v and duration %v must be positive", cfg.Rate, cfg.Duration)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	tr := &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConns:        4096,
		MaxIdleConnsPerHost: 4096,
		IdleConnTimeout:     time.Minute,
		DisableCompression:  true,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: cfg.Timeout}
	n := int(cfg.Rate * cfg.Duration.Seconds())
	samples := make([]Sample, n)
	interval := time.Duration(float64(time.Second) / cfg.Rate)
	var wg sync.WaitGroup
	t0 := time.Now()
	if start != nil {
		start(t0)
	}
	for i := 0; i < n; i++ {
		due := time.Duration(i) * interval
		if wait := time.Until(t0.Add(due)); wait > 50*time.Microsecond {
			select {
			case <-time.After(wait):
			case <-ctx.Done():
				wg.Wait()
				return samples[:i], nil
			}
		}
		wg.Add(1)
		go func(i int, due time.Duration) {
			defer wg.Done()
			samples[i] = do(context.WithoutCancel(ctx), client, cfg, t0, due)
		}(i, due)
	}
	wg.Wait()
	return samples, nil
}

func do(ctx context.Context, c *http.Client, cfg Config, t0 time.Time, due time.Duration) Sample {
	s := Sample{Intended: due}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, cfg.URL, nil)
	if err != nil {
		s.Err = err
		return s
	}
	for k, v := range cfg.Header {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	if err == nil {
		s.Status = resp.StatusCode
		if cfg.KeepHeader != "" {
			s.Header = resp.Header.Get(cfg.KeepHeader)
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	s.Err = err
	s.Latency = time.Since(t0) - due
	return s
}

// Summary sums up samples.
type Summary struct {
	Requests, Failed int
	P50, P99, Max    time.Duration
}

// Summarize returns the count, failures and latency quantiles of samples (failures
// included in the latencies).
func Summarize(samples []Sample) Summary {
	s := Summary{Requests: len(samples)}
	if len(samples) == 0 {
		return s
	}
	lat := make([]time.Duration, len(samples))
	for i, x := range samples {
		lat[i] = x.Latency
		if x.Failed() {
			s.Failed++
		}
	}
	slices.Sort(lat)
	s.P50 = Quantile(lat, 0.50)
	s.P99 = Quantile(lat, 0.99)
	s.Max = lat[len(lat)-1]
	return s
}

// Quantile returns the q-quantile of sorted (nearest rank).
func Quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}
