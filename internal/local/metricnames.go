package local

import "github.com/prometheus/client_golang/prometheus"

// DescribeInstanceMetrics sends the descriptions of the per-revision instance metrics that local
// mode's /metrics serves (the dashboard's test checks its series against them).
func DescribeInstanceMetrics(ch chan<- *prometheus.Desc) { instanceCollector{}.Describe(ch) }
