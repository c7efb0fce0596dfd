package proxy_test

import (
	"context"
	"net/http"
	"regexp"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"ramp.dev/ramp/internal/proxy"
)

// Local mode keeps one Proxy per rollout, serves it on the rollout's listener (and
// PreviewHandler on the preview listener for blue-green), and calls SetTable whenever
// instances become ready or the engine changes weights or header routes.
func Example() {
	p := proxy.New("chat-api", proxy.Options{})
	prometheus.MustRegister(p.Collector())
	go http.ListenAndServe("127.0.0.1:8080", p)
	go http.ListenAndServe("127.0.0.1:8081", p.PreviewHandler())

	p.SetTable(proxy.Table{
		Pools: []proxy.Pool{
			{Revision: 3, Role: "stable", Weight: 90, Backends: []proxy.Backend{{ID: "r3-0", Addr: "127.0.0.1:9300"}}},
			{Revision: 4, Role: "canary", Weight: 10, Backends: []proxy.Backend{{ID: "r4-0", Addr: "127.0.0.1:9400"}}},
		},
		HeaderRoutes: []proxy.HeaderRoute{{
			Name:     "beta-testers",
			Match:    []proxy.Match{{Header: "x-version", Regex: regexp.MustCompile(`^canary`)}},
			Revision: 4,
		}},
	})

	// Scaling the stable revision down: drain, wait, stop the process, drop it from the table.
	p.Drain("r3-0")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_ = p.WaitIdle(ctx, "r3-0")

	// The analysis reads the canary's last minute.
	s := p.Stats(4, time.Now().Add(-time.Minute))
	_ = float64(s.Errors) / float64(max(s.Requests, 1))
	_ = s.TTFB.Quantile(0.95)
}
