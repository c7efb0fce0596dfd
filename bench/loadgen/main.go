// Command loadgen sends GET requests at a constant rate (open loop) and prints one JSON line:
// requests, failures, and p50/p99/max latency in microseconds measured from each request's
// intended send time (so coordinated omission does not hide stalls).
//
//	go run ./bench/loadgen -url http://127.0.0.1:8080/ -rate 5000 -duration 10s
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"ramp.dev/ramp/bench/internal/openloop"
)

func main() {
	url := flag.String("url", "", "URL to GET")
	rate := flag.Float64("rate", 1000, "requests per second")
	dur := flag.Duration("duration", 10*time.Second, "how long to send")
	warmup := flag.Duration("warmup", time.Second, "unmeasured run at the same rate first")
	hdr := flag.String("header", "", "one extra header, Name: value")
	flag.Parse()
	cfg := openloop.Config{URL: *url, Rate: *rate}
	if *hdr != "" {
		k, v, ok := strings.Cut(*hdr, ":")
		if !ok {
			fmt.Fprintf(os.Stderr, "loadgen: -header %q: want Name: value\n", *hdr)
			os.Exit(2)
		}
		cfg.Header = http.Header{http.CanonicalHeaderKey(strings.TrimSpace(k)): {strings.TrimSpace(v)}}
	}
	ctx := context.Background()
	if *warmup > 0 {
		cfg.Duration = *warmup
		if _, err := openloop.Run(ctx, cfg, nil); err != nil {
			fmt.Fprintln(os.Stderr, "loadgen:", err)
			os.Exit(1)
		}
	}
	cfg.Duration = *dur
	samples, err := openloop.Run(ctx, cfg, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
	s := openloop.Summarize(samples)
	json.NewEncoder(os.Stdout).Encode(map[string]any{
		"requests": s.Requests, "failed": s.Failed,
		"p50_us": s.P50.Microseconds(), "p99_us": s.P99.Microseconds(), "max_us": s.Max.Microseconds(),
	})
}
